"""Generation of apps/drum_accompaniment.py: drums for a whole song, written to MIDI (the
``accompany`` command).

The song's 4/4 sections become input rolls (steps, 3 families, dd.N_KEYS keys), cut into
windows of T steps (or one piece per section); each window gets ``candidates`` drum parts,
(H, V, O) arrays of (T, K), ranked by distance to the training set's beat template or by the
model's likelihood; the best is turned into notes and appended to a copy of the song as a
channel-10 track.
"""
from __future__ import annotations

import os

import numpy as np

import nnscratch as nn
from apps.music import midi

from . import data as dd
from . import groove
from .model import load_model


def _pad_steps(a, n: int, axis: int = 1):
    if a.shape[axis] >= n:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, n - a.shape[axis])
    return np.pad(a, pad)


def _rank(model, x, cand: dict, how: str, template) -> np.ndarray:
    """Scores of candidate drums (lower is better)."""
    H = cand["H"]
    if how == "template":
        T = H.shape[1] - H.shape[1] % groove.STEPS_PER_BAR or H.shape[1]
        return np.atleast_1d(groove.template_distance(H[:, :T], template))
    if how == "likelihood":
        hvo = np.concatenate([cand["H"], cand["V"], cand["O"]], axis=-1)
        S = model.cfg.sub_steps
        n = -(-hvo.shape[1] // S) * S
        return -model.log_likelihood([_pad_steps(a, n) for a in x], _pad_steps(hvo, n))
    raise ValueError(f"--rank must be 'template' or 'likelihood', got {how!r}")


def accompany_song(model, ck, song_path: str, out_path: str, threshold: float | None = None,
                   temperature: float = 0.0, candidates: int = 1, rank: str = "template",
                   mode: str = "windows", keep_drums: bool = False, seed: int = 0,
                   log=print) -> dict:
    """Generate drums for a song's 4/4 sections and write OUT.mid (see the module docstring)."""
    if ck.config.get("task") != "accompaniment":
        raise nn.CheckpointError(f"the checkpoint is a {ck.config.get('task')} model; accompany "
                                 "needs one trained by `train`")
    song = midi.read_midi(song_path)
    fams = dd.check_song(song, require="any", min_bars=1)
    missing = [f for f, notes in fams.items() if not notes]
    if missing:
        log(f"note: the song has no {' or '.join(missing)} part: the model hears silence there")
    roll_mode = ck.config.get("roll_mode", "onset")
    if threshold is None:
        threshold = (ck.config.get("thresholds") or {}).get("free", 0.5)
    template = ck.arrays.get("template")
    if template is None:
        template = groove.beat_template(groove.rock_beat(16)[0])
    n_total = int(np.ceil(song.length * groove.STEPS_PER_BEAT))
    rolls = dd.roll_input(dd.song_rolls(fams, n_total), roll_mode)       # (S, 3, 88)
    sections = [(s, e - (e - s) % groove.STEPS_PER_BAR) for s, e in dd.four_four_sections(song)]
    sections = [(s, e) for s, e in sections if e > s]
    rng = np.random.default_rng(seed)
    T = int(ck.config["hp"]["bars"]) * groove.STEPS_PER_BAR
    notes, report = [], {"sections": [], "candidates": candidates, "rank": rank, "mode": mode,
                         "threshold": threshold, "temperature": temperature}
    for s, e in sections:
        chunks = [(a, min(a + T, e)) for a in range(s, e, T)] if mode == "windows" else [(s, e)]
        prev = None
        for a, b in chunks:
            n = b - a
            pad = max(n, T) if mode == "windows" else n
            xs = [_pad_steps(rolls[a:b, i][None], pad) for i in range(rolls.shape[1])]
            xs = [np.repeat(xi, candidates, axis=0) for xi in xs]
            with nn.no_grad():
                mu, log_var = model.encode(xs)
            mu, log_var = nn.to_cpu(mu), nn.to_cpu(log_var)
            eps = rng.standard_normal(mu.shape).astype(mu.dtype)
            eps[0] = 0.0                                   # candidate 0: the most likely code
            z = mu + np.exp(0.5 * log_var) * eps
            start = None if prev is None else np.repeat(prev[None], candidates, axis=0)
            cand = model.generate(xs, pad, z=z, threshold=threshold, temperature=temperature,
                                  rng=rng, start=start)
            cand = {k: v[:, :n] for k, v in cand.items()}
            scores = _rank(model, [x[:, :n] for x in xs], cand, rank, template)
            best = int(np.argmin(scores))
            H, V, O = cand["H"][best], cand["V"][best], cand["O"][best]
            prev = np.concatenate([H[-1], V[-1], O[-1]])
            notes += groove.hvo_to_notes(H, V, O, start_beat=a / groove.STEPS_PER_BEAT)
            report["sections"].append({"start_bar": a // groove.STEPS_PER_BAR,
                                       "bars": n // groove.STEPS_PER_BAR, "hits": int(H.sum()),
                                       "chosen": best, "scores": [float(x) for x in scores]})
    write_with_drums(song_path, out_path, notes, keep_drums)
    bars = sum(x["bars"] for x in report["sections"])
    report.update(out=out_path, bars=bars, drum_notes=len(notes))
    log(f"wrote {out_path}: {len(notes)} drum notes over {bars} bars of 4/4 "
        f"({len(report['sections'])} window(s); {candidates} candidate(s) each, ranked by {rank})")
    return report


def write_with_drums(src: str, out: str, notes, keep_drums: bool = False) -> str:
    """Copy ``src``'s tracks (dropping its channel-10 notes unless ``keep_drums``) and append a
    drum track of ``notes`` on channel 10 (mido channel 9), at the file's own resolution."""
    import mido  # imported where it is used, as apps.music.midi does

    mf = mido.MidiFile(src)
    tpb = mf.ticks_per_beat
    out_mf = mido.MidiFile(type=1, ticks_per_beat=tpb)
    end_tick = 0
    for tr in mf.tracks:
        new, carry, now = mido.MidiTrack(), 0, 0
        for msg in tr:
            now += msg.time
            if (not keep_drums and msg.type in ("note_on", "note_off")
                    and msg.channel == midi.DRUM_CHANNEL):
                carry += msg.time
                continue
            new.append(msg.copy(time=msg.time + carry))
            carry = 0
        end_tick = max(end_tick, now)
        out_mf.tracks.append(new)
    evs = []
    for n in notes:
        on = int(round(n.start * tpb))
        off = max(int(round(n.end * tpb)), on + 1)
        evs.append((on, 1, mido.Message("note_on", channel=midi.DRUM_CHANNEL, note=n.pitch,
                                        velocity=n.velocity)))
        evs.append((off, 0, mido.Message("note_off", channel=midi.DRUM_CHANNEL, note=n.pitch,
                                         velocity=0)))
    evs.sort(key=lambda e: (e[0], e[1]))
    drum = mido.MidiTrack([mido.MetaMessage("track_name", name="drums (nnscratch)", time=0)])
    now = 0
    for t, _, msg in evs:
        drum.append(msg.copy(time=t - now))
        now = t
    drum.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    out_mf.tracks.append(drum)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    out_mf.save(out)
    return out


def cmd_accompany(args, log=print) -> dict:
    """``accompany``: drums for SONG.mid from a ``train`` checkpoint, written to --out."""
    model, ck = load_model(args.checkpoint)
    return accompany_song(model, ck, args.song, args.out, args.threshold, args.temperature,
                          args.candidates, args.rank, args.mode, args.keep_drums, args.seed, log)
