"""Hearing a word several ways: test-time augmentation and ensembles of digit classifiers.

A voice the models never heard speaks faster or slower, higher or lower than the five they
learnt from, and one model's answer moves with that (docs/digits.md: on a held-out speaker,
5 % faster or slower costs a model 2-4 points of accuracy, 10 % costs 8-15). So the
word is also played at the speeds of the 'speed' augmentation (the project's resampler,
apps/audio/augment.speed_perturb) and the answers are pooled; several models trained from
different seeds are pooled the same way. Pooling is the mean of the log-probabilities (a
product of experts, renormalised), which lets one confident view outvote several unsure ones:

    log p(c | word) = mean over models m and speeds a of log p_m(c | speed_a(word)) + const

    views = speed_views(y, cfg)                              # (A, H, T) raw feature images
    logp = pooled_log_proba(members, signals, tta=True)      # (N, classes), rows sum to 1 in p
"""
from __future__ import annotations

import numpy as np

from apps.audio.augment import speed_perturb
from apps.audio.features import extract
from apps.digits.model import predict_proba, prepare

TTA_SPEEDS = (0.9, 0.95, 1.0, 1.05, 1.1)   # the 'speed' augmentation's range, five points
EPS = 1e-12                                 # floor of a probability before its log


def speed_views(y, cfg, speeds=TTA_SPEEDS) -> np.ndarray:
    """(len(speeds), height, frames) raw feature images of the signal y (at cfg.sr) played at
    each speed (1.0: y itself, its features exactly as training computed them)."""
    y = np.asarray(y, dtype=np.float32)
    return np.stack([extract(y if a == 1.0 else speed_perturb(y, cfg.sr, a).astype(np.float32),
                             cfg) for a in speeds])


def pooled_log_proba(members, signals, tta: bool = False, speeds=TTA_SPEEDS,
                     images=None) -> np.ndarray:
    """Log-probabilities (N, classes) of N signals, pooled over the members and, with ``tta``,
    the speeds; normalised so that exp() of each row sums to 1.

    members: [(model, hp, cfg, norm)], e.g. from model.load_model; signals: N waveforms at the
    members' sample rate; images: optional, one entry per member, the (N, H, T) raw features at
    speed 1 already computed (the dataset's), or None to compute them from the signals.
    """
    total, count = None, 0
    views = {}  # (feature settings, speed) -> images: members that share settings share them
    for m, (model, hp, cfg, norm) in enumerate(members):
        for a in (speeds if tta else (1.0,)):
            key = (tuple(sorted(cfg.to_dict().items())), a)
            if a == 1.0 and images is not None and images[m] is not None:
                X = images[m]
            elif key in views:
                X = views[key]
            else:
                X = views[key] = np.stack([speed_views(y, cfg, (a,))[0] for y in signals])
            logp = np.log(np.maximum(predict_proba(model, hp, prepare(hp, norm, X)), EPS))
            total = logp if total is None else total + logp
            count += 1
    total = total / count
    total = total - total.max(axis=1, keepdims=True)
    return total - np.log(np.exp(total).sum(axis=1, keepdims=True))


__all__ = ["TTA_SPEEDS", "speed_views", "pooled_log_proba"]
