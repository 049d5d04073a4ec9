"""The simple things a musician could use instead of the drum model, on a split's windows:
the drum machine (a fixed rock beat), the nearest training beat (by the inputs' rhythm, or by
the target hits as an oracle) and real drums of another song. Each returns drums as the model's
predictions are (evaluate.py): dicts of (N, T, K) arrays H, V, O (and the targets hvo).
"""
from __future__ import annotations

import numpy as np

from . import data as dd
from . import groove
from .tasks import K, Task


def rock_baseline(hvo) -> dict:
    """The drum machine: ROCK_BAR on every window, velocity 100 everywhere, no offsets."""
    B, T, _ = hvo.shape
    H, _, _ = groove.rock_beat(T)
    H = np.broadcast_to(H, (B, T, K))
    return {"H": H, "V": np.full((B, T, K), 100 / 127), "O": np.zeros((B, T, K)), "hvo": hvo,
            "v_raw": np.full((B, T, K), 100 / 127), "o_raw": np.zeros((B, T, K))}


def rhythm_features(data: dd.DrumData, split: str) -> np.ndarray:
    """Each window's input rhythm: onsets per step and family (T * 3), unit length."""
    onsets = (data.rolls == 2).sum(axis=-1).astype(np.float32)          # (S, 3)
    rows = data.windows[split][:, None] + np.arange(data.steps)
    f = onsets[rows].reshape(len(rows), -1)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)


def nearest_baseline(data: dd.DrumData, split: str, by: str = "inputs") -> dict:
    """Copy the nearest training window's drums: nearest by the inputs' rhythm (cosine of the
    per-step onset counts of piano, guitar and bass: a fair baseline), or by the target hits
    (``by='hits'``: an oracle that sees the answer, a reference for V and O only)."""
    tr_idx = np.arange(data.size("train"))
    if by == "inputs":
        a, b = rhythm_features(data, "train"), rhythm_features(data, split)
    else:
        def hf(s):
            h = data.hvo(s, np.arange(data.size(s)))[..., :K].reshape(data.size(s), -1)
            return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-6)
        a, b = hf("train"), hf(split)
    nearest = np.concatenate([np.argmax(b[s:s + 256] @ a.T, axis=1) for s in range(0, len(b), 256)])
    src = data.hvo("train", tr_idx[nearest])
    hvo = data.hvo(split, np.arange(data.size(split)))
    return {"H": src[..., :K], "V": src[..., K:2 * K], "O": src[..., 2 * K:], "hvo": hvo}


def shuffled_drums(task: Task, split: str, seed: int = 0) -> np.ndarray:
    """Each window's drums replaced by those of a random window of another song."""
    rng = np.random.default_rng(seed)
    songs = task.data.window_song[split]
    n = len(songs)
    src = rng.integers(0, n, n)
    for _ in range(20):                       # redraw the ones that picked their own song
        same = songs[src] == songs
        if not same.any():
            break
        src[same] = rng.integers(0, n, int(same.sum()))
    return task.data.hvo(split, src)


__all__ = ["rock_baseline", "rhythm_features", "nearest_baseline", "shuffled_drums"]
