"""Judging ABC tunes with music21: does a tune parse, do its bars fit its meter; ABC to MIDI.

*Valid ABC* here means: the text has ``X:`` and ``K:`` header lines, and music21's ABC parser
reads it without error into a score holding at least one note.

*Bars fit the meter* means every bar, as written between barlines, lasts exactly one bar of the
meter in force (``M:`` header or a later ``M:`` change), except that a bar may be **short** at
a section boundary: the first and last bars (anacrusis and its complement) and a bar with a
repeat, double or ending barline on either side (the end of a section and the next section's
pickup). An overfull bar never fits. Real tunes do not all pass this
check (transcriptions have irregular bars), so reports give the share for real validation tunes
beside the share for generated ones.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from dataclasses import dataclass

from .abc_text import meter_fraction, normalise_meter


@dataclass
class AbcCheck:
    valid: bool
    fits_meter: bool
    n_notes: int = 0
    n_bars: int = 0
    bad_bars: int = 0
    error: str | None = None


def _parse(text: str):
    from music21 import converter  # noqa: PLC0415 - music21 imports slowly

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return converter.parse(text, format="abc")


def check_abc(text: str) -> AbcCheck:
    """Parse one tune with music21 and check its bars against its meter."""
    lines = text.strip().split("\n")
    if not lines or not lines[0].startswith("X:") or not any(l.startswith("K:") for l in lines[:6]):
        return AbcCheck(False, False, error="missing X: or K: header line")
    try:
        score = _parse(text)
    except Exception as exc:  # music21 raises many types for bad ABC
        return AbcCheck(False, False, error=f"{type(exc).__name__}: {exc}"[:200])
    notes = list(score.recurse().notes)
    if not notes:
        return AbcCheck(False, False, error="no notes")
    bars = bar_durations(text)
    if not bars:
        return AbcCheck(True, False, len(notes), 0, 0, "no meter or no bars")
    bad = 0
    for i, (length, bar, left, right) in enumerate(bars):
        if bar is None or abs(length - bar) < 1e-6:
            continue
        boundary = i in (0, len(bars) - 1) or left != "|" or right != "|"
        if length < bar and boundary:
            continue
        bad += 1
    return AbcCheck(True, bad == 0, len(notes), len(bars), bad)


def bar_durations(text: str) -> list[tuple[float, float | None, str, str]]:
    """Bars as written: (duration, meter's bar duration, left barline, right barline), in quarters.

    Read from music21's ABC token stream rather than its score, because music21 inserts time
    signature changes to make irregular bars fit, which would hide them. Grace notes last 0;
    tuplet notes are scaled by their tuplet's ratio. Empty bars (between ``:|`` and ``[2``) are
    skipped and their barlines merged into the neighbours'.
    """
    from music21 import abcFormat  # noqa: PLC0415 - music21 imports slowly

    # music21's tokenizer drops the '::' barline (and the bar after it); ':|:' means the same.
    text = "\n".join(line if re.match(r"^[A-Za-z]:", line) else line.replace("::", ":|:")
                     for line in text.split("\n"))
    handler = abcFormat.ABCHandler()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        handler.process(text)
    bars: list[tuple[float, float | None, str, str]] = []
    bar_len = None
    length, left = 0.0, "|"
    for tok in handler.tokens:
        kind = type(tok).__name__
        src = getattr(tok, "src", "") or ""
        if kind == "ABCMetadata" and src.lstrip("[").startswith("M:"):
            m = normalise_meter(src.lstrip("[").rstrip("]")[2:])
            frac = meter_fraction(m) if m else None
            bar_len = float(frac * 4) if frac is not None else None
        elif kind in ("ABCNote", "ABCChord"):
            if getattr(tok, "inGrace", False):
                continue
            ql = float(tok.quarterLength or 0.0)
            tup = getattr(tok, "activeTuplet", None)
            if tup is not None:
                ql *= float(tup.tupletMultiplier())
            length += ql
        elif kind == "ABCBar":
            mark = src.strip()
            if length > 1e-9:
                bars.append((length, bar_len, left, mark))
                left = mark
            elif mark != "|":
                left = mark if left == "|" else left  # merge an empty bar's barline
            length = 0.0
    if length > 1e-9:
        bars.append((length, bar_len, left, "|]"))
    return bars


def _play_repeats_once(score) -> None:
    """Turn repeat barlines into plain double bars and drop voltas and repeat expressions, in place.

    music21 expands repeats when writing MIDI and refuses repeats it cannot pair (a ``|:`` that
    is never closed, a ``:|`` after a section that already repeated), which generated tunes and
    some transcriptions have. Players such as abc2midi play those sections once; so do we.
    """
    from music21 import bar, repeat, spanner, stream  # noqa: PLC0415

    for m in score.recurse().getElementsByClass(stream.Measure):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(m, side), bar.Repeat):
                setattr(m, side, bar.Barline("double"))
        for e in list(m.getElementsByClass(repeat.RepeatExpression)):
            m.remove(e)
    for s in list(score.recurse().getElementsByClass(spanner.RepeatBracket)):
        for site in list(s.sites.get()):
            if hasattr(site, "remove") and s in site:
                site.remove(s)


def abc_to_midi(text: str, path: str, log=None) -> str:
    """Write a tune as a MIDI file with music21 (the file is then read back by mido in tests).

    Repeats are expanded; if they cannot be (unpaired repeat signs), every section is played
    once instead and ``log`` (when given) is told so.
    """
    from music21 import repeat  # noqa: PLC0415

    score = _parse(text)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            score.write("midi", fp=path)
        except repeat.ExpanderException as exc:
            score = _parse(text)  # the failed write may have left the score half-prepared
            _play_repeats_once(score)
            score.write("midi", fp=path)
            if log:
                log(f"{os.path.basename(path)}: repeats played once ({exc})")
    return path
