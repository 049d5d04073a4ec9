"""Essen songs as the two melody apps see them (songs come from apps/music/esac.py, filtered and
transposed to C major / A minor).

* Split: whole songs are held out (``split_songs``), so no held-out phrase was seen in training.
* LSTM: sixteenth-step tokens (MIDI pitch at an onset, ``_`` hold, ``r`` rest) as ids of a
  :class:`Vocab`; the songs joined into one stream with ``/`` before and after each song
  (``stream``), cut into windows of ``length + 1`` ids (``windows``).
* VAE: each song's written events as two code sequences, notes (pitch 50-97, rest 99) and
  rhythm (duration class 0-7), cut into padded segments (``segments``; ``cut`` with a random
  phase for training); for the seed's sigmoid VAEs scaled to [0, 1] (``normalise``;
  ``denormalise`` rounds back to the nearest valid code), for the categorical VAEs as class
  ids with an end class past the segment's last event (``to_classes``, ``from_classes``).
"""
from __future__ import annotations

import numpy as np

from apps.common.errors import InputError
from apps.music import esac

DELIM = "/"                                    # song delimiter of the LSTM's stream

PITCH_LOW, PITCH_HIGH, REST_CODE = 50, 97, 99  # the notes VAE's codes
DURATIONS = esac.ACCEPTED_DURATIONS            # class c <-> DURATIONS[c] quarter lengths
PAD_NOTE, PAD_CLASS = REST_CODE, len(DURATIONS) - 1


def split_songs(songs, val_frac: float, seed: int) -> tuple:
    """(train songs, held-out songs): a seeded shuffle, the first ``val_frac`` (at least one)
    held out."""
    order = np.random.default_rng(seed).permutation(len(songs))
    n_val = max(1, int(round(len(songs) * val_frac)))
    return [songs[i] for i in order[n_val:]], [songs[i] for i in order[:n_val]]


def split_halves(songs, seed: int) -> tuple:
    """Two halves (a, b) of the training songs, by a seeded shuffle: the generators judged
    by apps/melody/judges.py learn from half a (``--train-half a``), the judges' own model from
    half b, so that it shares no training data with them."""
    order = np.random.default_rng(seed + 7919).permutation(len(songs))
    half = len(songs) // 2
    return [songs[i] for i in sorted(order[:half])], [songs[i] for i in sorted(order[half:])]


def load_split(subset: str, data_dir: str | None, limit: int | None, val_frac: float, seed: int,
               progress: bool = True, max_songs: int | None = None,
               train_half: str = "all") -> tuple:
    """(songs, stats, train songs, held-out songs) of an Essen subset (esac.load_songs), the
    first ``max_songs`` of them if given, split by ``split_songs``; with ``train_half`` 'a' or
    'b', the training songs are that half of them (``split_halves``), the held-out songs stay."""
    songs, stats = esac.load_songs(subset, data_dir=data_dir, limit=limit, progress=progress)
    if max_songs:
        songs = songs[:max_songs]
    train, held = split_songs(songs, val_frac, seed)
    if train_half != "all":
        train = split_halves(train, seed)["ab".index(train_half)]
    return songs, stats, train, held


# ----------------------------------------------------------------------------------------------
# LSTM: a vocabulary of tokens, one stream, windows
# ----------------------------------------------------------------------------------------------
class Vocab:
    """Symbols <-> ids: '/' (song delimiter), 'r', '_', then the pitches in ascending order."""

    def __init__(self, symbols):
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_songs(cls, token_lists):
        pitches = sorted({int(t) for toks in token_lists for t in toks
                          if t not in (esac.HOLD, esac.REST)})
        return cls([DELIM, esac.REST, esac.HOLD, *map(str, pitches)])

    def __len__(self):
        return len(self.symbols)

    @property
    def pitch_range(self) -> tuple:
        p = [int(s) for s in self.symbols[3:]]
        return (min(p), max(p)) if p else (None, None)

    def encode(self, tokens) -> np.ndarray:
        """Token list (T,) -> ids (T,) int64; an InputError names the first symbol outside the
        vocabulary (a prime may hold pitches the training songs never used)."""
        out = np.empty(len(tokens), dtype=np.int64)
        for i, t in enumerate(tokens):
            j = self.index.get(t)
            if j is None:
                lo, hi = self.pitch_range
                what = f"pitch {t}" if t.lstrip("-").isdigit() else f"symbol {t!r}"
                raise InputError(f"{what} (token {i}) is not in the vocabulary of this model: "
                                 f"pitches {lo}-{hi} (not all of them), '{esac.HOLD}', "
                                 f"'{esac.REST}', '{DELIM}'")
            out[i] = j
        return out

    def decode(self, ids) -> list:
        return [self.symbols[int(i)] for i in ids]


def stream(token_lists, vocab: Vocab) -> np.ndarray:
    """'/ song1 / song2 / ... /' as one id array (N,)."""
    parts = [[DELIM]]
    for toks in token_lists:
        parts.append(list(toks) + [DELIM])
    return vocab.encode([t for p in parts for t in p])


def windows(ids: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Non-overlapping windows (n, length + 1) of ``ids`` starting at ``offset``: inputs [:, :-1],
    targets [:, 1:]. A new ``offset`` each epoch shows the model other cuts of the songs."""
    n = (len(ids) - offset - 1) // length
    if n < 1:
        raise InputError(f"a stream of {len(ids)} symbols is too short for windows of {length} "
                         "(more songs, or a smaller --window)")
    idx = offset + np.arange(n)[:, None] * length + np.arange(length + 1)[None, :]
    return ids[idx]


# ----------------------------------------------------------------------------------------------
# VAE: notes and rhythm codes, segments
# ----------------------------------------------------------------------------------------------
def song_codes(song) -> tuple:
    """(note codes, duration classes), two lists of len(song.events); an InputError if a pitch
    or a duration is outside the codes."""
    notes, classes = [], []
    for p, ql, _ in song.events:
        if p is None:
            notes.append(REST_CODE)
        elif PITCH_LOW <= p <= PITCH_HIGH:
            notes.append(int(p))
        else:
            raise InputError(f"{song.ref}: pitch {p} is outside the notes VAE's range "
                             f"{PITCH_LOW}-{PITCH_HIGH}")
        if float(ql) not in DURATIONS:
            raise InputError(f"{song.ref}: duration {ql} is not one of the 8 classes {DURATIONS}")
        classes.append(DURATIONS.index(float(ql)))
    return notes, classes


def segments(songs, max_len: int) -> tuple:
    """Cut every song into segments of max_len events, padding the last: (notes, rhythm, lengths,
    song index, skipped) with int64 arrays (S, max_len), (S, max_len), (S,), (S,). Songs with
    codes out of range are skipped; ``skipped`` counts them."""
    codes, skipped = all_song_codes(songs)
    return (*cut(codes, max_len), skipped)


def all_song_codes(songs) -> tuple:
    """([(song index, note codes, duration classes)], skipped): ``song_codes`` of every song,
    the songs with codes out of range skipped and counted."""
    out, skipped = [], 0
    for k, s in enumerate(songs):
        try:
            out.append((k, *song_codes(s)))
        except InputError:
            skipped += 1
    return out, skipped


def cut(codes, max_len: int, rng=None) -> tuple:
    """Segments (notes, rhythm, lengths, song index) of ``all_song_codes``' lists: from each
    song's first event (``rng`` None), or from a random phase (a first segment of 1 to max_len
    events, then max_len each), so that each epoch of training sees other cuts of the songs."""
    N, R, L, idx = [], [], [], []
    for k, notes, classes in codes:
        first = 0 if rng is None else int(rng.integers(0, max_len)) - max_len
        for a in range(first, len(notes), max_len):
            a0 = max(a, 0)
            n, c = notes[a0:a + max_len], classes[a0:a + max_len]
            if not n:
                continue
            L.append(len(n))
            N.append(n + [PAD_NOTE] * (max_len - len(n)))
            R.append(c + [PAD_CLASS] * (max_len - len(c)))
            idx.append(k)
    return (np.array(N, dtype=np.int64).reshape(-1, max_len),
            np.array(R, dtype=np.int64).reshape(-1, max_len), np.array(L, dtype=np.int64),
            np.array(idx, dtype=np.int64))


def transpose_segments(notes, lengths, max_shift: int, rng) -> np.ndarray:
    """Note codes (S, max_len) with each segment's pitches moved by a random whole number of
    semitones in [-max_shift, max_shift], narrowed so that every pitch stays in 50-97 (rests
    and padding stay): training data in other keys, so that a VAE learns to copy any pitch."""
    notes = np.array(notes, dtype=np.int64)
    real = np.arange(notes.shape[1])[None, :] < np.asarray(lengths)[:, None]
    pitch = real & (notes != REST_CODE)
    hi = np.where(pitch, notes, PITCH_LOW).max(1)
    lo = np.where(pitch, notes, PITCH_HIGH).min(1)
    down = np.maximum(-max_shift, PITCH_LOW - lo)
    up = np.minimum(max_shift, PITCH_HIGH - hi)
    shift = np.floor(down + rng.random(len(notes)) * (up - down + 1)).astype(np.int64)
    return np.where(pitch, notes + shift[:, None], notes)


# Categorical classes: what the softmax outputs of the categorical VAEs predict at each position.
#   notes:  0-47 = pitches 50-97, 48 = rest, 49 = end (every position after the segment's last
#           event);  rhythm: 0-7 = the duration classes, 8 = end.
N_PITCHES = PITCH_HIGH - PITCH_LOW + 1
REST_CLASS = N_PITCHES
N_CLASSES = {"notes": N_PITCHES + 2, "rhythm": len(DURATIONS) + 1}
END_CLASS = {"notes": N_PITCHES + 1, "rhythm": len(DURATIONS)}


def to_classes(codes, lengths, kind: str) -> np.ndarray:
    """Codes (S, max_len) and lengths (S,) -> class ids (S, max_len), int64, ``END_CLASS`` past
    each segment's length."""
    codes = np.asarray(codes, dtype=np.int64)
    out = np.where(codes == REST_CODE, REST_CLASS, codes - PITCH_LOW) if kind == "notes" \
        else codes.copy()
    out[np.arange(codes.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = END_CLASS[kind]
    return out


def from_classes(classes, kind: str) -> tuple:
    """Class ids (S, max_len) -> (codes (S, max_len) padded like ``segments``, lengths (S,)): a
    segment ends at its first end class (everything after it is padding)."""
    classes = np.asarray(classes, dtype=np.int64)
    end = classes == END_CLASS[kind]
    lengths = np.where(end.any(1), end.argmax(1), classes.shape[1])
    pad = np.arange(classes.shape[1])[None, :] >= lengths[:, None]
    if kind == "notes":
        codes = np.where(classes >= REST_CLASS, REST_CODE, classes + PITCH_LOW)
        codes[pad] = PAD_NOTE
    else:
        codes = np.minimum(classes, len(DURATIONS) - 1)
        codes[pad] = PAD_CLASS
    return codes, lengths


def normalise(codes, kind: str):
    """Codes (any shape) -> values in [0, 1]: (v - 50) / 49 for notes, c / 7 for rhythm."""
    if kind == "notes":
        return (codes - PITCH_LOW) / float(REST_CODE - PITCH_LOW)
    return codes / float(len(DURATIONS) - 1)


def denormalise(values, kind: str) -> np.ndarray:
    """Sigmoid outputs in [0, 1] -> nearest valid codes, int64 of the same shape (a value nearer
    99 than 97 is a rest)."""
    v = np.asarray(values, dtype=np.float64)
    if kind == "notes":
        raw = PITCH_LOW + v * (REST_CODE - PITCH_LOW)
        return np.where(raw > 98.0, REST_CODE,
                        np.clip(np.rint(raw), PITCH_LOW, PITCH_HIGH)).astype(np.int64)
    return np.clip(np.rint(v * (len(DURATIONS) - 1)), 0, len(DURATIONS) - 1).astype(np.int64)


def check_note_codes(codes) -> None:
    """A clear error for a pitch outside the vocabulary (50-97, rest 99)."""
    for c in np.ravel(codes):
        if not (PITCH_LOW <= c <= PITCH_HIGH or c == REST_CODE):
            raise InputError(f"pitch {int(c)} is outside the notes VAE's vocabulary: pitches "
                             f"{PITCH_LOW}-{PITCH_HIGH} and the rest code {REST_CODE}")


def to_melody(notes, classes, length: int | None = None) -> tuple:
    """Note codes and duration classes -> (pitches or None, durations in beats), trailing
    padding (rest + whole note) removed; ``length`` (the categorical VAEs' end) cuts first."""
    notes, classes = list(map(int, notes))[:length], list(map(int, classes))[:length]
    end = len(notes)
    while end > 0 and notes[end - 1] == PAD_NOTE and classes[end - 1] == PAD_CLASS:
        end -= 1
    pitches = [None if n == REST_CODE else n for n in notes[:end]]
    return pitches, [DURATIONS[c] for c in classes[:end]]
