"""What a user receives for sampled tunes: each tune judged, and written as ABC, MIDI, an SVG
score and a WAV recording, with one ``index.html`` to see and hear them all.

    tunes --check_abc--> valid? bars fit?
          --abc_to_midi--> sample_NN.mid (read back with mido)
          --abc_to_svg (abcm2ps)--> sample_NN.svg
          --render_wav (fluidsynth / timidity)--> sample_NN.wav
          --write_index--> index.html

A program that is not installed costs its files, never the run: the report says in one line how
to install it. A tune that cannot become MIDI gets a one-line reason, never a traceback.
"""
from __future__ import annotations

import os

from apps.music.abc_eval import abc_to_midi, check_abc
from apps.music.render import render_hint, render_wav
from apps.music.score import INSTALL_HINT as SCORE_HINT
from apps.music.score import abc_to_svg, have_abcm2ps

from .page import TunePage, write_index


def _midi_opens(path: str) -> str | None:
    """None when mido reads the file back with at least one note, else the reason."""
    import mido  # noqa: PLC0415 - loaded when there is MIDI to check (not on a GPU box)

    try:
        mf = mido.MidiFile(path)
    except (OSError, ValueError, EOFError) as exc:
        return f"mido cannot read it back ({exc})"
    if not any(m.type == "note_on" and m.velocity for tr in mf.tracks for m in tr):
        return "mido reads it back without a single note"
    return None


def publish_tunes(tunes: list[str], out_dir: str, log=print, figures: dict | None = None,
                  title: str = "Sampled folk tunes", files: bool = True) -> dict:
    """Judge ``tunes`` and write their files and index.html into ``out_dir``; return the report.

    The report holds the shares (valid ABC, bars fitting the meter, MIDI written and read back
    by mido, scores, recordings) and one entry per tune with its files or the reason one is
    missing. ``files=False`` only judges (for large evaluation samples).
    """
    os.makedirs(out_dir, exist_ok=True)
    abc_path = os.path.join(out_dir, "samples.abc")
    with open(abc_path, "w", encoding="utf-8") as f:
        f.write("\n".join(tunes))
    hints = []
    scores_on = files and have_abcm2ps()
    if files and not scores_on:
        hints.append(SCORE_HINT)
    wav_hint = render_hint() if files else None
    if wav_hint:
        hints.append(wav_hint)
    for h in hints:
        log(h)
    pages, entries = [], []
    for i, tune in enumerate(tunes, 1):
        c = check_abc(tune)
        entry = {"number": i, "valid": c.valid, "fits_meter": c.fits_meter,
                 "bad_bars": c.bad_bars, "notes": c.n_notes, "error": c.error}
        page = TunePage(i, tune, c.valid, c.fits_meter, c.n_notes, c.bad_bars)
        stem = os.path.join(out_dir, f"sample_{i:02d}")
        if files and c.valid:
            try:
                midi = abc_to_midi(tune, stem + ".mid", log=log)
            except Exception as exc:  # noqa: BLE001 - music21 raises many types; say which
                entry["midi_error"] = page.problem = f"no MIDI: {type(exc).__name__}: {exc}"
                log(f"tune {i}: {entry['midi_error']}")
            else:
                problem = _midi_opens(midi)
                entry["midi"], entry["midi_opens"] = midi, problem is None
                if problem:
                    entry["midi_error"] = page.problem = f"MIDI written, but {problem}"
                else:
                    page.midi = os.path.basename(midi)
                    wav = render_wav(midi, stem + ".wav") if not wav_hint else None
                    if wav:
                        entry["wav"], page.wav = wav, os.path.basename(wav)
        elif files:
            page.problem = f"not valid ABC ({c.error}): no MIDI, score or recording"
        if scores_on and c.valid:
            svg = abc_to_svg(tune, stem + ".svg", title=f"Tune {i}")
            if svg:
                entry["svg"], page.svg = svg, os.path.basename(svg)
        meter = "bars fit the meter" if c.fits_meter else f"{c.bad_bars} bar(s) off the meter"
        log(f"--- tune {i}: {'valid' if c.valid else 'INVALID'} ABC, {meter}, "
            f"{c.n_notes} notes\n{tune}")
        pages.append(page)
        entries.append(entry)
    n = len(tunes)
    valid = [e for e in entries if e["valid"]]
    report = {
        "n": n, "abc": abc_path,
        "valid_share": len(valid) / n,
        "meter_fit_share": sum(e["fits_meter"] for e in entries) / n,
        "midi_share_of_valid": (sum(bool(e.get("midi_opens")) for e in valid) / len(valid)
                                if valid and files else None),
        "scores": sum("svg" in e for e in entries), "recordings": sum("wav" in e for e in entries),
        "midi": [e["midi"] for e in entries if e.get("midi_opens")],
        "tunes": entries, "hints": hints,
    }
    if files:
        report["index"] = write_index(out_dir, title, figures or {}, pages, hints=hints)
    log(f"{report['valid_share']:.0%} of {n} tunes parse as valid ABC; "
        f"{report['meter_fit_share']:.0%} have every bar fitting the meter; wrote {abc_path}"
        + (f", {len(report['midi'])} MIDI file(s), {report['scores']} score(s), "
           f"{report['recordings']} recording(s) and {report['index']}" if files else ""))
    return report
