"""Groove metrics that a drummer hears, on H/V/O windows (groove.py), compared between real
drums, the model and the baselines.

Arrays: H, V, O (N, T, K) for N windows of T steps (a whole number of 4/4 bars), K = 9 classes;
V in [0, 1] (MIDI velocity / 127), O in steps; ``bpm`` (N,) each window's tempo (for
milliseconds); ``song`` (N,) each window's song, the windows of a song in order.

* ``hits_per_bar``: mean hits per bar of each class (and ``hits_per_bar_total``);
* ``fill_share``: share of bars with a fill, a bar with at least ``FILL_TOMS`` tom hits (low,
  mid, high tom) or at least ``FILL_LAST_BEAT`` snare and tom hits in its last beat;
* ``hihat_velocity_spread``: the standard deviation of the closed hi-hat's velocities (MIDI
  units) inside a window, averaged over the windows with at least two hi-hat hits (a drum
  machine: 0);
* ``timing_mean_ms`` / ``timing_spread_ms``: per class, the mean and standard deviation of the
  micro-timing offsets of its hits, in milliseconds at the window's tempo (late is positive);
* ``bar_change``: cells (step, class) that differ between consecutive bars of a window,
  averaged: how much the pattern moves inside an 8-bar section;
* ``section_change``: between consecutive windows (8-bar sections) of a song, the L1 distance
  between their average bars (16 x 9 hit rates): how many cells per bar change from one
  section to the next; ``section_change_corr`` (``compare``): the correlation, over the same
  pairs, of a predictor's section change with the real drums' one: whether it changes where
  the drummer does (None when either does not vary).
"""
from __future__ import annotations

import numpy as np

from . import groove

K = groove.N_CLASSES
BAR = groove.STEPS_PER_BAR
TOMS = (4, 5, 6)
SNARE, CLOSED_HH = 1, 2
FILL_TOMS = 2
FILL_LAST_BEAT = 3


def _bars(H) -> np.ndarray:
    H = np.asarray(H) > 0.5
    N, T, _ = H.shape
    if T % BAR:
        raise ValueError(f"groove metrics: {T} steps is not a whole number of 4/4 bars")
    return H.reshape(N, T // BAR, BAR, K)


def fills(H) -> np.ndarray:
    """(N, bars) bool: the bars with a fill (module docstring)."""
    b = _bars(H)
    toms = b[..., list(TOMS)].sum(axis=(2, 3))
    last = b[:, :, BAR - 4:, [SNARE, *TOMS]].sum(axis=(2, 3))
    return (toms >= FILL_TOMS) | (last >= FILL_LAST_BEAT)


def groove_stats(H, V, O, bpm=None, song=None) -> dict:
    """The metrics of one set of drums (module docstring); None where a value is undefined."""
    Hb = np.asarray(H) > 0.5
    V = np.asarray(V, np.float64)
    O = np.asarray(O, np.float64)
    N = len(Hb)
    b = _bars(Hb)
    per_bar = b.sum(axis=2).reshape(-1, K).mean(axis=0)
    spreads = [float(np.std(V[i][Hb[i, :, CLOSED_HH], CLOSED_HH] * 127.0))
               for i in range(N) if Hb[i, :, CLOSED_HH].sum() >= 2]
    bpm = np.full(N, 120.0) if bpm is None else np.asarray(bpm, np.float64)
    ms = groove.offsets_to_ms(O, bpm[:, None, None])
    t_mean, t_spread = [], []
    for k in range(K):
        m = ms[..., k][Hb[..., k]]
        t_mean.append(round(float(m.mean()), 3) if len(m) else None)
        t_spread.append(round(float(m.std()), 3) if len(m) > 1 else None)
    bar_change = (b[:, 1:] != b[:, :-1]).sum(axis=(2, 3)).mean() if b.shape[1] > 1 else None
    sec = section_changes(Hb, song)
    return {
        "windows": N, "bars": int(N * b.shape[1]),
        "hits_per_bar": [round(float(x), 3) for x in per_bar],
        "hits_per_bar_total": round(float(per_bar.sum()), 3),
        "fill_share": round(float(fills(Hb).mean()), 4) if N else None,
        "hihat_velocity_spread": round(float(np.mean(spreads)), 3) if spreads else None,
        "timing_mean_ms": t_mean, "timing_spread_ms": t_spread,
        "bar_change": None if bar_change is None else round(float(bar_change), 3),
        "section_change": round(float(sec.mean()), 3) if len(sec) else None,
    }


def section_pairs(song) -> np.ndarray:
    """Indices i of the windows followed by another window of the same song (i, i + 1)."""
    if song is None:
        return np.zeros(0, np.int64)
    song = np.asarray(song)
    return np.flatnonzero(song[1:] == song[:-1])


def section_changes(H, song) -> np.ndarray:
    """L1 distance between consecutive same-song windows' average bars, one per pair."""
    pairs = section_pairs(song)
    if not len(pairs):
        return np.zeros(0)
    avg = _bars(H).mean(axis=1)                          # (N, 16, 9) hit rates
    return np.abs(avg[pairs + 1] - avg[pairs]).sum(axis=(1, 2))


def compare(predictions: dict, bpm=None, song=None) -> dict:
    """{name: groove_stats} for {name: (H, V, O)}, the first being the real drums; each other
    set also gets ``section_change_corr`` against the first and ``hits_per_bar_abs_diff``, the
    mean over classes of |hits per bar - the real drums'|."""
    names = list(predictions)
    out = {n: groove_stats(*predictions[n], bpm=bpm, song=song) for n in names}
    real_name = names[0]
    real_sec = section_changes(predictions[real_name][0], song)
    real_hpb = np.asarray(out[real_name]["hits_per_bar"])
    for n in names[1:]:
        sec = section_changes(predictions[n][0], song)
        corr = None
        if len(sec) > 2 and np.std(sec) > 0 and np.std(real_sec) > 0:
            corr = round(float(np.corrcoef(sec, real_sec)[0, 1]), 4)
        out[n]["section_change_corr"] = corr
        out[n]["hits_per_bar_abs_diff"] = round(float(np.abs(
            np.asarray(out[n]["hits_per_bar"]) - real_hpb).mean()), 4)
    return out


def format_table(stats: dict) -> list:
    """Printable lines: one row per set of drums, the groove metrics as columns."""
    short = ("kick", "snare", "hh", "open", "lo", "mid", "hi", "crash", "ride")
    lines = [f"  {'':40s} {'hits/bar':>8s} {'fills':>6s} {'hhVelSD':>7s} {'barChg':>6s} "
             f"{'secChg':>6s} {'secCorr':>7s}   hits per bar: " + " ".join(f"{s:>5s}"
                                                                        for s in short)]

    def f(v, w, d):
        return f"{'-':>{w}s}" if v is None else f"{v:{w}.{d}f}"

    for name, s in stats.items():
        lines.append(f"  {name:40s} {f(s['hits_per_bar_total'], 8, 2)} "
                     f"{f(s['fill_share'], 6, 3)} {f(s['hihat_velocity_spread'], 7, 2)} "
                     f"{f(s['bar_change'], 6, 2)} {f(s['section_change'], 6, 2)} "
                     f"{f(s.get('section_change_corr'), 7, 3)}   "
                     + " ".join(f(v, 5, 2) for v in s["hits_per_bar"]))
    lines.append(f"  {'micro-timing, mean/spread (ms)':40s} "
                 + " ".join(f"{s:>11s}" for s in short))

    def ms(m, d):
        return f"{'-' if m is None else f'{m:.1f}'}/{'-' if d is None else f'{d:.1f}'}"

    for name, s in stats.items():
        lines.append(f"  {name:40s} " + " ".join(
            f"{ms(m, d):>11s}" for m, d in zip(s["timing_mean_ms"], s["timing_spread_ms"])))
    return lines


__all__ = ["fills", "groove_stats", "section_pairs", "section_changes", "compare",
           "format_table", "FILL_TOMS", "FILL_LAST_BEAT"]
