"""MIDI files in and out, on mido: note events, tempo and time-signature maps, piano rolls.

Units used throughout:

* **beat** = one quarter note, the unit of MIDI's ``ticks_per_beat`` (a 6/8 bar is 3 beats, a
  4/4 bar 4). Note times are floats in beats from the start of the file, so they do not depend
  on the tempo; ``MidiSong.seconds(beats)`` converts them through the tempo map.
* **step** = 1 / ``steps_per_beat`` of a beat (``steps_per_beat=4``: sixteenth notes).
* **pitch** = MIDI key number 0-127 (60 = middle C; the 88 piano keys are 21-108).
* **channel** = 0-15 as mido numbers them; the General MIDI drum channel "10" is index 9.

Reading::

    song = read_midi("tune.mid")          # MidiError naming the file for corrupt/truncated input
    song.notes                             # [Note(pitch, start, end, velocity, channel, program,
                                           #       track)]
    song.tempos, song.time_signatures      # [(beat, bpm)], [(beat, numerator, denominator)]
    roll = piano_roll(song.melody(), steps_per_beat=4)        # (steps, 128) float32 in {0, 1}

Writing::

    write_midi("out.mid", [Track(notes, program=0)], tempo=120, time_signature=(4, 4))
    write_monophonic("out.mid", [60, 62, None, 64], [1, 1, 0.5, 1.5])   # None = rest
    write_drums("beat.mid", drum_notes)                                  # channel 9 (GM "10")

The files written are type 1: track 0 holds the tempo and time-signature map, then one track
per instrument. Note-offs are written before note-ons at the same tick, so repeated pitches
survive, and the end-of-track event is placed at ``length`` beats, so trailing rests survive a
write/read round trip.
"""
from __future__ import annotations

import io
import os
import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from apps.common.errors import InputError

DRUM_CHANNEL = 9          # General MIDI channel 10
DEFAULT_TPB = 480         # ticks per beat of the files we write
DEFAULT_BPM = 120.0       # MIDI's default tempo (500,000 us per beat) when a file sets none
PIANO_KEYS = (21, 108)    # A0..C8, the 88 keys (inclusive)

#: General MIDI program families (program // 8), for grouping multi-track files.
GM_FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive",
    "sound effects",
)


class MidiError(InputError):
    """A MIDI file that cannot be read (missing, not MIDI, truncated, corrupt) or written."""


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Note:
    """One sounding note. Times in beats (quarter notes) from the file start."""

    pitch: int
    start: float
    end: float
    velocity: int = 90
    channel: int = 0
    program: int = 0
    track: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def is_drum(self) -> bool:
        return self.channel == DRUM_CHANNEL


@dataclass
class Track:
    """What ``write_midi`` writes as one MIDI track: notes on one channel with one program.

    ``channel=9`` makes it a drum track (``program`` is then ignored by GM players).
    The notes' own ``channel`` and ``program`` fields are ignored when writing.
    """

    notes: list
    program: int = 0
    channel: int = 0
    name: str = ""


@dataclass
class MidiSong:
    """Everything ``read_midi`` extracts from one file.

    notes            sorted by (start, pitch); each knows its channel, program and track
    tempos           tempo map [(beat, bpm)], sorted, always starting at beat 0
    time_signatures  [(beat, numerator, denominator)], sorted, always starting at beat 0
    length           end of the longest track, in beats (covers trailing rests)
    """

    path: str
    ticks_per_beat: int
    midi_type: int
    notes: list = field(default_factory=list)
    tempos: list = field(default_factory=lambda: [(0.0, DEFAULT_BPM)])
    time_signatures: list = field(default_factory=lambda: [(0.0, 4, 4)])
    track_names: list = field(default_factory=list)
    length: float = 0.0

    # -- selections ------------------------------------------------------------------------------
    def drums(self) -> list:
        """Notes on the GM drum channel (index 9); pitches name kit pieces (36 kick, 38
        snare...)."""
        return [n for n in self.notes if n.is_drum]

    def pitched(self) -> list:
        """Every note not on the drum channel."""
        return [n for n in self.notes if not n.is_drum]

    def parts(self) -> dict:
        """Pitched notes grouped by (track, channel, program): one entry per instrument part."""
        out: dict = {}
        for n in self.pitched():
            out.setdefault((n.track, n.channel, n.program), []).append(n)
        return out

    def families(self) -> dict:
        """Pitched notes grouped by GM family name ('piano', 'guitar', 'bass', ...) plus 'drums'."""
        out: dict = {}
        for n in self.notes:
            key = "drums" if n.is_drum else GM_FAMILIES[n.program // 8]
            out.setdefault(key, []).append(n)
        return out

    def melody(self, channel: int | None = None, track: int | None = None) -> list:
        """A strictly monophonic line: at each onset time, the highest note starting there.

        Each kept note is cut at the next kept onset (the "skyline"). ``channel``/``track``
        restrict the choice first (e.g. ``channel=0`` for the tune of a 3-track CRE file).
        """
        notes = [n for n in self.pitched()
                 if (channel is None or n.channel == channel)
                 and (track is None or n.track == track)]
        return skyline(notes)

    # -- time maps -----------------------------------------------------------------------------
    @property
    def bpm(self) -> float:
        """The first tempo, in quarter-note beats per minute."""
        return self.tempos[0][1]

    def seconds(self, beats):
        """Beats -> seconds through the tempo map (scalar or array)."""
        return beats_to_seconds(beats, self.tempos)

    def time_signature_at(self, beat: float) -> tuple:
        """(beat where that signature starts, numerator, denominator) in force at ``beat``."""
        i = bisect_right([t[0] for t in self.time_signatures], beat + 1e-9) - 1
        return self.time_signatures[max(i, 0)]

    def bar_position(self, beat: float) -> tuple:
        """(bar index, position in the bar in beats) of ``beat``, following the signature map.

        Each signature change is taken to start a bar; a pickup is not detected (bar 0 starts
        at beat 0)."""
        bar = 0
        for k, (start, num, den) in enumerate(self.time_signatures):
            bar_len = num * 4.0 / den
            end = self.time_signatures[k + 1][0] if k + 1 < len(self.time_signatures) else np.inf
            if beat < end:
                q, r = divmod(beat - start, bar_len)
                return bar + int(q), float(r)
            bar += int(np.ceil((end - start) / bar_len - 1e-9))
        raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
def _check_chunks(path: str, data: bytes) -> None:
    """Walk the chunk headers: a clear MidiError for a non-MIDI, short or truncated file."""
    if len(data) < 14:
        raise MidiError(f"{path}: not a MIDI file: only {len(data)} bytes (a header alone is 14)")
    if data[:4] != b"MThd":
        raise MidiError(f"{path}: not a MIDI file: it does not start with the 'MThd' header "
                        f"(starts with {data[:4]!r})")
    hlen, fmt, ntrks, division = struct.unpack(">IHHh", data[4:14])
    if hlen < 6:
        raise MidiError(f"{path}: corrupt MIDI header: length {hlen} (expected 6)")
    if fmt not in (0, 1, 2):
        raise MidiError(f"{path}: corrupt MIDI header: unknown file type {fmt}")
    if division <= 0:
        raise MidiError(f"{path}: SMPTE time division ({division}) is not supported; "
                        "only ticks per beat")
    pos, found = 8 + hlen, 0
    while pos < len(data) and found < ntrks:
        if pos + 8 > len(data):
            raise MidiError(f"{path}: truncated MIDI file: chunk header {found + 1} is cut off "
                            f"after {len(data) - pos} bytes (the file is {len(data)} bytes long)")
        tag, length = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        if pos + 8 + length > len(data):
            raise MidiError(
                f"{path}: truncated MIDI file: track chunk {found + 1} of {ntrks} ({tag!r}) "
                f"declares {length} bytes but only {len(data) - pos - 8} remain (the file is "
                f"{len(data)} bytes long; it was probably cut off during download or copy)"
            )
        if tag == b"MTrk":
            found += 1
        pos += 8 + length
    if found < ntrks:
        raise MidiError(f"{path}: truncated MIDI file: the header announces {ntrks} tracks but "
                        f"only {found} are present")


def _varlen(data: bytes, pos: int, end: int) -> tuple:
    value = 0
    for _ in range(4):
        if pos >= end:
            raise IndexError
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, pos
    raise ValueError("variable-length number longer than 4 bytes")


def _scan_track(data: bytes, start: int, end: int) -> tuple:
    """Walk one track chunk's events. Returns (problem or None, end of the end-of-track event).

    Used to explain why mido failed, and to repair files with junk after end-of-track.
    """
    pos, running = start, None
    try:
        while pos < end:
            _, pos = _varlen(data, pos, end)
            status = data[pos] if pos < end else None
            if status is None:
                return "the data ends after a delta time", None
            if status >= 0x80:
                pos += 1
                if status < 0xF0:
                    running = status
            elif running is None:
                return f"data byte 0x{status:02x} at byte {pos} has no status byte before it", None
            else:
                status = running
            if status == 0xFF:
                mtype = data[pos]
                length, pos = _varlen(data, pos + 1, end)
                pos += length
                if mtype == 0x2F:
                    return None, pos
            elif status in (0xF0, 0xF7):
                length, pos = _varlen(data, pos, end)
                pos += length
            else:
                for _ in range(1 if status & 0xF0 in (0xC0, 0xD0) else 2):
                    if pos >= end:
                        return "the data ends inside a channel event", None
                    if data[pos] > 0x7F:
                        return (f"byte {pos} is 0x{data[pos]:02x} where a data byte (0-127) was "
                                "expected"), None
                    pos += 1
    except (IndexError, ValueError):
        return "the data ends inside an event", None
    return "the track has no end-of-track event (it was cut off)", None


def _diagnose(path: str, data: bytes) -> tuple:
    """(message, repaired bytes or None) for a file whose chunks are intact but mido fails."""
    hlen = struct.unpack(">I", data[4:8])[0]
    ntrks = struct.unpack(">H", data[10:12])[0]
    pos, k, out, problems = 8 + hlen, 0, bytearray(data[:8 + hlen]), []
    repairable = True
    while pos + 8 <= len(data) and k < ntrks:
        tag, length = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        start, end = pos + 8, pos + 8 + length
        if tag == b"MTrk":
            k += 1
            problem, eot = _scan_track(data, start, end)
            if problem:
                problems.append(f"track {k} of {ntrks} (chunk at byte {pos}): {problem}")
                repairable = False
            elif eot < end:
                junk = data[eot:end]
                problems.append(f"track {k} of {ntrks} holds {len(junk)} stray bytes "
                                f"({junk[:8].hex(' ')}) after its end-of-track event (byte {eot})")
                end = eot
            out += tag + struct.pack(">I", end - start) + data[start:end]
        pos += 8 + length
    if not problems:
        return None, None
    return "; ".join(problems), (bytes(out) if repairable else None)


def read_midi(path: str, *, repair: bool = False) -> MidiSong:
    """Read note events, tempo/time-signature maps, programs and drums from a MIDI file.

    Note pairing: a note-on (velocity > 0) opens a note, the next note-off (or note-on with
    velocity 0) of the same (track, channel, pitch) closes it, first in first out; notes still
    open at the end of their track close there. The program of a note is the last program
    change on its channel at or before its onset (program changes apply to a channel across
    tracks, as in the MIDI standard; at equal ticks they act before note-ons).

    Raises MidiError naming the file and the problem: missing file, not MIDI, truncated chunk,
    corrupt event data (with the track and byte where it goes wrong). ``repair=True`` reads files
    whose only fault is junk after a track's end-of-track event (a download artefact) by dropping
    that junk.
    """
    import mido  # noqa: PLC0415 - keep `import apps.music.midi` cheap
    from mido.midifiles.meta import KeySignatureError  # noqa: PLC0415

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MidiError(f"{path}: cannot open MIDI file: {exc.strerror or exc}") from exc
    _check_chunks(path, data)
    try:
        mf = mido.MidiFile(file=io.BytesIO(data))
    except (EOFError, OSError, ValueError, KeyError, IndexError, struct.error, TypeError,
            KeySignatureError) as exc:  # KeySignatureError: a key with 127 sharps
        problem, repaired = _diagnose(path, data)
        if repair and repaired is not None:
            try:
                return _song_from_mido(path, mido.MidiFile(file=io.BytesIO(repaired)))
            except Exception:  # noqa: BLE001 - fall through to the error below
                pass
        detail = problem or f"{type(exc).__name__}: {exc}"
        hint = " (repair=True drops the stray bytes)" if repaired is not None and not repair else ""
        raise MidiError(f"{path}: damaged or truncated MIDI file (mido cannot read it): "
                        f"{detail}{hint}") from exc
    return _song_from_mido(path, mf)


def _song_from_mido(path: str, mf) -> MidiSong:
    tpb = int(mf.ticks_per_beat)
    # Merge every track's events on one absolute-tick time line. Priority at equal ticks:
    # meta and program changes (0), note-offs (1), note-ons (2).
    events = []
    track_ends, names = [], []
    for ti, track in enumerate(mf.tracks):
        tick, name = 0, ""
        for seq, msg in enumerate(track):
            tick += msg.time
            if msg.type == "track_name" and not name:
                name = msg.name.strip()
            if msg.type == "note_on" and msg.velocity > 0:
                prio = 2
            elif msg.type in ("note_on", "note_off"):
                prio = 1
            else:
                prio = 0
            events.append((tick, prio, ti, seq, msg))
        track_ends.append(tick)
        names.append(name)
    events.sort(key=lambda e: e[:4])

    tempos, sigs = [], []
    program = [0] * 16
    open_notes: dict = {}
    notes = []
    for tick, _, ti, _, msg in events:
        t = msg.type
        if t == "set_tempo":
            if msg.tempo <= 0:
                raise MidiError(f"{path}: track {ti}: a tempo of {msg.tempo} microseconds per "
                                f"beat at beat {tick / tpb:g} (a beat must take some time): "
                                "corrupt tempo event")
            tempos.append((tick / tpb, 60e6 / msg.tempo))
        elif t == "time_signature":
            if msg.numerator < 1:
                raise MidiError(f"{path}: track {ti}: time signature "
                                f"{msg.numerator}/{msg.denominator} at beat {tick / tpb:g} has "
                                "no beats in a bar: corrupt time-signature event")
            sigs.append((tick / tpb, int(msg.numerator), int(msg.denominator)))
        elif t == "program_change":
            program[msg.channel] = int(msg.program)
        elif t == "note_on" and msg.velocity > 0:
            key = (ti, msg.channel, msg.note)
            open_notes.setdefault(key, []).append((tick, msg.velocity, program[msg.channel]))
        elif t in ("note_on", "note_off"):
            stack = open_notes.get((ti, msg.channel, msg.note))
            if stack:
                on, vel, prog = stack.pop(0)
                notes.append(Note(int(msg.note), on / tpb, tick / tpb, int(vel), int(msg.channel),
                                  prog, ti))
    for (ti, ch, pitch), stack in open_notes.items():  # notes left hanging: close at track end
        for on, vel, prog in stack:
            notes.append(Note(int(pitch), on / tpb, track_ends[ti] / tpb, int(vel), int(ch), prog,
                              ti))
    notes.sort(key=lambda n: (n.start, n.pitch, n.track))
    return MidiSong(
        path=path, ticks_per_beat=tpb, midi_type=int(mf.type), notes=notes,
        tempos=_dedupe_map(tempos, (0.0, DEFAULT_BPM)),
        time_signatures=_dedupe_map(sigs, (0.0, 4, 4)),
        track_names=names, length=max(track_ends, default=0) / tpb,
    )


def _dedupe_map(entries: list, default: tuple) -> list:
    """Sorted map with one entry per position (the last wins), starting at beat 0.

    Before the first event MIDI's defaults apply (120 bpm, 4/4), as the standard says.
    """
    by_pos: dict = {}
    for e in entries:
        by_pos[e[0]] = e
    out = [by_pos[k] for k in sorted(by_pos)]
    if not out or out[0][0] > 0:
        out.insert(0, default)
    return out


def beats_to_seconds(beats, tempos: Sequence[tuple]):
    """Convert beat positions to seconds through a tempo map [(beat, bpm)] (scalar or array)."""
    b = np.asarray(beats, dtype=np.float64)
    starts = np.array([t[0] for t in tempos], dtype=np.float64)
    spb = np.array([60.0 / t[1] for t in tempos], dtype=np.float64)  # seconds per beat
    seg_secs = np.concatenate([[0.0], np.cumsum(np.diff(starts) * spb[:-1])])
    i = np.clip(np.searchsorted(starts, b, side="right") - 1, 0, len(starts) - 1)
    out = seg_secs[i] + (b - starts[i]) * spb[i]
    return float(out) if out.ndim == 0 else out


def skyline(notes: Iterable[Note]) -> list:
    """Monophonic reduction: at each onset keep the highest note; cut it at the next onset."""
    by_onset: dict = {}
    for n in notes:
        if n.start not in by_onset or n.pitch > by_onset[n.start].pitch:
            by_onset[n.start] = n
    kept = [by_onset[s] for s in sorted(by_onset)]
    out = []
    for k, n in enumerate(kept):
        if k + 1 < len(kept) and kept[k + 1].start < n.end:
            n = replace(n, end=kept[k + 1].start)
        out.append(n)
    return out


# ----------------------------------------------------------------------------------------------
# Grids and piano rolls
# ----------------------------------------------------------------------------------------------
def quantize(notes: Iterable[Note], steps_per_beat: int = 4) -> list:
    """Snap note starts and ends to the step grid. Returns (pitch, start_step, end_step, note).

    A note keeps at least one step. Steps are counted in beats, so the grid follows the score,
    whatever the tempo map does (a ritardando changes seconds, not steps).
    """
    out = []
    for n in notes:
        s = int(round(n.start * steps_per_beat))
        e = max(int(round(n.end * steps_per_beat)), s + 1)
        out.append((n.pitch, s, e, n))
    return out


def onset_grid(notes: Iterable[Note], steps_per_beat: int = 4):
    """Onsets on the step grid with their micro-timing, for drum patterns.

    Returns arrays ``step`` (int), ``pitch`` (int), ``velocity`` (int) and ``offset`` (float in
    [-0.5, 0.5): how far the onset lies from its grid step, in steps), one entry per note.
    """
    notes = list(notes)
    pos = np.array([n.start * steps_per_beat for n in notes], dtype=np.float64)
    step = np.rint(pos).astype(np.int64)
    return (step, np.array([n.pitch for n in notes], dtype=np.int64),
            np.array([n.velocity for n in notes], dtype=np.int64), pos - step)


def piano_roll(notes: Iterable[Note], steps_per_beat: int = 4, length: int | None = None,
               pitch_range: tuple = (0, 127), mode: str = "hold", velocity: bool = False):
    """A (steps, pitches) float32 matrix of the notes on the step grid.

    mode 'hold': 1 (or velocity / 127) while a note sounds; 'onset': only at its first step.
    ``pitch_range`` (low, high) inclusive selects the columns (e.g. PIANO_KEYS for 88 keys);
    notes outside it are dropped. ``length`` in steps (default: up to the last note's end).
    """
    if mode not in ("hold", "onset"):
        raise ValueError(f"piano_roll: mode must be 'hold' or 'onset', got {mode!r}")
    lo, hi = pitch_range
    q = quantize(notes, steps_per_beat)
    n_steps = length if length is not None else max((e for _, _, e, _ in q), default=0)
    roll = np.zeros((n_steps, hi - lo + 1), dtype=np.float32)
    for pitch, s, e, note in q:
        if not lo <= pitch <= hi or s >= n_steps:
            continue
        value = note.velocity / 127.0 if velocity else 1.0
        if mode == "onset":
            roll[s, pitch - lo] = value
        else:
            roll[s:min(e, n_steps), pitch - lo] = value
    return roll


def roll_to_notes(roll, steps_per_beat: int = 4, low_pitch: int = 0, velocity: int = 90,
                  onsets=None) -> list:
    """Inverse of ``piano_roll(mode='hold')``: each run of active steps becomes one note.

    roll (steps, pitches); column j is pitch ``low_pitch + j``. ``onsets`` (same shape,
    optional) splits a run where a new onset starts (repeated notes).
    """
    roll = np.asarray(roll)
    notes = []
    for j in range(roll.shape[1]):
        col = roll[:, j] > 0
        on = None if onsets is None else np.asarray(onsets)[:, j] > 0
        start = None
        for t in range(roll.shape[0] + 1):
            active = t < roll.shape[0] and col[t]
            split = active and start is not None and on is not None and on[t]
            if start is not None and (not active or split):
                notes.append(Note(low_pitch + j, start / steps_per_beat, t / steps_per_beat,
                                  velocity))
                start = None
            if active and start is None:
                start = t
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def sequence_to_notes(pitches: Sequence, durations: Sequence, start: float = 0.0,
                      velocity: int = 90) -> list:
    """Monophonic line: pitches (int, or None for a rest) with durations in beats, back to back."""
    if len(pitches) != len(durations):
        raise ValueError(f"sequence_to_notes: {len(pitches)} pitches but {len(durations)} "
                         "durations")
    notes, t = [], float(start)
    for p, d in zip(pitches, durations):
        if d <= 0:
            raise ValueError(f"sequence_to_notes: durations must be positive, got {d}")
        if p is not None:
            notes.append(Note(int(p), t, t + float(d), velocity))
        t += float(d)
    return notes


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def _as_map(value, what: str) -> list:
    if isinstance(value, (int, float)):
        return [(0.0, float(value))] if what == "tempo" else None
    if what == "time_signature" and isinstance(value, tuple) and len(value) == 2:
        return [(0.0, int(value[0]), int(value[1]))]
    return sorted((tuple(v) for v in value), key=lambda v: v[0])


def write_midi(path: str, tracks: Sequence[Track], tempo=DEFAULT_BPM, time_signature=(4, 4),
               ticks_per_beat: int = DEFAULT_TPB, length: float | None = None) -> str:
    """Write a type-1 MIDI file: a conductor track (tempo and meter maps), then one per Track.

    tempo: bpm (quarter notes per minute) or a map [(beat, bpm)];
    time_signature: (numerator, denominator) or a map [(beat, numerator, denominator)];
    length: the song length in beats (end-of-track position; default: the last note-off).
    Note times in beats are rounded to the nearest tick. Raises MidiError for pitches,
    velocities, channels or programs outside 0-127 / 0-15.
    """
    import mido  # noqa: PLC0415

    tempos = _as_map(tempo, "tempo")
    sigs = _as_map(time_signature, "time_signature")
    last = max((n.end for tr in tracks for n in tr.notes), default=0.0)
    end_beat = max(last, length or 0.0)

    def tick(beats: float) -> int:
        return int(round(beats * ticks_per_beat))

    def to_track(evs: list, name: str):
        trk = mido.MidiTrack()
        if name:
            trk.append(mido.MetaMessage("track_name", name=name, time=0))
        now = 0
        for t, _, msg in sorted(evs, key=lambda e: (e[0], e[1])):
            trk.append(msg.copy(time=t - now))
            now = t
        trk.append(mido.MetaMessage("end_of_track", time=max(tick(end_beat) - now, 0)))
        return trk

    mf = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = []
    for beat, bpm in tempos:
        if bpm <= 0:
            raise MidiError(f"{path}: tempo must be positive, got {bpm} bpm")
        set_tempo = mido.MetaMessage("set_tempo", tempo=int(round(60e6 / bpm)))
        conductor.append((tick(beat), 0, set_tempo))
    for beat, num, den in sigs:
        if den & (den - 1) or den < 1:
            raise MidiError(f"{path}: time-signature denominator must be a power of 2, got {den}")
        conductor.append((tick(beat), 0, mido.MetaMessage("time_signature", numerator=num,
                                                          denominator=den)))
    mf.tracks.append(to_track(conductor, "conductor"))
    for k, tr in enumerate(tracks):
        if not 0 <= tr.channel <= 15 or not 0 <= tr.program <= 127:
            raise MidiError(f"{path}: track {k}: channel must be 0-15 and program 0-127, "
                            f"got channel {tr.channel}, program {tr.program}")
        evs = [] if tr.channel == DRUM_CHANNEL else [
            (0, 0, mido.Message("program_change", channel=tr.channel, program=tr.program))]
        for n in tr.notes:
            if not 0 <= n.pitch <= 127 or not 1 <= n.velocity <= 127:
                raise MidiError(f"{path}: track {k}: pitch must be 0-127 and velocity 1-127, got "
                                f"pitch {n.pitch}, velocity {n.velocity}")
            if n.end < n.start:
                raise MidiError(f"{path}: track {k}: note {n.pitch} ends ({n.end}) before it "
                                f"starts ({n.start})")
            on, off = tick(n.start), max(tick(n.end), tick(n.start) + 1)
            evs.append((on, 2, mido.Message("note_on", channel=tr.channel, note=int(n.pitch),
                                            velocity=int(n.velocity))))
            evs.append((off, 1, mido.Message("note_off", channel=tr.channel, note=int(n.pitch),
                                             velocity=0)))
        mf.tracks.append(to_track(evs, tr.name))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mf.save(path)
    return path


def write_monophonic(path: str, pitches: Sequence, durations: Sequence, tempo=DEFAULT_BPM,
                     time_signature=(4, 4), program: int = 0, velocity: int = 90,
                     name: str = "melody") -> str:
    """One melody: pitches (None = rest) and durations in beats, back to back, on channel 0."""
    notes = sequence_to_notes(pitches, durations, velocity=velocity)
    total = float(sum(durations))
    return write_midi(path, [Track(notes, program=program, name=name)], tempo=tempo,
                      time_signature=time_signature, length=total)


def write_drums(path: str, notes: Sequence[Note], tempo=DEFAULT_BPM, time_signature=(4, 4),
                extra_tracks: Sequence[Track] = (), length: float | None = None) -> str:
    """A drum track on channel 9 (GM channel 10), optionally beside pitched tracks."""
    drum = Track(list(notes), channel=DRUM_CHANNEL, name="drums")
    return write_midi(path, [*extra_tracks, drum], tempo=tempo, time_signature=time_signature,
                      length=length)


__all__ = [
    "DRUM_CHANNEL", "GM_FAMILIES", "PIANO_KEYS", "MidiError", "Note", "Track", "MidiSong",
    "read_midi", "beats_to_seconds", "skyline", "quantize", "onset_grid", "piano_roll",
    "roll_to_notes", "sequence_to_notes", "write_midi", "write_monophonic", "write_drums",
]
