"""Short-time Fourier transform (STFT) and its inverse, with a Hann window.

The seed report (chapter 1.5.3) cuts the signal into windows and takes the FFT of each:

    X[f, t] = sum_{k=0}^{n_fft-1} w[k] ypad[t * hop + k] exp(-2 i pi f k / n_fft)         (1)

for f = 0 .. n_fft // 2 (a real signal's spectrum is symmetric, so the other half is dropped)
and t = 0 .. frames - 1. With ``center=True`` (librosa's default, used throughout) ypad is y
with n_fft // 2 zeros on each side, so frame t is centred on sample t * hop, and

    frames = 1 + L // hop        (the seed's formula, chapter 2.1.2; L = len(y))           (2)

The window w is the periodic Hann window w[k] = 0.5 - 0.5 cos(2 pi k / win_length), centred
in n_fft samples when win_length < n_fft (scipy.signal.get_window('hann', N), librosa's).

Shapes: y (..., L) -> X (..., 1 + n_fft // 2, frames), complex64 for float32 input
(complex128 for float64). Works on NumPy or CuPy arrays (the fast FFT is ``xp.fft.rfft``).
"""
from __future__ import annotations

import numpy as np

from nnscratch.backend import get_array_module


def hann_window(win_length: int, n_fft: int | None = None, xp=np):
    """Periodic Hann window of ``win_length`` samples, zero-padded to ``n_fft`` (centred)."""
    n_fft = win_length if n_fft is None else n_fft
    if not 1 <= win_length <= n_fft:
        raise ValueError(f"need 1 <= win_length <= n_fft, got win_length={win_length}, "
                         f"n_fft={n_fft}")
    k = np.arange(win_length)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * k / win_length)
    left = (n_fft - win_length) // 2
    out = np.zeros(n_fft)
    out[left:left + win_length] = w
    return xp.asarray(out)


def n_frames(n_samples: int, hop_length: int, n_fft: int | None = None, center: bool = True) -> int:
    """Number of STFT frames: 1 + L // hop when centred (2); 1 + (L - n_fft) // hop otherwise."""
    if center:
        return 1 + n_samples // hop_length
    return 1 + (n_samples - n_fft) // hop_length


def _frame_index(n_frames_, frame_length, hop_length, xp):
    """Index array (frames, frame_length): row t reads samples t * hop .. t * hop +
    frame_length - 1."""
    return (xp.arange(n_frames_)[:, None] * hop_length + xp.arange(frame_length)[None, :])


def stft(y, n_fft: int = 2048, hop_length: int | None = None, win_length: int | None = None,
         center: bool = True):
    """X[..., f, t] of equation (1); see the module docstring for the shapes.

    Defaults as librosa: hop_length = win_length // 4, win_length = n_fft, zero padding.
    """
    xp = get_array_module(y)
    y = xp.asarray(y)
    if y.dtype.kind != "f":
        y = y.astype(xp.float64)
    win_length = n_fft if win_length is None else win_length
    hop_length = win_length // 4 if hop_length is None else hop_length
    if hop_length < 1:
        raise ValueError(f"hop_length must be >= 1, got {hop_length}")
    if center:
        pad = n_fft // 2
        widths = [(0, 0)] * (y.ndim - 1) + [(pad, pad)]
        y = xp.pad(y, widths)
    L = y.shape[-1]
    if L < n_fft:
        raise ValueError(f"signal of {L} samples is shorter than n_fft = {n_fft}: use center=True "
                         "or a smaller n_fft")
    T = 1 + (L - n_fft) // hop_length
    window = hann_window(win_length, n_fft, xp).astype(y.dtype)
    frames = y[..., _frame_index(T, n_fft, hop_length, xp)] * window  # (..., T, n_fft)
    X = xp.fft.rfft(frames, n=n_fft, axis=-1)  # (1): (..., T, 1 + n_fft // 2)
    X = X.astype(xp.complex64 if y.dtype == xp.float32 else xp.complex128, copy=False)
    return xp.swapaxes(X, -1, -2)


def istft(X, hop_length: int | None = None, win_length: int | None = None, n_fft: int | None = None,
          center: bool = True, length: int | None = None):
    """Inverse STFT by weighted overlap-add (librosa.istft's rule).

    y = sum_t w[k] irfft(X[:, t])[k] placed at t * hop, divided by sum_t w[k - t hop]^2 where
    that sum is not tiny; then the n_fft // 2 centring samples are dropped and the result cut
    (or zero-padded) to ``length``. ``istft(stft(y), length=len(y))`` returns y to ~1e-6
    (float32) when hop <= win_length / 2. Shapes: X (..., 1 + n_fft // 2, frames) -> y (..., L).
    Griffin-Lim alternates this with ``stft`` to recover a phase for a magnitude spectrogram.
    """
    xp = get_array_module(X)
    n_fft = 2 * (X.shape[-2] - 1) if n_fft is None else n_fft
    win_length = n_fft if win_length is None else win_length
    hop_length = win_length // 4 if hop_length is None else hop_length
    real = xp.float32 if X.dtype == xp.complex64 else xp.float64
    window = hann_window(win_length, n_fft, xp).astype(real)
    T = X.shape[-1]
    # (..., T, n_fft)
    frames = xp.fft.irfft(xp.swapaxes(X, -1, -2), n=n_fft, axis=-1).astype(real) * window
    out_len = n_fft + hop_length * (T - 1)
    y = xp.zeros(X.shape[:-2] + (out_len,), dtype=real)
    wss = xp.zeros(out_len, dtype=real)
    for t in range(T):  # overlap-add: T vectorised slice additions
        s = t * hop_length
        y[..., s:s + n_fft] += frames[..., t, :]
        wss[s:s + n_fft] += window * window
    tiny = np.finfo(np.float32 if real == xp.float32 else np.float64).tiny
    nonzero = wss > tiny
    y[..., nonzero] /= wss[nonzero]
    if center:
        y = y[..., n_fft // 2:]
    if length is not None:
        if y.shape[-1] >= length:
            y = y[..., :length]
        else:
            widths = [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])]
            y = xp.pad(y, widths)
    elif center:
        y = y[..., :y.shape[-1] - n_fft // 2]
    return y


def power_spectrogram(y, n_fft: int = 2048, hop_length: int | None = None,
                      win_length: int | None = None, center: bool = True, power: float = 2.0):
    """|X|^power of ``stft`` (power 2: energy, the input of the mel filterbank; 1: magnitude)."""
    xp = get_array_module(y)
    mag = xp.abs(stft(y, n_fft, hop_length, win_length, center))
    return mag if power == 1.0 else mag ** power


__all__ = ["hann_window", "n_frames", "stft", "istft", "power_spectrogram"]
