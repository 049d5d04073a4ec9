"""Data augmentation for speech classifiers, and per-utterance normalisation (NumPy only).

Waveforms y (L,) float at a rate sr; feature images S (n_mels, frames) or batches (N, H, T).
Every random choice comes from a ``numpy.random.Generator`` passed in, so a seed repeats it.

Waveform (before the features):
    speed_perturb(y, sr, a)    play a times faster: resample as if recorded at a * sr (pitch and
                               tempo both change; the length becomes L / a), Ko et al. 2015  (1)
    pitch_shift(y, sr, s)      s semitones up, same length: resample by r = 2^(s/12) (pitch x r,
                               length / r), then a phase-vocoder time stretch back to L     (2)
    time_shift(y, k)           delay by k samples (advance for k < 0), zeros shifted in
    gain_contour(y, g0, g1)    a loudness ramp from g0 dB at the start to g1 dB at the end
                               (constant gain: g0 = g1)                                      (3)
    add_noise(y, snr_db, rng, colour)   y + c n with n white, pink (1/f) or brown (1/f^2) noise
                               and c chosen so that 10 log10(P_y / P_cn) = snr_db, P = mean
                               square over the clip                                          (4)
Feature images:
    vtlp(S, alpha, sr, fmin, fmax)   vocal-tract-length perturbation on the mel axis (Jaitly and
                               Hinton 2013): the spectrum is warped by the piecewise-linear map
                               w(f) = alpha f                         for f <= f0,
                               w(f) = fmax - (fmax - alpha f0)(fmax - f)/(fmax - f0)  above,
                               f0 = 0.8 fmax min(alpha, 1) / alpha, so S'(w(f)) = S(f): band m
                               of centre g_m reads S at w^-1(g_m), interpolated between bands (5)
    spec_augment(X, rng, ...)  SpecAugment's masks (Park et al. 2019, without time warping): per
                               image, n_freq times a band [f0, f0 + f) with f ~ U{0..F},
                               f0 ~ U{0..H - f}, and n_time times frames [t0, t0 + t) with
                               t ~ U{0..min(T_max, p T)}, t0 ~ U{0..T - t}, set to ``value``
                               (0: the mean of standardised features)                        (6)
    cmvn(X)                    cepstral mean and variance normalisation per utterance: each
                               row (coefficient) of each image minus its mean over time,
                               divided by its standard deviation over time (floored)         (7)
"""
from __future__ import annotations

import math

import numpy as np

from .mel import hz_to_mel, mel_frequencies
from .stft import istft, stft
from .wav import resample

NOISE_COLOURS = ("white", "pink", "brown")


# ----------------------------------------------------------------------------------------------
# Waveform
# ----------------------------------------------------------------------------------------------
SPEED_STEPS = 200  # speed factors are rounded to 1/200: resampling by q / 200 stays cheap


def _quantise(factor: float) -> int:
    q = int(round(factor * SPEED_STEPS))
    if q < 1:
        raise ValueError(f"speed factor must be >= {1 / SPEED_STEPS}, got {factor}")
    return q


def speed_perturb(y, sr: int, factor: float):
    """(1): y played ``factor`` times faster (rounded to a step of 1/200), by the project's
    polyphase resampler: a ratio of q / 200 with q = round(200 factor). Length ~ L / factor.
    (``sr`` is kept in the signature for symmetry; only the ratio matters.)"""
    return resample(np.asarray(y, dtype=np.float64), _quantise(factor), SPEED_STEPS)


def time_stretch(y, rate: float, n_fft: int = 256, hop: int | None = None):
    """Phase-vocoder time stretch (librosa.effects.time_stretch's method): ``rate`` > 1 is
    faster; length ~ L / rate, pitch unchanged. The STFT (hop n_fft / 4) is read at fractional
    frames t = k rate, magnitudes interpolated between neighbours, and the phase advanced by the
    measured phase difference of the two frames (the instantaneous frequency)."""
    y = np.asarray(y, dtype=np.float64)
    hop = n_fft // 4 if hop is None else hop
    X = stft(y, n_fft=n_fft, hop_length=hop)
    T = X.shape[-1]
    steps = np.arange(0, T, rate)
    Xp = np.pad(X, ((0, 0), (0, 2)))
    omega = 2 * np.pi * hop * np.arange(X.shape[0]) / n_fft  # expected phase advance per hop
    i = steps.astype(int)
    frac = steps - i
    a, b = Xp[:, i], Xp[:, i + 1]
    mag = (1 - frac) * np.abs(a) + frac * np.abs(b)
    dphi = np.angle(b) - np.angle(a) - omega[:, None]
    dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))  # wrapped to [-pi, pi]
    # phase at output frame k: the first frame's, plus the advances of frames 0 .. k-1
    advance = np.cumsum(omega[:, None] + dphi, axis=1)
    phase = np.angle(X[:, :1]) + np.concatenate([np.zeros_like(advance[:, :1]),
                                                 advance[:, :-1]], axis=1)
    out = mag * np.exp(1j * phase)
    return istft(out, hop_length=hop, n_fft=n_fft, length=int(round(len(y) / rate)))


def pitch_shift(y, sr: int, semitones: float, n_fft: int = 256):
    """(2): pitch up by ``semitones`` (down if negative), duration kept: resample by
    r = 2^(s/12) (``speed_perturb``), then ``time_stretch`` by 1/r back to len(y) samples."""
    y = np.asarray(y, dtype=np.float64)
    r = _quantise(2.0 ** (semitones / 12.0)) / SPEED_STEPS
    fast = speed_perturb(y, sr, r)
    out = time_stretch(fast, len(fast) / len(y), n_fft=n_fft)
    return out[:len(y)] if len(out) >= len(y) else np.pad(out, (0, len(y) - len(out)))


def time_shift(y, k: int):
    """y delayed by k samples (k > 0) or advanced (k < 0), zeros shifted in; same length."""
    y = np.asarray(y)
    out = np.zeros_like(y)
    if k >= 0:
        out[k:] = y[:len(y) - k] if k < len(y) else y[:0]
    else:
        out[:k] = y[-k:]
    return out


def gain_contour(y, g0_db: float, g1_db: float = None):
    """(3): y times a gain going linearly in dB from g0_db (first sample) to g1_db (last);
    g1_db None: a constant gain of g0_db."""
    y = np.asarray(y, dtype=np.float64)
    g1_db = g0_db if g1_db is None else g1_db
    db = np.linspace(g0_db, g1_db, len(y)) if len(y) > 1 else np.full(len(y), float(g0_db))
    return y * 10.0 ** (db / 20.0)


def coloured_noise(n: int, rng, colour: str = "white"):
    """Unit-power noise of n samples with a power spectrum ~ 1 (white), 1/f (pink) or 1/f^2
    (brown): white Gaussian noise shaped in the frequency domain, f >= one bin."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"noise colour must be one of {NOISE_COLOURS}, got {colour!r}")
    w = rng.standard_normal(n)
    if colour != "white" and n > 2:
        W = np.fft.rfft(w)
        f = np.arange(len(W), dtype=np.float64)
        f[0] = 1.0
        W /= f ** (0.5 if colour == "pink" else 1.0)
        W[0] = 0.0
        w = np.fft.irfft(W, n=n)
    return w / max(np.sqrt(np.mean(w * w)), 1e-12)


def add_noise(y, snr_db: float, rng, colour: str = "white"):
    """(4): y plus noise at a signal-to-noise ratio of ``snr_db`` over the whole clip."""
    y = np.asarray(y, dtype=np.float64)
    p_signal = float(np.mean(y * y))
    noise = coloured_noise(len(y), rng, colour)
    return y + math.sqrt(p_signal / 10.0 ** (snr_db / 10.0)) * noise


# ----------------------------------------------------------------------------------------------
# Feature images
# ----------------------------------------------------------------------------------------------
def vtlp_warp(f, alpha: float, fmax: float, boundary: float = 0.8):
    """w(f) of (5): alpha f up to f0, then the straight line to (fmax, fmax)."""
    f = np.asarray(f, dtype=np.float64)
    f0 = boundary * fmax * min(alpha, 1.0) / alpha
    upper = fmax - (fmax - alpha * f0) * (fmax - f) / (fmax - f0)
    return np.where(f <= f0, alpha * f, upper)


def vtlp(S, alpha: float, sr: float, fmin: float = 0.0, fmax: float | None = None,
         htk: bool = False):
    """(5): the mel image S (..., n_mels, frames) warped: what was at f moves to w(f), so
    alpha > 1 moves formants up (a shorter vocal tract), alpha < 1 down. Values between mel
    centres are interpolated linearly; the edges are held. alpha = 1 returns a copy of S."""
    S = np.asarray(S)
    if alpha == 1.0:
        return S.copy()
    fmax = sr / 2.0 if fmax is None else fmax
    n_mels = S.shape[-2]
    centres = mel_frequencies(n_mels + 2, fmin, fmax, htk)[1:-1]  # g_m, Hz
    grid = np.linspace(0.0, fmax, 2048)
    source = np.interp(centres, vtlp_warp(grid, alpha, fmax), grid)  # w^-1(g_m)
    pos = np.interp(hz_to_mel(source, htk), hz_to_mel(centres, htk), np.arange(n_mels))
    lo = np.clip(np.floor(pos).astype(int), 0, n_mels - 1)
    hi = np.clip(lo + 1, 0, n_mels - 1)
    frac = (pos - lo)[:, None]
    out = (1 - frac) * S[..., lo, :] + frac * S[..., hi, :]
    return out.astype(S.dtype, copy=False)


def spec_augment(X, rng, n_freq: int = 2, max_freq: int = 8, n_time: int = 2,
                 max_time: int = 8, max_time_share: float = 1.0, value: float = 0.0,
                 return_masks: bool = False):
    """(6): a copy of the images X (N, H, T) with SpecAugment's frequency and time masks.
    With ``return_masks``, also [(image, 'freq' or 'time', start, width)] for every mask."""
    X = np.array(X, copy=True)
    N, H, T = X.shape
    masks = []
    for i in range(N):
        for _ in range(n_freq):
            f = int(rng.integers(0, min(max_freq, H) + 1))
            f0 = int(rng.integers(0, H - f + 1))
            X[i, f0:f0 + f, :] = value
            masks.append((i, "freq", f0, f))
        t_cap = min(max_time, int(max_time_share * T), T)
        for _ in range(n_time):
            t = int(rng.integers(0, t_cap + 1))
            t0 = int(rng.integers(0, T - t + 1))
            X[i, :, t0:t0 + t] = value
            masks.append((i, "time", t0, t))
    return (X, masks) if return_masks else X


def cmvn(X, eps: float = 1e-3):
    """(7): per utterance and coefficient, (x - mean over time) / max(std over time, eps);
    X (..., H, T), float32 out."""
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(axis=-1, keepdims=True)
    sd = X.std(axis=-1, keepdims=True)
    return ((X - mu) / np.maximum(sd, eps)).astype(np.float32)


__all__ = ["NOISE_COLOURS", "speed_perturb", "time_stretch", "pitch_shift", "time_shift",
           "gain_contour", "coloured_noise", "add_noise", "vtlp_warp", "vtlp", "spec_augment",
           "cmvn"]
