"""The drum app's two tasks as batches, and the ``build-data`` command.

``Task.batch(split, idx) -> (x (B, E, T, F), hvo (B, T, 3K))`` with E input streams (piano,
guitar, bass rolls of data.N_KEYS keys; or the hits H of K = 9 drum classes for the
humanisation task), T sixteenth-note steps, and hvo the hits, velocities and offsets side by
side. Training (train.py) and evaluation (evaluate.py) both read the data through a Task.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from apps.common.errors import UsageError

from . import data as dd
from . import groove

K = groove.N_CLASSES


class Task:
    """Batches of one task: ``accompaniment`` (Lakh rolls -> drums) or ``humanisation`` (Groove:
    hits -> drums). ``batch(split, idx) -> (x (B, E, T, F), hvo (B, T, 27))``."""

    def __init__(self, kind: str, data: dd.DrumData, roll_mode: str = "onset"):
        self.kind, self.data, self.roll_mode = kind, data, roll_mode
        self.inputs = (K,) if kind == "humanisation" else (dd.N_KEYS,) * len(dd.FAMILIES)

    def size(self, split: str) -> int:
        return self.data.size(split)

    def batch(self, split: str, idx, transpose_rng=None, max_shift: int = 0) -> tuple:
        """``transpose_rng``: transpose each window's rolls by a random number of semitones in
        [-max_shift, max_shift] (the drums do not change when the band changes key)."""
        hvo = self.data.hvo(split, idx)
        if self.kind == "humanisation":
            return np.ascontiguousarray(hvo[:, None, :, :K]), hvo
        x = self.data.inputs(split, idx, self.roll_mode)
        if transpose_rng is not None and max_shift > 0:
            x = transpose(x, transpose_rng.integers(-max_shift, max_shift + 1, len(x)))
        return x, hvo


def transpose(x, shifts) -> np.ndarray:
    """Shift rolls (B, E, T, keys) by ``shifts[b]`` keys (notes pushed off the keyboard drop)."""
    out = np.zeros_like(x)
    for b, s in enumerate(shifts):
        if s > 0:
            out[b, ..., s:] = x[b, ..., :-s]
        elif s < 0:
            out[b, ..., :s] = x[b, ..., -s:]
        else:
            out[b] = x[b]
    return out


#: the data settings a run records in its hyperparameters, read back by resume and evaluate
DATA_SETTINGS = ("bars", "hop_bars", "limit", "roll_mode", "split_seed")


def use_run_data_settings(args, hp: dict) -> None:
    """Set ``args``' data options to those a run was trained with (``hp``: its checkpoint's
    hyperparameters; runs from before ``--split-seed`` used split 0)."""
    for k in DATA_SETTINGS:
        setattr(args, k, hp.get(k, 0) if k == "split_seed" else hp[k])


def load_task(kind: str, args, log=print) -> Task:
    """The ``kind`` task's data as the command line names it (--data or --groove-data, --cache,
    --no-cache, --bars, --hop-bars, --limit, --split-seed, --roll-mode); every split must have
    windows."""
    progress = getattr(args, "progress", False)
    if kind == "humanisation":
        data = dd.load_groove(args.groove_data, cache=args.cache, use_cache=not args.no_cache,
                              progress=progress, log=log, bars=args.bars, hop_bars=args.hop_bars,
                              limit=args.limit)
    else:
        # the default split's settings stay as before, so its cached dataset is still found
        split = {"split_seed": args.split_seed} if getattr(args, "split_seed", 0) else {}
        data = dd.load_lakh(args.data, cache=args.cache, use_cache=not args.no_cache,
                            progress=progress, log=log, bars=args.bars, hop_bars=args.hop_bars,
                            limit=args.limit, **split)
    for s in dd.SPLITS:
        if data.size(s) == 0:
            raise UsageError(f"{kind}: the {s} split has no windows (too few files: raise --limit)")
    return Task(kind, data, getattr(args, "roll_mode", "onset"))


def cmd_build_data(args, log=print) -> dict:
    """``build-data``: build (or read) and cache both datasets; print what each holds."""
    out = {}
    for kind in ("accompaniment", "humanisation"):
        bars = 8 if kind == "accompaniment" else 4
        task = load_task(kind, argparse.Namespace(**{**vars(args), "bars": bars, "hop_bars": 2}),
                         log)
        out[kind] = task.data.summary()
    print(json.dumps(out, indent=2, default=str))
    return out
