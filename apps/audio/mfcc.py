"""Mel-frequency cepstral coefficients: an orthonormal DCT-II of the log-mel spectrogram.

The seed report (chapter 2.2) lists the steps: spectrogram, mel scale, logarithm, then an
"inverse Fourier transform" of the log spectrum; in practice (librosa, HTK) that last step is a
type-II discrete cosine transform over the mel axis, keeping the first n_mfcc coefficients:

    S_db = power_to_db(melspectrogram(y))            (n_mels, frames)
    C[q, t] = sum_{m=0}^{M-1} D[q, m] S_db[m, t]     q = 0 .. n_mfcc - 1, M = n_mels      (1)
    D[q, m] = s_q cos(pi q (2 m + 1) / (2 M)),  s_0 = sqrt(1 / M),  s_q = sqrt(2 / M)       (2)

D (M x M) is orthonormal (D D^T = I): with n_mfcc = n_mels the transform is a rotation and
``inverse_mfcc`` undoes it exactly. Coefficient 0 is the mean log level; low coefficients
describe the spectral envelope (the vocal tract), high ones fine detail. An optional lifter
scales coefficient q by 1 + (L / 2) sin(pi (q + 1) / L)  (3), as librosa does.
"""
from __future__ import annotations

import numpy as np

from nnscratch.backend import get_array_module

from .mel import melspectrogram, power_to_db


def dct_matrix(n_out: int, n_in: int, dtype=np.float64):
    """The first ``n_out`` rows of the orthonormal DCT-II matrix of size n_in, equation (2)."""
    if not 1 <= n_out <= n_in:
        raise ValueError(f"need 1 <= n_out <= n_in, got n_out={n_out}, n_in={n_in}")
    q = np.arange(n_out)[:, None]
    m = np.arange(n_in)[None, :]
    D = np.cos(np.pi * q * (2 * m + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    D[0] *= np.sqrt(0.5)  # s_0 = sqrt(1 / M)
    return D.astype(dtype)


def mfcc(y=None, sr: float = 22050, S=None, n_mfcc: int = 20, lifter: float = 0.0, **mel_kwargs):
    """MFCC (..., n_mfcc, frames) from a signal y, or from a log-power mel spectrogram S (dB).

    With y, S = power_to_db(melspectrogram(y, sr, **mel_kwargs)) (librosa.feature.mfcc's rule;
    ``mel_kwargs``: n_fft, hop_length, n_mels, fmin, fmax, htk, ...). Equations (1)-(3).
    """
    if S is None:
        if y is None:
            raise ValueError("mfcc needs y (a signal) or S (a log-power mel spectrogram in dB)")
        S = power_to_db(melspectrogram(y=y, sr=sr, **mel_kwargs))
    xp = get_array_module(S)
    D = xp.asarray(dct_matrix(n_mfcc, S.shape[-2], dtype=S.dtype))
    C = xp.matmul(D, S)  # (1)
    if lifter > 0:
        q = xp.arange(1, n_mfcc + 1, dtype=S.dtype)
        C = C * (1 + (lifter / 2) * xp.sin(np.pi * q / lifter))[:, None]  # (3)
    elif lifter < 0:
        raise ValueError(f"lifter must be >= 0, got {lifter}")
    return C


def inverse_mfcc(C, n_mels: int):
    """Log-mel spectrogram (dB) back from MFCC (no lifter): D^T C, exact when n_mfcc = n_mels,
    a smoothed envelope otherwise (the discarded high coefficients are taken as zero)."""
    xp = get_array_module(C)
    D = xp.asarray(dct_matrix(C.shape[-2], n_mels, dtype=C.dtype))
    return xp.matmul(D.T, C)


__all__ = ["dct_matrix", "mfcc", "inverse_mfcc"]
