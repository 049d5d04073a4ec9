"""Judges of generated melodies, the same for every generator (melody LSTM, bigram, melody VAE,
next-note MLP), each computed on a set of melodies and compared with real held-out songs.

A melody here is a list of events ``(pitch or None for a rest, duration in quarter lengths)``
(``esac.decode`` of tokens, ``data.to_melody`` of VAE codes, or notes with durations). The six
judges, all on the melodies as a user gets them:

1. ``in_key``: the share of notes whose pitch class lies in C major / A natural minor (every
   song was transposed there, so a generator that learnt the songs stays in it);
2. ``pitch_class_distance``: the total-variation distance (half the L1 distance, 0 to 1)
   between the set's pitch-class histogram and the real songs';
3. ``interval_distance``: the same between histograms of the melodic intervals (semitones
   between consecutive notes, rests skipped, clipped to +-12);
4. ``bar_fill``: the share of complete bars (of the corpus's commonest meter) whose events'
   durations fill the bar exactly, i.e. no note or rest crosses its bar lines, each melody at
   the bar phase (on the sixteenth grid) that fills most bars;
5. ``longest_copy``: per melody, the longest run of consecutive pitches found verbatim in one
   training song (a plagiarism check; a suffix automaton over the training songs), averaged;
6. ``cross_entropy``: nats per note of the melodies under ``NoteNgram``, a smoothed n-gram over
   notes (pitch, time to the next onset) trained on the *other* half of the training songs
   (the generators learn from one half), so it shares neither weights nor data with them.

``closeness(value, real, judge)`` is how far a set is from the real songs on a judge: the
distance itself for 2 and 3, ``|value - real|`` for the others. Lower is closer.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

SCALE = frozenset({0, 2, 4, 5, 7, 9, 11})          # C major = A natural minor
INTERVAL_CLIP = 12
JUDGES = ("in_key", "pitch_class_distance", "interval_distance", "bar_fill", "longest_copy",
          "cross_entropy")
DISTANCES = ("pitch_class_distance", "interval_distance")
GRID = 0.25                                         # quarter lengths per sixteenth


def clean(events) -> list:
    """Events with durations > 0, consecutive rests merged (the canonical form of a melody)."""
    out = []
    for p, ql in events:
        ql = float(ql)
        if ql <= 0:
            continue
        if p is None and out and out[-1][0] is None:
            out[-1] = (None, out[-1][1] + ql)
        else:
            out.append((None if p is None else int(p), ql))
    return out


def pitches(events) -> list:
    return [p for p, _ in events if p is not None]


def notes(events) -> list:
    """(pitch, time to the next onset or the end) per note: rests fold into the note before
    them, a leading rest is dropped."""
    out = []
    for p, ql in events:
        if p is not None:
            out.append([p, ql])
        elif out:
            out[-1][1] += ql
    return [tuple(n) for n in out]


# ----------------------------------------------------------------------------------------------
# 1-3: key, pitch classes, intervals
# ----------------------------------------------------------------------------------------------
def in_key_share(melodies) -> float:
    """Share of all notes whose pitch class is in C major / A natural minor."""
    ps = [p for m in melodies for p in pitches(m)]
    return float(np.mean([p % 12 in SCALE for p in ps])) if ps else float("nan")


def pitch_class_histogram(melodies) -> np.ndarray:
    """(12,) shares of the notes' pitch classes, over all melodies."""
    h = np.bincount([p % 12 for m in melodies for p in pitches(m)], minlength=12).astype(float)
    return h / h.sum() if h.sum() else h


def interval_histogram(melodies) -> np.ndarray:
    """(25,) shares of the intervals -12..+12 semitones between consecutive notes (rests
    skipped; larger leaps clipped to +-12)."""
    iv = []
    for m in melodies:
        p = pitches(m)
        iv += list(np.clip(np.diff(p), -INTERVAL_CLIP, INTERVAL_CLIP)) if len(p) > 1 else []
    h = np.bincount(np.asarray(iv, dtype=np.int64) + INTERVAL_CLIP,
                    minlength=2 * INTERVAL_CLIP + 1).astype(float)
    return h / h.sum() if h.sum() else h


def tv_distance(p, q) -> float:
    """Total-variation distance between two histograms: half their L1 distance, in [0, 1]."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


# ----------------------------------------------------------------------------------------------
# 4: bars that fill the meter
# ----------------------------------------------------------------------------------------------
def bar_fill_counts(events, bar_ql: float) -> tuple:
    """(filled bars, complete bars) of one melody at its best phase: bar lines every ``bar_ql``
    from a phase on the sixteenth grid; a complete bar lies inside the melody, and is filled
    when both its bar lines fall on event boundaries (no event crosses them)."""
    durs = [ql for _, ql in events]
    if not durs:
        return 0, 0
    steps = np.rint(np.concatenate([[0.0], np.cumsum(durs)]) / GRID).astype(np.int64)
    end, bar = int(steps[-1]), int(round(bar_ql / GRID))
    boundary = np.zeros(end + 1, dtype=bool)
    boundary[steps] = True
    best = (0, 0)
    for phase in range(min(bar, end + 1)):
        lines = np.arange(phase, end + 1, bar)
        if len(lines) < 2:
            continue
        on = boundary[lines]
        filled, total = int((on[:-1] & on[1:]).sum()), len(lines) - 1
        if filled > best[0] or (filled == best[0] and total > best[1]):
            best = (filled, total)
    return best


def bar_fill_share(melodies, bar_ql: float) -> float:
    """Filled bars / complete bars, over all melodies (``bar_fill_counts``)."""
    f, t = np.sum([bar_fill_counts(m, bar_ql) for m in melodies], axis=0) if melodies else (0, 0)
    return float(f / t) if t else float("nan")


# ----------------------------------------------------------------------------------------------
# 5: plagiarism, the longest run of pitches copied from one training song
# ----------------------------------------------------------------------------------------------
class SuffixAutomaton:
    """The suffix automaton of training pitch sequences joined by a separator: ``longest(seq)``
    is the length of the longest run of consecutive items of seq that occurs inside one of them
    (Blumer et al. 1985; linear time to build and to query)."""

    def __init__(self, sequences):
        self.next, self.link, self.len = [{}], [-1], [0]
        last = 0
        for seq in sequences:
            for c in list(seq) + [None]:             # None separates songs: never in a query
                last = self._extend(last, c)

    def _extend(self, last: int, c) -> int:
        cur = len(self.len)
        self.next.append({})
        self.link.append(0)
        self.len.append(self.len[last] + 1)
        p = last
        while p != -1 and c not in self.next[p]:
            self.next[p][c] = cur
            p = self.link[p]
        if p != -1:
            q = self.next[p][c]
            if self.len[p] + 1 == self.len[q]:
                self.link[cur] = q
            else:
                clone = len(self.len)
                self.next.append(dict(self.next[q]))
                self.link.append(self.link[q])
                self.len.append(self.len[p] + 1)
                while p != -1 and self.next[p].get(c) == q:
                    self.next[p][c] = clone
                    p = self.link[p]
                self.link[q] = self.link[cur] = clone
        return cur

    def longest(self, seq) -> int:
        state, length, best = 0, 0, 0
        for c in seq:
            while state and c not in self.next[state]:
                state = self.link[state]
                length = self.len[state]
            if c in self.next[state]:
                state, length = self.next[state][c], length + 1
            best = max(best, length)
        return best


# ----------------------------------------------------------------------------------------------
# 6: cross-entropy under an independent model
# ----------------------------------------------------------------------------------------------
def note_symbols(events) -> list:
    """(pitch, time to the next onset in sixteenths, capped at 16) per note."""
    return [(p, int(min(16, max(1, round(ql / GRID))))) for p, ql in notes(events)]


class NoteNgram:
    """P(note | previous notes), notes = (pitch, time to the next onset), an order-``order``
    Witten-Bell interpolated n-gram (Witten and Bell 1991) backing off to the product of
    add-one unigrams of pitch (128) and duration (16 sixteenths), so that no note has zero
    probability:

        P(w | h) = (c(h, w) + T(h) P(w | h')) / (c(h) + T(h))

    with c(h) the count of context h, T(h) the number of distinct notes seen after it and h'
    the context without its oldest note. ``START`` pads the beginning of a melody.
    """

    START = ("start",)

    def __init__(self, order: int = 3):
        self.order = order
        self.counts = defaultdict(Counter)          # context tuple -> Counter of next notes
        self.pitch = Counter()
        self.dur = Counter()

    def fit(self, melodies) -> NoteNgram:
        for m in melodies:
            seq = [self.START] * (self.order - 1) + note_symbols(m)
            for i in range(self.order - 1, len(seq)):
                w = seq[i]
                self.pitch[w[0]] += 1
                self.dur[w[1]] += 1
                for k in range(self.order):
                    self.counts[tuple(seq[i - k:i])][w] += 1
        self._pn, self._dn = sum(self.pitch.values()), sum(self.dur.values())
        self._totals = {ctx: (sum(c.values()), len(c)) for ctx, c in self.counts.items()}
        return self

    def prob(self, w, history) -> float:
        p = (self.pitch[w[0]] + 1) / (self._pn + 128) * (self.dur[w[1]] + 1) / (self._dn + 16)
        for k in range(0, self.order):
            ctx = tuple(history[len(history) - k:]) if k else ()
            c = self.counts.get(ctx)
            if not c:
                continue
            n, t = self._totals[ctx]
            p = (c[w] + t * p) / (n + t)
        return p

    def cross_entropy(self, melodies) -> float:
        """Mean -ln P(note | previous notes) over every note of the melodies (nats per note)."""
        total, count = 0.0, 0
        for m in melodies:
            seq = [self.START] * (self.order - 1) + note_symbols(m)
            for i in range(self.order - 1, len(seq)):
                total -= math.log(self.prob(seq[i], seq[i - self.order + 1:i]))
                count += 1
        return total / count if count else float("nan")


# ----------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------
class Judge:
    """Everything the judges need from the data: the real held-out melodies, the generators'
    training melodies (plagiarism), the judge model's melodies (the other half) and the bar
    length. ``score(melodies)`` gives the six judges of a set; ``table(sets)`` one row per set,
    with the real songs' row first and each row's closeness to it."""

    def __init__(self, real, train, judge_train, bar_ql: float, order: int = 3):
        self.real = [clean(m) for m in real]
        self.bar_ql = bar_ql
        self.copies = SuffixAutomaton(pitches(clean(m)) for m in train)
        self.model = NoteNgram(order).fit(clean(m) for m in judge_train)
        self.pc_real = pitch_class_histogram(self.real)
        self.iv_real = interval_histogram(self.real)

    def score(self, melodies) -> dict:
        ms = [clean(m) for m in melodies]
        ms = [m for m in ms if pitches(m)]
        copies = [self.copies.longest(pitches(m)) for m in ms]
        return {
            "n": len(ms),
            "notes_per_melody": float(np.mean([len(pitches(m)) for m in ms])) if ms else 0.0,
            "in_key": in_key_share(ms),
            "pitch_class_distance": tv_distance(pitch_class_histogram(ms), self.pc_real),
            "interval_distance": tv_distance(interval_histogram(ms), self.iv_real),
            "bar_fill": bar_fill_share(ms, self.bar_ql),
            "longest_copy": float(np.mean(copies)) if copies else float("nan"),
            "longest_copy_median": float(np.median(copies)) if copies else float("nan"),
            "cross_entropy": self.model.cross_entropy(ms),
        }

    def table(self, sets: dict) -> dict:
        """{'real held-out': row, name: row, ...}; each generator's row has 'closeness' per
        judge (lower is closer to the real songs)."""
        real = self.score(self.real)
        rows = {"real held-out": real}
        for name, melodies in sets.items():
            row = self.score(melodies)
            row["closeness"] = {j: closeness(row[j], real[j], j) for j in JUDGES}
            rows[name] = row
        return rows


def closeness(value: float, real: float, judge: str) -> float:
    """How far a set is from the real songs on one judge (lower is closer)."""
    return float(value) if judge in DISTANCES else abs(float(value) - float(real))


def wins(table: dict, a: str, b: str) -> list:
    """The judges on which set ``a`` is closer to the real songs than set ``b``."""
    return [j for j in JUDGES if table[a]["closeness"][j] < table[b]["closeness"][j]]
