"""Drum grooves as H/V/O matrices (GrooVAE's representation) and back to drum notes.

A drum part of T sixteenth-note steps becomes three (T, 9) float32 matrices, one column per
drum class (Magenta's 9-class kit, below):

* ``H`` hits: 1 where the class is struck at that step, else 0;
* ``V`` velocities: MIDI velocity / 127 at a hit, 0 elsewhere;
* ``O`` micro-timing offsets: where the stroke lies relative to its grid step, in steps, in
  [-0.5, 0.5) (a stroke at position p steps goes to step floor(p + 0.5), offset p - step), 0
  where there is no hit.

Steps are counted in beats (the file's ticks / ticks_per_beat, four steps per quarter note), so
the grid follows the score's tempo map: a ritardando stretches seconds, not steps, and an offset
is a fraction of a sixteenth whatever the tempo. ``offsets_to_ms`` goes back to milliseconds
through the tempo in force.

The inverse, ``hvo_to_notes``, is exact up to the MIDI tick: a note starts at
(step + offset) / 4 beats with velocity round(127 V), on the class's canonical pitch. So
MIDI -> H/V/O -> MIDI keeps every hit (as its class), its velocity exactly and its offset to
within half a tick. Two strokes of one class that land on one step (a flam, or 38 and 40
together) keep the louder one, as Magenta's converter does.

Magenta's 9 classes. The Groove MIDI Dataset's Roland TD-11 pitches (its SOURCE.md) come first;
the General MIDI pitches of Magenta's ``DEFAULT_DRUM_TYPE_PITCHES`` (note_seq's
drums_encoder_decoder.py) that the Roland list does not name are added so that the Lakh files'
GM kits map too (35 acoustic bass drum, 39 hand clap, 41 low floor tom, 54 tambourine, ...)::

    0 kick        36 | 35
    1 snare       38 40 37 | 27 28 31 32 33 34 39 56 65 66 75 85
    2 closed hh   42 22 44 | 54 68 69 70 71 73 78 80
    3 open hh     46 26 | 67 72 74 79 81
    4 low tom     43 58 | 29 41 61 64 84
    5 mid tom     47 45 | 60 63 77 86 87
    6 high tom    50 48 | 30 62 76 83
    7 crash       49 52 55 57
    8 ride        51 53 59 | 82

Where the two lists disagree (43, 45, 48, 52, 58) the Roland assignment wins. Other pitches
are dropped and counted. Written drums use each class's first pitch (36 38 42 46 43 47 50 49
51), which GM players render as kick, snare, closed and open hi-hat, three toms, crash, ride.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.music import midi

STEPS_PER_BEAT = 4          # sixteenth notes
STEPS_PER_BAR = 16          # 4/4
N_CLASSES = 9

CLASS_NAMES = ("kick", "snare", "closed hi-hat", "open hi-hat", "low tom", "mid tom", "high tom",
               "crash", "ride")
#: the Groove MIDI Dataset's mapping (groove-midi/SOURCE.md, GrooVAE's ROLAND_DRUM_PITCH_CLASSES)
ROLAND_PITCHES = (
    (36,), (38, 40, 37), (42, 22, 44), (46, 26), (43, 58), (47, 45), (50, 48), (49, 52, 55, 57),
    (51, 53, 59),
)
#: Magenta's General MIDI pitches (DEFAULT_DRUM_TYPE_PITCHES) not already in ROLAND_PITCHES
GM_EXTRA_PITCHES = (
    (35,), (27, 28, 31, 32, 33, 34, 39, 56, 65, 66, 75, 85), (54, 68, 69, 70, 71, 73, 78, 80),
    (67, 72, 74, 79, 81), (29, 41, 61, 64, 84), (60, 63, 77, 86, 87), (30, 62, 76, 83), (),
    (82,),
)
#: the pitch written for each class
CLASS_PITCHES = tuple(p[0] for p in ROLAND_PITCHES)


def _pitch_table() -> np.ndarray:
    table = np.full(128, -1, dtype=np.int64)
    for pitches in (GM_EXTRA_PITCHES, ROLAND_PITCHES):      # Roland last: it wins conflicts
        for k, group in enumerate(pitches):
            table[list(group)] = k
    return table


#: PITCH_TO_CLASS[pitch] = class 0-8, or -1 for a pitch outside the kit
PITCH_TO_CLASS = _pitch_table()


def drum_class(pitch: int) -> int:
    """Magenta's class (0-8) of a drum pitch, or -1 when the kit has no such drum."""
    return int(PITCH_TO_CLASS[pitch]) if 0 <= pitch <= 127 else -1


@dataclass
class HVOStats:
    """What ``notes_to_hvo`` did with the notes it was given."""

    notes: int = 0          # drum notes inside the window
    hits: int = 0           # hits kept (one per class and step)
    merged: int = 0         # notes dropped because a louder one of the same class shared the step
    unmapped: int = 0       # notes whose pitch is in no class
    outside: int = 0        # notes before the window's start or after its end


def grid_position(beats, start_beat: float = 0.0, steps_per_beat: int = STEPS_PER_BEAT):
    """(step, offset) of onsets at ``beats``: step = floor(p + 0.5), offset = p - step in
    [-0.5, 0.5), with p = (beats - start_beat) * steps_per_beat."""
    p = (np.asarray(beats, dtype=np.float64) - start_beat) * steps_per_beat
    step = np.floor(p + 0.5).astype(np.int64)
    return step, p - step


def notes_to_hvo(notes, n_steps: int, start_beat: float = 0.0,
                 steps_per_beat: int = STEPS_PER_BEAT) -> tuple:
    """Drum notes -> (H, V, O, HVOStats); H, V, O are (n_steps, 9) float32.

    ``notes``: midi.Note objects (their channel is not checked: pass ``song.drums()``); step 0
    lies at ``start_beat``. Onsets that round to a step outside [0, n_steps) are left out.
    """
    H = np.zeros((n_steps, N_CLASSES), np.float32)
    V = np.zeros((n_steps, N_CLASSES), np.float32)
    O = np.zeros((n_steps, N_CLASSES), np.float32)
    st = HVOStats()
    notes = list(notes)
    if not notes:
        return H, V, O, st
    step, off = grid_position([n.start for n in notes], start_beat, steps_per_beat)
    best = np.zeros((n_steps, N_CLASSES), np.int64)       # velocity of the stroke kept
    for n, s, o in zip(notes, step, off):
        k = drum_class(n.pitch)
        if not 0 <= s < n_steps:
            st.outside += 1
            continue
        st.notes += 1
        if k < 0:
            st.unmapped += 1
            continue
        if best[s, k] == 0:
            st.hits += 1
        else:
            st.merged += 1
        if n.velocity > best[s, k]:                        # the louder stroke wins
            best[s, k] = n.velocity
            H[s, k] = 1.0
            V[s, k] = n.velocity / 127.0
            O[s, k] = o
    return H, V, O, st


def hvo_to_notes(H, V, O, start_beat: float = 0.0, steps_per_beat: int = STEPS_PER_BEAT,
                 pitches=CLASS_PITCHES, length_steps: float = 0.5) -> list:
    """The exact inverse of ``notes_to_hvo``: one midi.Note per hit, on channel 9.

    A hit at (step t, class k) starts at start_beat + (t + O[t, k]) / steps_per_beat beats,
    with velocity clip(round(127 V[t, k]), 1, 127) and pitch ``pitches[k]``. It lasts
    ``length_steps`` steps (drums ignore durations), cut at the next stroke of its class so
    that strokes of one pitch never overlap. Any H > 0.5 counts as a hit. A stroke that would
    start before beat 0 (step 0 with a negative offset) starts at beat 0: MIDI has no earlier
    time.
    """
    H, V, O = (np.asarray(a, dtype=np.float64) for a in (H, V, O))
    if not (H.shape == V.shape == O.shape) or H.ndim != 2 or H.shape[1] != N_CLASSES:
        raise ValueError(f"hvo_to_notes: H, V, O must all be (steps, {N_CLASSES}), got "
                         f"{H.shape}, {V.shape}, {O.shape}")
    notes = []
    for k in range(N_CLASSES):
        steps = np.flatnonzero(H[:, k] > 0.5)
        starts = start_beat + (steps + np.clip(O[steps, k], -0.5, 0.5)) / steps_per_beat
        starts = np.maximum(starts, 0.0)
        for j, (t, s) in enumerate(zip(steps, starts)):
            end = s + length_steps / steps_per_beat
            if j + 1 < len(starts):
                end = min(end, starts[j + 1])
            vel = int(np.clip(np.rint(V[t, k] * 127.0), 1, 127))
            notes.append(midi.Note(int(pitches[k]), float(s), float(max(end, s)), vel,
                                   midi.DRUM_CHANNEL))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def song_hvo(song: midi.MidiSong, n_steps: int | None = None) -> tuple:
    """H, V, O (and stats) of a whole song's drum channel, step 0 at beat 0."""
    if n_steps is None:
        n_steps = int(np.ceil(song.length * STEPS_PER_BEAT))
    return notes_to_hvo(song.drums(), n_steps)


def write_hvo(path: str, H, V, O, tempo=midi.DEFAULT_BPM, time_signature=(4, 4),
              extra_tracks=(), start_beat: float = 0.0) -> str:
    """Write H/V/O as a drum track (channel 9, GM "10") to a MIDI file."""
    notes = hvo_to_notes(H, V, O, start_beat=start_beat)
    length = start_beat + len(H) / STEPS_PER_BEAT
    return midi.write_drums(path, notes, tempo=tempo, time_signature=time_signature,
                            extra_tracks=extra_tracks, length=length)


def offsets_to_ms(offsets, bpm: float, steps_per_beat: int = STEPS_PER_BEAT):
    """Offsets in steps -> milliseconds at a tempo of ``bpm`` quarter notes per minute."""
    return np.asarray(offsets, dtype=np.float64) * (60_000.0 / bpm / steps_per_beat)


# ----------------------------------------------------------------------------------------------
# Fixed beats: the drum-machine baseline and the "typical beat" template
# ----------------------------------------------------------------------------------------------
#: one bar of the drum machine's 4/4 rock beat: kick on beats 1 and 3, snare on 2 and 4, closed
#: hi-hat on every eighth note; velocity 100, no micro-timing
ROCK_BAR = {0: (0, 8), 1: (4, 12), 2: (0, 2, 4, 6, 8, 10, 12, 14)}


def rock_beat(n_steps: int, velocity: int = 100) -> tuple:
    """The drum-machine baseline: ROCK_BAR repeated over ``n_steps`` (H, V, O)."""
    H = np.zeros((n_steps, N_CLASSES), np.float32)
    for k, steps in ROCK_BAR.items():
        for s in steps:
            H[s::STEPS_PER_BAR, k] = 1.0
    return H, H * (velocity / 127.0), np.zeros_like(H)


def beat_template(H) -> np.ndarray:
    """The "typical beat": each (step of the bar, class) cell's hit rate over windows of
    hits H (..., T, 9) with T a multiple of 16. Returns (16, 9) in [0, 1]."""
    H = np.asarray(H, dtype=np.float64)
    T = H.shape[-2]
    if T % STEPS_PER_BAR:
        raise ValueError(f"beat_template: {T} steps is not a whole number of 4/4 bars")
    bars = H.reshape(-1, T // STEPS_PER_BAR, STEPS_PER_BAR, N_CLASSES)
    return bars.mean(axis=(0, 1)).astype(np.float32)


def template_distance(H, template) -> np.ndarray:
    """The seed's discriminant: mean squared distance between each bar of H (..., T, 9) and the
    typical beat (16, 9); lower is "more like a normal beat". Returns one value per leading
    index (a float for a single (T, 9) beat)."""
    H = np.asarray(H, dtype=np.float64)
    T = H.shape[-2]
    bars = H.reshape(*H.shape[:-2], T // STEPS_PER_BAR, STEPS_PER_BAR, N_CLASSES)
    d = ((bars - np.asarray(template, dtype=np.float64)) ** 2).mean(axis=(-3, -2, -1))
    return float(d) if np.ndim(d) == 0 else d


__all__ = [
    "STEPS_PER_BEAT", "STEPS_PER_BAR", "N_CLASSES", "CLASS_NAMES", "ROLAND_PITCHES",
    "GM_EXTRA_PITCHES", "CLASS_PITCHES", "PITCH_TO_CLASS", "HVOStats", "drum_class",
    "grid_position", "notes_to_hvo", "hvo_to_notes", "song_hvo", "write_hvo", "offsets_to_ms",
    "ROCK_BAR", "rock_beat", "beat_template", "template_distance",
]
