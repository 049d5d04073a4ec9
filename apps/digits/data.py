"""The FSDD recordings as feature images: what every spoken-digit command reads.

    ds = load_dataset(root, FeatureConfig(), limit_per_class=8)
    ds.X            (N, height, frames) float32 feature images, in fsdd.list_recordings order
    ds.labels(task) (N,) class indices: digits 0-9 ('digit') or speakers ('speaker')
    ds.waveforms(idx) the recordings as signals at cfg.sr (for waveform augmentations)

Features (apps/audio/features.py): silence trimmed, hop chosen per recording so every word
fills the frames, mel (or MFCC, or both stacked) in dB. Computing them for the 3,000 files takes
a while on 2 cores, so they are cached under runs/spoken_digits/.cache/ keyed by the data
folder, the feature settings and the number of files.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass

import numpy as np

from apps.audio import fsdd
from apps.audio.features import FeatureConfig, extract_many
from apps.audio.wav import read_wav
from apps.common.runs import RUNS_ROOT
from nnscratch.serialization import atomic_write_bytes

APP = "spoken_digits"
DEFAULT_OUT_ROOT = os.path.join(RUNS_ROOT, APP)
CACHE_DIR = os.path.join(DEFAULT_OUT_ROOT, ".cache")
DIGITS = [str(d) for d in range(10)]


@dataclass
class Dataset:
    """Feature images of every recording and their labels, in fsdd.list_recordings order."""

    recs: list
    X: np.ndarray            # (N, height, frames) float32
    digits: np.ndarray       # (N,) 0-9
    speakers: np.ndarray     # (N,) index into speaker_names
    speaker_names: list
    cfg: FeatureConfig
    signals: list | None = None  # the waveforms at cfg.sr, read on demand (``waveforms``)

    def waveforms(self, idx=None) -> list:
        """The recordings as (L,) float32 signals at cfg.sr (read once, then kept), for the
        augmentations that work on waveforms; ``idx`` selects some of them."""
        if self.signals is None:
            self.signals = [read_wav(r.path, sr=self.cfg.sr)[0] for r in self.recs]
        return self.signals if idx is None else [self.signals[i] for i in idx]

    def labels(self, task: str) -> np.ndarray:
        return self.digits if task == "digit" else self.speakers

    def class_names(self, task: str) -> list:
        return DIGITS if task == "digit" else list(self.speaker_names)


def _cache_path(cache_dir, root, cfg, n_files):
    key = json.dumps({"root": os.path.abspath(root), "cfg": cfg.to_dict(), "n": n_files, "v": 1},
                     sort_keys=True)
    return os.path.join(cache_dir, f"fsdd-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz")


def load_dataset(root=None, cfg: FeatureConfig | None = None, limit_per_class: int | None = None,
                 cache_dir: str | None = None, progress: bool = True, log=print) -> Dataset:
    """Read the FSDD recordings and compute their feature images (cached under ``cache_dir``).

    ``limit_per_class``: keep only the recordings with index < limit (all speakers and digits,
    e.g. 8 -> indices 0-7: a small real slice for tests and quick runs).
    """
    cfg = cfg or FeatureConfig()
    root = fsdd.resolve_root(root)
    recs = fsdd.list_recordings(root)
    if limit_per_class is not None:
        recs = [r for r in recs if r.index < limit_per_class]
    names = fsdd.speaker_names(recs)
    digits = np.array([r.digit for r in recs])
    speakers = np.array([names.index(r.speaker) for r in recs])
    path = _cache_path(cache_dir, root, cfg, len(recs)) if cache_dir else None
    if path and os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                X = z["X"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            X = None  # a damaged cache is computed again
        if X is not None and X.shape == (len(recs), *cfg.shape):
            return Dataset(recs, X, digits, speakers, names, cfg)
    t0 = time.perf_counter()
    signals = [read_wav(r.path, sr=cfg.sr)[0] for r in recs]
    X = extract_many(signals, cfg, progress=progress, desc="features")
    log(f"features: {len(recs)} recordings -> {X.shape[1:]} {cfg.kind} images in "
        f"{time.perf_counter() - t0:.1f} s")
    if path:  # atomic: a killed run leaves no half-written cache (and no lasting temporary)
        atomic_write_bytes(path, lambda f: np.savez(f, X=X))
    return Dataset(recs, X, digits, speakers, names, cfg, signals)


def cache_dir_for(args) -> str | None:
    """The feature cache of a command (None with --no-cache)."""
    return None if args.no_cache else CACHE_DIR
