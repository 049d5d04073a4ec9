"""Which augmentations the digit classifiers train with, how strong, and how they are applied.

    names = parse_augment("speed,pitch,vtlp,specaugment")       # ('speed', 'pitch', ...)
    aug = Augmenter(names, cfg, signals, transform)             # signals: the training waveforms
    X_epoch = aug.epoch(X_train, rng)    # fresh augmented feature images each epoch
    xb = aug.batch(xb, rng)              # SpecAugment masks on a standardised batch

The signal processing is apps/audio/augment.py; here are the choices for FSDD's 8 kHz words:

    speed        factor a ~ U[0.9, 1.1] (Ko et al. 2015 use 0.9, 1.0, 1.1)
    pitch        s ~ U[-3, 3] semitones, duration kept
    gain         a loudness ramp from g0 to g1 dB, g0, g1 ~ U[-6, 6]: the features are in dB
                 relative to their loudest bin, so a constant gain would change nothing; a ramp
                 changes the balance between the start and the end of the word
    noise        white, pink or brown noise at an SNR ~ U[10, 40] dB
    vtlp         alpha ~ U[0.9, 1.1] on the mel axis (Jaitly and Hinton 2013's range)
    shift        a random shift of up to --shift frames of the feature image (train.py, as before)
    specaugment  2 frequency masks of up to 8 of the 50 mel bands and 2 time masks of up to 8 of
                 the 50 frames, set to 0 (the mean of standardised features)

Each of speed, pitch, gain, noise and vtlp is applied to an example with probability
``P_APPLY`` (so some clean examples remain), drawn again every epoch: the feature images of the
training recordings are recomputed each epoch from augmented waveforms (about 1 s for 2,700
recordings on one core). For 'mfcc' and 'both' features, vtlp warps the mel image before the
DCT. Shift and SpecAugment act on the standardised batch.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from apps.audio import augment as A
from apps.audio.features import extract
from apps.audio.mfcc import dct_matrix

AUGMENTS = ("speed", "pitch", "vtlp", "shift", "gain", "noise", "specaugment")
PER_EXAMPLE = ("speed", "pitch", "gain", "noise", "vtlp")   # recompute the features each epoch
P_APPLY = 0.5
SPEED = (0.9, 1.1)
PITCH = (-3.0, 3.0)          # semitones
GAIN = (-6.0, 6.0)           # dB at each end of the ramp
NOISE_SNR = (10.0, 40.0)     # dB
VTLP = (0.9, 1.1)
SPECAUGMENT = {"n_freq": 2, "max_freq": 8, "n_time": 2, "max_time": 8}


def parse_augment(text: str) -> tuple:
    """'speed,pitch' -> ('speed', 'pitch'), in AUGMENTS order; 'none' or '' -> ().
    ValueError naming an unknown augmentation."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {', '.join(unknown)}: choose among "
                         f"{', '.join(AUGMENTS)} (comma-separated), or none")
    return tuple(n for n in AUGMENTS if n in names)


def settings(names) -> dict:
    """The ranges in use, for summary.json."""
    table = {"speed": {"factor": SPEED}, "pitch": {"semitones": PITCH},
             "gain": {"ramp_ends_db": GAIN}, "noise": {"snr_db": NOISE_SNR,
                                                       "colours": A.NOISE_COLOURS},
             "vtlp": {"alpha": VTLP}, "shift": {"frames": "--shift"},
             "specaugment": SPECAUGMENT}
    out = {n: table[n] for n in names}
    if any(n in PER_EXAMPLE for n in names):
        out["p_apply"] = P_APPLY
    return out


def augment_signal(y, sr: int, names, rng):
    """The waveform augmentations among ``names``, each with probability P_APPLY."""
    y = np.asarray(y, dtype=np.float64)
    if "speed" in names and rng.random() < P_APPLY:
        y = A.speed_perturb(y, sr, rng.uniform(*SPEED))
    if "pitch" in names and rng.random() < P_APPLY:
        y = A.pitch_shift(y, sr, rng.uniform(*PITCH))
    if "gain" in names and rng.random() < P_APPLY:
        y = A.gain_contour(y, rng.uniform(*GAIN), rng.uniform(*GAIN))
    if "noise" in names and rng.random() < P_APPLY:
        y = A.add_noise(y, rng.uniform(*NOISE_SNR), rng,
                        A.NOISE_COLOURS[int(rng.integers(len(A.NOISE_COLOURS)))])
    return y


def augmented_image(y, cfg, names, rng):
    """The (height, frames) feature image of an augmented copy of y: waveform augmentations,
    the mel image (features.extract), VTLP on it, then the MFCC rows if ``cfg.kind`` asks.
    With no augmentation chosen this equals ``extract(y, cfg)``."""
    y = augment_signal(y, cfg.sr, names, rng)
    S = extract(y, replace(cfg, kind="mel"))
    if "vtlp" in names and rng.random() < P_APPLY:
        S = A.vtlp(S, rng.uniform(*VTLP), cfg.sr, cfg.fmin, cfg.fmax, cfg.htk)
    if cfg.kind == "mel":
        return S
    C = (dct_matrix(cfg.n_mfcc, cfg.n_mels) @ S.astype(np.float64)).astype(np.float32)
    return C if cfg.kind == "mfcc" else np.concatenate([S, C], axis=0)


class Augmenter:
    """The augmentations of one training set.

    names: from ``parse_augment``; cfg: the FeatureConfig; signals: the training waveforms at
    cfg.sr, in the order of the training images (needed only for PER_EXAMPLE augmentations);
    transform: raw images (N, H, T) -> the model's standardised images (model.prepare).
    """

    def __init__(self, names, cfg, signals=None, transform=None):
        self.names, self.cfg = tuple(names), cfg
        self.per_example = any(n in PER_EXAMPLE for n in self.names)
        if self.per_example and signals is None:
            raise ValueError(f"{', '.join(n for n in self.names if n in PER_EXAMPLE)} need the "
                             "training waveforms")
        self.signals, self.transform = signals, transform

    def epoch(self, X, rng):
        """Standardised images for one epoch: X itself, or freshly augmented images."""
        if not self.per_example:
            return X
        raw = np.stack([augmented_image(y, self.cfg, self.names, rng) for y in self.signals])
        return self.transform(raw) if self.transform is not None else raw

    def batch(self, xb, rng):
        """SpecAugment masks on a standardised batch (N, H, T), if chosen."""
        if "specaugment" not in self.names:
            return xb
        return A.spec_augment(xb, rng, **SPECAUGMENT)


__all__ = ["AUGMENTS", "PER_EXAMPLE", "P_APPLY", "parse_augment", "settings", "augment_signal",
           "augmented_image", "Augmenter"]
