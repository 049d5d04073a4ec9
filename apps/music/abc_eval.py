"""Judging ABC tunes with music21: does a tune parse, do its bars fit its meter; ABC to MIDI.

*Valid ABC* here means: the text has ``X:`` and ``K:`` header lines, and music21's ABC parser
reads it without error into a score holding at least one note, in at most MUSIC21_SECONDS, and
with no meter or bar past the limits music21 takes minutes or hours over (MAX_METER_BEATS,
MAX_BAR_QUARTERS: far past any real tune's, and refused before music21 sees the text).

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
import math
import os
import re
import signal
import threading
import warnings
from dataclasses import dataclass, field

from apps.common.errors import InputError

from .abc_text import meter_fraction, normalise_meter
from .midi import Note, Track, write_midi


@dataclass
class AbcCheck:
    valid: bool
    fits_meter: bool
    n_notes: int = 0
    n_bars: int = 0
    bad_bars: int = 0
    error: str | None = None


_FERMATA = re.compile(r'H(?=[\^_=A-Ga-gzx\[(.~"!])')


def for_music21(text: str) -> str:
    """The tune, rewritten where music21's ABC reader goes wrong, meaning unchanged.

    - music21 drops the note after the ``H`` (fermata) decoration shortcut: it becomes the
      long form ``!fermata!``, which it reads;
    - its tokenizer drops the ``::`` barline (and the bar after it): ``:|:`` means the same.
    Field lines (``K:HP``) and chord symbols are left alone.
    """
    out = []
    for line in text.split("\n"):
        if not re.match(r"^[A-Za-z]:", line):
            parts = line.split('"')   # even parts are music, odd ones chord symbols
            parts[::2] = [_FERMATA.sub("!fermata!", p).replace("::", ":|:") for p in parts[::2]]
            line = '"'.join(parts)
        out.append(line)
    return "\n".join(out)


# music21's time is not linear in the size of a bar or a meter: it partitions a meter's
# numerator (M:257/4 takes 1 s, M:1009/4 17 s) and re-bars an overfull bar by searching time
# signatures for it (a bar of 256 quarter notes: 1 s; of 5,386: unfinished after 2 min). A
# model early in training writes such bars ("A64" with L:1/1). Real tunes stay below both
# limits: the longest bar of the 7,310 folk tunes lasts 28.5 quarter notes, the longest
# unbarred line of the 7,203 Essen songs 133, and no numerator in either goes past 12.
MAX_BAR_QUARTERS = 256    # 64 whole notes
MAX_METER_BEATS = 64      # the numerator of M: (its parts summed, for M:2+3/8)
_METER_FIELD = re.compile(r"(?:^|\[)M:([^\]\n]*)", re.MULTILINE)


# The limits above bound what can be measured from the text; what music21 makes of an overfull
# bar's remainder (a time signature whose numerator counts its shortest notes: 27 s for one
# sampled tune whose bars stay under 256 quarter notes) cannot be, so each call is also timed.
MUSIC21_SECONDS = 10.0    # real tunes take under half a second


class OversizedAbcError(ValueError):
    """A meter or a bar too large for music21 to read in reasonable time."""


class _Overtime(BaseException):
    """Raised by the alarm; a BaseException, so that music21's own ``except Exception`` clauses
    cannot swallow it."""


@contextlib.contextmanager
def music21_time_limit(what: str, seconds: float | None = None):
    """Raise OversizedAbcError when the block runs past ``seconds`` (MUSIC21_SECONDS).

    A SIGALRM timer: only in the main thread and when no other timer is set; elsewhere the block
    runs without a limit (the structural limits above still hold).
    """
    seconds = MUSIC21_SECONDS if seconds is None else seconds
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer") or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield
        return
    armed = [True]

    def alarm(_signum, _frame):
        if armed[0]:
            raise _Overtime

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Overtime:
        raise OversizedAbcError(f"music21 spent over {seconds:g} s {what} (overfull bars are "
                                "what it re-bars slowly)") from None
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _refuse_oversized_meters(text: str) -> None:
    """Raise OversizedAbcError for an ``M:`` field (header or inline) beyond the limits above;
    read with a regular expression, before music21 sees the text."""
    for m in _METER_FIELD.finditer(text):
        meter = normalise_meter(m.group(1))
        written = re.fullmatch(r"(\d+(?:\+\d+)*)/(\d+)", meter or "")
        if not written:
            continue  # unreadable or "none": music21 says what it makes of it
        beats = sum(int(n) for n in written.group(1).split("+"))
        quarters = float(meter_fraction(meter) * 4)
        if beats > MAX_METER_BEATS or quarters > MAX_BAR_QUARTERS:
            line = text.count("\n", 0, m.start()) + 1
            raise OversizedAbcError(
                f"line {line}: meter M:{m.group(1).strip()} ({beats} beats, a bar of {quarters:g} "
                f"quarter notes) is beyond what this checker reads ({MAX_METER_BEATS} beats, "
                f"{MAX_BAR_QUARTERS} quarter notes): music21's time grows steeply past them")


def refuse_oversized(text: str) -> list[tuple[float, float | None, str, str]]:
    """Raise OversizedAbcError for a meter or a bar, as written, beyond the limits above;
    return the bars (``bar_durations``) otherwise."""
    bars = bar_durations(text)  # checks the meters first
    for i, (length, *_) in enumerate(bars, 1):
        if length > MAX_BAR_QUARTERS:
            raise OversizedAbcError(
                f"bar {i} lasts {length:g} quarter notes, beyond the {MAX_BAR_QUARTERS} this "
                "checker reads: music21's time to re-bar grows steeply with a bar's length")
    return bars


def _parse(text: str, sizes_checked: bool = False):
    """music21's score of one tune; OversizedAbcError for a meter or bar it would take minutes
    over (refused before parsing, unless the caller's ``refuse_oversized`` already did) or when
    it runs past MUSIC21_SECONDS."""
    from music21 import converter  # noqa: PLC0415 - music21 imports slowly

    if not sizes_checked:
        refuse_oversized(text)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            music21_time_limit("parsing the tune"):
        warnings.simplefilter("ignore")
        return converter.parse(for_music21(text), format="abc")


def check_abc(text: str) -> AbcCheck:
    """Parse one tune with music21 and check its bars against its meter."""
    lines = text.strip().split("\n")
    if not lines or not lines[0].startswith("X:") or not any(l.startswith("K:") for l in lines[:6]):
        return AbcCheck(False, False, error="missing X: or K: header line")
    try:
        bars = refuse_oversized(text)   # the bars as written, measured once
        score = _parse(text, sizes_checked=True)
    except Exception as exc:  # music21 raises many types for bad ABC
        return AbcCheck(False, False, error=f"{type(exc).__name__}: {exc}"[:200])
    notes = list(score.recurse().notes)
    if not notes:
        return AbcCheck(False, False, error="no notes")
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

    _refuse_oversized_meters(text)   # music21's tokenizer already partitions each meter
    text = for_music21(text)
    handler = abcFormat.ABCHandler()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            music21_time_limit("reading the tune's tokens"):
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


class MidiExportError(InputError):
    """A tune music21 parses but that cannot become MIDI (named with the reason)."""


FIDDLE = 40  # General MIDI program 41, "Violin", numbered from 0: the folk tunes' instrument
GUITAR = 24  # General MIDI program 25, "Acoustic Guitar (nylon)": the chord symbols
GRACE_BEATS = 0.125
_DECLARED_METER = re.compile(r"(?:^|\[)M:\s*(\d+/\d+)", re.MULTILINE)


@dataclass
class TuneNotes:
    """What a tune sounds like: notes in beats (quarter notes), its meter map
    [(beat, numerator, denominator)], its length in beats, and how repeats were read."""

    notes: list
    time_signatures: list
    length: float
    repeats: str = "expanded"   # or "played once (<music21's reason>)"
    chords: list = field(default_factory=list)   # chord symbols ("G", "D7") as held notes


def abc_to_notes(text: str) -> TuneNotes:
    """The sounding notes of a one-voice ABC tune, read off music21's parsed score.

    Repeats are expanded; where music21 cannot pair them (a ``|:`` never closed, a ``:|`` after
    a section that already repeated), every section is played once, as abc2midi does. Tied
    notes become one note; grace notes (no duration in the score) sound for a 32nd note at
    the time of the note they ornament, as music21's own MIDI writer plays them; a chord gives
    one note per pitch.
    """
    from music21 import harmony, meter, repeat  # noqa: PLC0415 - music21 imports slowly
    from music21.exceptions21 import StreamException  # noqa: PLC0415

    score = _parse(text)
    how = "expanded"
    try:
        played = score.expandRepeats()
    except (repeat.ExpanderException, StreamException) as exc:
        played = _parse(text)  # a failed expansion may leave the score half-prepared
        _play_repeats_once(played)
        # (music21 builds no measures for some short tunes and then cannot expand anything)
        how = f"played once ({exc})" if re.search(r":\||\|:|::", text) else "expanded"
    flat = played.stripTies().flatten()
    notes, symbols = [], []
    for el in flat.notes:
        if isinstance(el, harmony.ChordSymbol):
            symbols.append((float(el.offset), [int(p.midi) for p in el.pitches]))
            continue
        length = float(el.quarterLength) or GRACE_BEATS   # a grace note: a short flick
        start = float(el.offset)
        for pitch in el.pitches:
            notes.append(Note(int(pitch.midi), start, start + length, velocity=90))
    # the meters the tune declares (music21 also inserts meters of its own, such as 1/8 for a
    # one-note pickup bar, to make irregular bars fit: those are not the tune's)
    declared = {tuple(int(v) for v in m.split("/")) for m in _DECLARED_METER.findall(text)}
    sigs: list[tuple[float, int, int]] = []
    for ts in flat.getElementsByClass(meter.TimeSignature):
        entry = (float(ts.offset), int(ts.numerator), int(ts.denominator))
        if entry[1:] in declared and (not sigs or sigs[-1][1:] != entry[1:]):
            sigs.append(entry)
    sigs = [(0.0, *sigs[0][1:])] + sigs[1:] if sigs else [(0.0, 4, 4)]  # from the first beat
    end = max([float(flat.highestTime)] + [n.end for n in notes])
    chords = [Note(p, start, stop, velocity=55)
              for (start, pitches), stop in zip(symbols, [s[0] for s in symbols[1:]] + [end])
              if stop > start for p in pitches]
    return TuneNotes(notes, sigs, end, how, chords)


def abc_to_midi(text: str, path: str, log=None, bpm: float = 120.0,
                program: int = FIDDLE) -> str:
    """Write a tune as a type-1 MIDI file with the project's own writer (apps/music/midi.py).

    music21 parses the ABC (``abc_to_notes``); the notes are then written by ``write_midi``,
    not by music21's MIDI writer, which fails on some valid tunes (a time signature "already
    found in this Stream" while it builds its conductor track). When repeats cannot be paired
    and are played once, ``log`` (when given) is told so. Raises MidiExportError naming the
    reason when the tune holds no note to write.
    """
    tune = abc_to_notes(text)
    if tune.repeats != "expanded" and log:
        log(f"{os.path.basename(path)}: repeats {tune.repeats}")
    if not tune.notes:
        raise MidiExportError(f"{path}: the tune holds no note with a duration")
    tracks = [Track(tune.notes, program=program, name="tune")]
    if tune.chords:
        tracks.append(Track(tune.chords, program=GUITAR, channel=1, name="chords"))
    # MIDI can only say meters whose denominator is a power of two (M:3/6 exists in old
    # transcriptions): the nearest one is written; the notes' times are not affected
    sigs = [(beat, num, 2 ** max(0, round(math.log2(den)))) for beat, num, den in
            tune.time_signatures]
    return write_midi(path, tracks, tempo=bpm, time_signature=sigs, length=tune.length)
