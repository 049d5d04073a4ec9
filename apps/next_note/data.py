"""Tunes as notes, notes as examples, examples as one-hot features.

* tunes: ``../shared/data/cre-irish-midi`` (MIDI via apps/music/midi.py, each tune transposed so
  its root is C using roots.csv) or an Essen subset (apps/music/esac.py, already in C major /
  A minor); whole tunes are held out (``split_tunes``);
* features of note i (all one-hot, concatenated; F = context * 100 + 44 inputs): the
  ``context`` previous notes' keys (88 + "no note" before the start) and durations (10 classes
  + "none"), then note i's own duration and its position in the bar (32 sixteenth slots +
  "unknown"). ``Examples`` keeps them as small integers; ``features`` builds a batch's matrix.
"""
from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass

import numpy as np

from apps.common.errors import InputError
from apps.music import esac, midi
from apps.music.data_paths import resolve_data_dir

LOW_KEY, N_KEYS = 21, 88                     # A0 .. C8
NO_NOTE = N_KEYS                             # pitch slot before the first note
DUR_CLASSES = (0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)   # beats
NO_DUR = len(DUR_CLASSES)
N_POS = 32                                   # sixteenth slots in a bar (up to 8 beats)
UNKNOWN_POS = N_POS
P_SLOTS, D_SLOTS, POS_SLOTS = N_KEYS + 1, len(DUR_CLASSES) + 1, N_POS + 1


@dataclass
class Tune:
    """A monophonic tune as notes: keys (MIDI), durations to the next onset and bar positions
    (beats), bar length (beats, None if unknown), tempo (bpm) and meter."""

    name: str
    pitches: np.ndarray
    durs: np.ndarray
    pos: np.ndarray            # NaN where unknown
    bar_len: float | None
    tempo: float = 120.0
    meter: tuple = (4, 4)


def dur_class(d) -> np.ndarray:
    """Nearest duration class (in log2 distance), same shape as ``d``."""
    d = np.maximum(np.asarray(d, dtype=np.float64), 1e-3)
    dist = np.abs(np.log2(d)[..., None] - np.log2(np.array(DUR_CLASSES)))
    return dist.argmin(-1)


def pos_slot(pos) -> np.ndarray:
    """Bar positions (beats; NaN unknown) -> sixteenth slots 0..31, UNKNOWN_POS for NaN."""
    pos = np.asarray(pos, dtype=np.float64)
    slot = np.clip(np.rint(np.nan_to_num(pos, nan=0.0) * 4), 0, N_POS - 1).astype(np.int64)
    return np.where(np.isnan(pos), UNKNOWN_POS, slot)


def load_cre(data_dir: str | None = None, limit: int | None = None,
             transpose: bool = True) -> list:
    """CRE tunes: channel-0 melody (skyline), roots.csv root moved to C."""
    root_dir = resolve_data_dir("cre-irish-midi", "NNSCRATCH_DATA_CRE", data_dir)
    roots = {}
    with open(os.path.join(root_dir, "roots.csv"), newline="") as f:
        for row in csv.reader(f):
            if len(row) == 2 and row[1].strip().isdigit():
                roots[row[0]] = int(row[1])
    files = sorted(glob.glob(os.path.join(root_dir, "midi", "*.mid")))
    if not files:
        raise FileNotFoundError(f"no .mid files under {root_dir}/midi")
    tunes = []
    for path in files[:limit]:
        song = midi.read_midi(path)
        mel = song.melody(channel=0) or song.melody()
        if len(mel) < 2:
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        shift = (-roots.get(name, 0) + 6) % 12 - 6 if transpose else 0
        starts = np.array([n.start for n in mel])
        durs = np.diff(np.append(starts, mel[-1].end))
        pitches = np.array([n.pitch + shift for n in mel])
        _, num, den = song.time_signatures[0]
        tunes.append(Tune(name, pitches, durs, np.array([song.bar_position(s)[1] for s in starts]),
                          num * 4.0 / den, song.bpm, (num, den)))
    return tunes


def tune_from_song(s) -> Tune | None:
    """An Essen song (apps/music/esac.py) as a tune (tempo 100 bpm; bar positions from the
    ABC); None for a song of fewer than two notes."""
    notes = s.notes()
    if len(notes) < 2:
        return None
    num, den = (int(x) for x in s.meter.split("/")) if s.meter else (4, 4)
    return Tune(s.ref, np.array([n[0] for n in notes]), np.array([n[1] for n in notes]),
                np.array([np.nan if n[2] is None else n[2] for n in notes]), s.bar_ql,
                100.0, (num, den))


def load_essen(subset: str = "han", data_dir: str | None = None, limit: int | None = None,
               progress: bool = True) -> list:
    """Essen songs of one subset as tunes (``tune_from_song``; songs of < 2 notes left out)."""
    songs, _ = esac.load_songs(subset, data_dir=data_dir, limit=limit, progress=progress)
    return [t for t in map(tune_from_song, songs) if t is not None]


def split_tunes(tunes: list, val_frac: float = 0.1, seed: int = 0) -> tuple:
    """Held-out tunes (not notes): a seeded shuffle, the last ``val_frac`` for validation."""
    order = np.random.default_rng(seed).permutation(len(tunes))
    n_val = max(1, int(round(len(tunes) * val_frac)))
    return [tunes[i] for i in order[n_val:]], [tunes[i] for i in order[:n_val]]


def check_keys(pitches, what: str = "pitch") -> None:
    """An InputError naming the first pitch outside the 88 keys (e.g. of a user's prime)."""
    bad = [int(p) for p in np.ravel(pitches) if not LOW_KEY <= p < LOW_KEY + N_KEYS]
    if bad:
        raise InputError(f"{what} {bad[0]} is outside the 88 piano keys ({LOW_KEY}-"
                         f"{LOW_KEY + N_KEYS - 1}), the vocabulary of this model")


@dataclass
class Examples:
    """One row per predicted note, as small integers (features are built per batch)."""

    prev_p: np.ndarray    # (N, context) key slots, NO_NOTE before the start
    prev_d: np.ndarray    # (N, context) duration classes, NO_DUR before the start
    cur_d: np.ndarray     # (N,)
    cur_pos: np.ndarray   # (N,)
    target: np.ndarray    # (N,) key index 0..87

    def __len__(self):
        return len(self.target)


def make_examples(tunes: list, context: int) -> Examples:
    """One example per note of every tune (tunes with a note off the keyboard are skipped)."""
    cols = {k: [] for k in ("prev_p", "prev_d", "cur_d", "cur_pos", "target")}
    for t in tunes:
        keep = (t.pitches >= LOW_KEY) & (t.pitches < LOW_KEY + N_KEYS)
        if not keep.all():  # a note off the keyboard: skip the tune rather than clip it
            continue
        p = np.concatenate([np.full(context, NO_NOTE), t.pitches - LOW_KEY])
        d = np.concatenate([np.full(context, NO_DUR), dur_class(t.durs)])
        n = len(t.pitches)
        idx = np.arange(n)[:, None] + np.arange(context)[None, :]   # the context notes of i
        cols["prev_p"].append(p[idx])
        cols["prev_d"].append(d[idx])
        cols["cur_d"].append(d[context:])
        cols["cur_pos"].append(pos_slot(t.pos))
        cols["target"].append(t.pitches - LOW_KEY)
    if not cols["target"]:
        raise InputError("no usable tunes (all empty or off the 88 keys)")
    return Examples(*(np.concatenate(cols[k]).astype(np.int64) for k in cols))


def n_features(context: int) -> int:
    return context * (P_SLOTS + D_SLOTS) + D_SLOTS + POS_SLOTS


def features(ex: Examples, rows, context: int, dtype=np.float32) -> np.ndarray:
    """One-hot feature matrix (len(rows), n_features(context))."""
    rows = np.asarray(rows)
    B = len(rows)
    X = np.zeros((B, n_features(context)), dtype=dtype)
    r = np.arange(B)
    block = P_SLOTS + D_SLOTS
    for j in range(context):
        X[r, j * block + ex.prev_p[rows, j]] = 1.0
        X[r, j * block + P_SLOTS + ex.prev_d[rows, j]] = 1.0
    base = context * block
    X[r, base + ex.cur_d[rows]] = 1.0
    X[r, base + D_SLOTS + ex.cur_pos[rows]] = 1.0
    return X
