"""The mel scale, the mel filterbank, mel spectrograms and decibels (librosa's definitions).

The ear resolves low frequencies finely and high ones coarsely; the mel scale straightens that
out. Two scales are in use:

    Slaney (librosa's default, the Auditory Toolbox):                                      (1)
        m = 3 f / 200                          for f < 1000 Hz  (linear: 15 mels at 1 kHz)
        m = 15 + 27 ln(f / 1000) / ln(6.4)     for f >= 1000 Hz (logarithmic)
    HTK:                                                                                   (2)
        m = 2595 log10(1 + f / 700)

The filterbank has ``n_mels`` triangles whose corners are n_mels + 2 points equally spaced in
mels between fmin and fmax, converted back to Hz: c_0 < c_1 < ... < c_{n_mels + 1}.
Triangle i rises from c_i to c_{i+1} and falls to c_{i+2}; on FFT bin frequency f_k:

    M[i, k] = max(0, min((f_k - c_i) / (c_{i+1} - c_i),
                         (c_{i+2} - f_k) / (c_{i+2} - c_{i+1})))                        (3)

With norm='slaney' each triangle is scaled to unit area, 2 / (c_{i+2} - c_i), so a wide
high-frequency band does not outweigh a narrow low one:

    M[i, k] *= 2 / (c_{i+2} - c_i)                                                         (4)

The mel spectrogram maps a power spectrogram P = |STFT|^2 (1 + n_fft // 2, frames) to
(n_mels, frames):  S_mel = M @ P   (5); decibels: S_db = 10 log10(max(amin, S) / ref), floored
at max(S_db) - top_db  (6). Shapes: batches (..., bins, frames) are fine; NumPy or CuPy.

Per-channel energy normalisation (Wang et al. 2017, "Trainable frontend for robust and
far-field keyword spotting"; librosa.pcen), the alternative to decibels: each band divided by
its own recent level, then compressed,

    M[t] = (1 - b) M[t-1] + b E[t],   M[-1] = E[0]  (a smoother over frames, per band)     (7)
    PCEN[t] = (E[t] / (eps + M[t])^alpha + delta)^r - delta^r                             (8)

with b from the time constant T (seconds) as librosa chooses it, t_f = T sr / hop frames,
b = (sqrt(1 + 4 t_f^2) - 1) / (2 t_f^2). A band's steady level (the room, the microphone's
colour, the voice's loudness) is divided out, while onsets, such as a quiet /s/ after
silence, stand out against their band's own past.
"""
from __future__ import annotations

import functools

import numpy as np

from nnscratch.backend import get_array_module

from .stft import power_spectrogram

_F_SP = 200.0 / 3          # Hz per mel below 1 kHz (Slaney)
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f, htk: bool = False):
    """Frequencies (Hz) to mels, (1) Slaney or (2) HTK; scalars or arrays."""
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)  # (2)
    mels = f / _F_SP  # (1), linear part
    log_part = f >= _MIN_LOG_HZ
    logs = _MIN_LOG_MEL + np.log(np.maximum(f, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(log_part, logs, mels)


def mel_to_hz(m, htk: bool = False):
    """Mels to Hz, the inverse of ``hz_to_mel``."""
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    freqs = _F_SP * m
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), freqs)


def mel_frequencies(n_mels: int = 128, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False):
    """``n_mels`` frequencies (Hz) equally spaced on the mel scale from fmin to fmax inclusive."""
    mels = np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels)
    return mel_to_hz(mels, htk)


def fft_frequencies(sr: float, n_fft: int):
    """Centre frequency (Hz) of each of the 1 + n_fft // 2 rFFT bins: k * sr / n_fft."""
    return np.fft.rfftfreq(n_fft, d=1.0 / sr)


def mel_filterbank(sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | None = "slaney",
                   dtype=np.float32):
    """The (n_mels, 1 + n_fft // 2) matrix M of equations (3) and (4) (librosa.filters.mel).

    ``norm``: 'slaney' (unit-area triangles, librosa's default) or None (peak 1).
    Warns (like librosa) when a triangle catches no FFT bin: lower n_mels or raise n_fft.
    Built once per argument set and cached (a fresh copy is returned each call).
    """
    return _mel_filterbank(float(sr), int(n_fft), int(n_mels), float(fmin),
                           None if fmax is None else float(fmax), bool(htk), norm,
                           np.dtype(dtype)).copy()


@functools.lru_cache(maxsize=32)
def _mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype):
    fmax = sr / 2.0 if fmax is None else float(fmax)
    if not 0 <= fmin < fmax <= sr / 2.0 + 1e-9:
        raise ValueError(f"need 0 <= fmin < fmax <= sr / 2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    fftfreqs = fft_frequencies(sr, n_fft)
    corners = mel_frequencies(n_mels + 2, fmin, fmax, htk)  # c_0 .. c_{n_mels+1}
    fdiff = np.diff(corners)
    ramps = corners[:, None] - fftfreqs[None, :]  # c_i - f_k
    weights = np.zeros((n_mels, fftfreqs.size))
    for i in range(n_mels):
        rising = -ramps[i] / fdiff[i]          # (f_k - c_i) / (c_{i+1} - c_i)
        falling = ramps[i + 2] / fdiff[i + 1]  # (c_{i+2} - f_k) / (c_{i+2} - c_{i+1})
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))  # (3)
    if norm == "slaney":
        weights *= (2.0 / (corners[2:n_mels + 2] - corners[:n_mels]))[:, None]  # (4)
    if np.any(weights.max(axis=1) == 0):
        import warnings

        warnings.warn(f"mel_filterbank: some of the {n_mels} mel filters are empty: n_mels is too "
                      f"high for n_fft = {n_fft}", stacklevel=3)
    return weights.astype(dtype)


def melspectrogram(y=None, sr: float = 22050, S=None, n_fft: int = 2048, hop_length: int = 512,
                   win_length: int | None = None, center: bool = True, power: float = 2.0,
                   n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | None = "slaney"):
    """Mel spectrogram (..., n_mels, frames), equation (5), from a signal y (..., L) or from a
    power spectrogram S (..., 1 + n_fft // 2, frames) (librosa.feature.melspectrogram)."""
    if S is None:
        if y is None:
            raise ValueError("melspectrogram needs y (a signal) or S (a power spectrogram)")
        S = power_spectrogram(y, n_fft, hop_length, win_length, center, power)
    else:
        n_fft = 2 * (S.shape[-2] - 1)
    xp = get_array_module(S)
    M = xp.asarray(mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype=S.dtype))
    return xp.matmul(M, S)  # (5)


def power_to_db(S, ref=1.0, amin: float = 1e-10, top_db: float | None = 80.0):
    """Decibels of a power spectrogram, equation (6) (librosa.power_to_db).

        S_db = 10 log10(max(amin, S)) - 10 log10(max(amin, ref))
        S_db = max(S_db, max(S_db) - top_db)        (when top_db is not None)

    ``ref`` a number, or a function of S such as ``np.max`` (then 0 dB is the loudest bin:
    the level of the recording no longer matters). The max runs over the whole array: call it
    once per example.
    """
    xp = get_array_module(S)
    if amin <= 0:
        raise ValueError(f"amin must be > 0, got {amin}")
    S = xp.abs(S)
    ref_value = ref(S) if callable(ref) else abs(ref)
    log_spec = 10.0 * xp.log10(xp.maximum(amin, S))
    log_spec -= 10.0 * xp.log10(xp.maximum(amin, ref_value))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be >= 0, got {top_db}")
        log_spec = xp.maximum(log_spec, log_spec.max() - top_db)
    return log_spec


def pcen(E, sr: float, hop_length: int, gain: float = 0.98, bias: float = 2.0,
         power: float = 0.5, time_constant: float = 0.4, eps: float = 1e-6):
    """Per-channel energy normalisation of a (..., n_mels, frames) mel spectrogram E >= 0,
    equations (7)-(8); librosa.pcen's defaults, with the smoother started at the first frame's
    level (librosa starts it at 1, which makes the first frames of a short clip loud). NumPy."""
    from scipy.signal import lfilter

    E = np.asarray(E, dtype=np.float64)
    if E.ndim < 2 or np.any(E < 0):
        raise ValueError("pcen needs a non-negative spectrogram (..., bands, frames)")
    t_frames = time_constant * sr / float(hop_length)
    b = (np.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)
    M, _ = lfilter([b], [1, b - 1], E, axis=-1, zi=(1 - b) * E[..., :1])          # (7)
    return (E / (eps + M) ** gain + bias) ** power - bias ** power                   # (8)


def db_to_power(S_db, ref: float = 1.0):
    """Inverse of ``power_to_db`` (without the top_db floor): ref * 10^(S_db / 10)."""
    xp = get_array_module(S_db)
    return ref * xp.power(10.0, 0.1 * S_db)


__all__ = ["hz_to_mel", "mel_to_hz", "mel_frequencies", "fft_frequencies", "mel_filterbank",
           "melspectrogram", "power_to_db", "db_to_power"]
