"""WAV input and output, resampling, silence trimming and fixed-length padding.

Signals are 1-D float32 NumPy arrays in [-1, 1] (soundfile's scale), mono, with their sample
rate ``sr`` in Hz carried beside them. Every way a file can be unusable raises ``AudioError``
(a ValueError) whose message names the file and says what to do:

    unreadable or missing file, zero samples, several channels (unless ``downmix=True``),
    a sample rate outside 1-384 kHz, longer than ``max_seconds``, NaN or infinite samples,
    samples outside [-1, 1] (a float file that was not normalised), or silent (peak below
    ``silence_db`` dBFS, see ``check_not_silent``)

    y, sr = read_wav("7_jackson_32.wav")                         # (L,), 8000
    y = resample(y, sr, 16000)                                    # scipy.signal.resample_poly
    y, (start, end) = trim_silence(y, top_db=30)                  # like librosa.effects.trim
    y = pad_or_trim(y, 8000)                                      # exactly one second at 8 kHz
    write_wav("out.wav", y, 8000)                                 # PCM_16 by default
"""
from __future__ import annotations

import math
import os

import numpy as np
from scipy.signal import resample_poly

from apps.common.errors import InputError

#: sample rates a recording may have (Hz); a damaged header claims anything
MIN_RATE, MAX_RATE = 1000, 384_000


class AudioError(InputError):
    """An audio file or signal that cannot be used (unreadable, empty, silent, stereo, too long)."""


def read_wav(path, sr: int | None = None, downmix: bool = False,
             max_seconds: float | None = None, dtype=np.float32):
    """Read a sound file (WAV, FLAC, OGG: whatever libsndfile reads) as a mono signal.

    Args:
        path: the file.
        sr: resample to this rate (Hz) if given; None keeps the file's rate.
        downmix: average the channels of a multi-channel file instead of refusing it.
        max_seconds: refuse files longer than this (checked before resampling).
    Returns (y, sr): y of shape (L,) in ``dtype``, values in [-1, 1]; sr the rate of y.
    Raises AudioError (see the module docstring).
    """
    import soundfile as sf  # noqa: PLC0415 - libsndfile is needed only to read or write files

    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, TypeError on odd headers
        raise AudioError(f"{path}: not a readable audio file ({type(exc).__name__}: "
                         f"{exc})") from None
    if info.frames == 0:
        raise AudioError(f"{path}: the file holds no audio samples (empty recording)")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:  # resampling from it could take gigabytes
        raise AudioError(f"{path}: a sample rate of {info.samplerate} Hz, outside the "
                         f"{MIN_RATE}-{MAX_RATE} Hz of audio recordings (a damaged header?)")
    seconds = info.frames / info.samplerate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(
            f"{path}: {seconds:.1f} s long, more than the {max_seconds:g} s allowed: cut out the "
            "part to classify (one spoken word) and try again"
        )
    if info.channels > 1 and not downmix:
        raise AudioError(
            f"{path}: {info.channels} channels (stereo); expected a mono recording. Convert it to "
            "mono, or pass downmix=True (--downmix) to average the channels"
        )
    try:
        y, file_sr = sf.read(path, dtype="float64", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: could not decode the audio ({type(exc).__name__}: "
                         f"{exc})") from None
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if y.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples (empty recording)")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: the file holds NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:  # only a floating-point file can hold samples outside [-1, 1]
        raise AudioError(f"{path}: samples reach {peak:.6g}, outside the [-1, 1] of audio "
                         f"({info.subtype} data); normalise the recording to a peak of 1 or "
                         "less and try again")
    if sr is not None and sr != file_sr:
        y = resample(y, file_sr, sr)
        file_sr = sr
    return y.astype(dtype, copy=False), int(file_sr)


def write_wav(path, y, sr: int, subtype: str = "PCM_16") -> str:
    """Write a mono (L,) or multi-channel (L, channels) signal; values are clipped to [-1, 1].

    Raises AudioError for an empty or non-finite signal. Returns the path.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        raise AudioError(f"{path}: refusing to write an empty signal")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: the signal holds NaN or infinite values")
    import soundfile as sf  # noqa: PLC0415 - libsndfile is needed only to read or write files

    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    sf.write(os.fspath(path), np.clip(y, -1.0, 1.0), int(sr), subtype=subtype)
    return os.fspath(path)


def resample(y, orig_sr: int, target_sr: int):
    """Polyphase resampling by the rational factor target_sr / orig_sr (scipy's resample_poly).

    ``resample_poly`` upsamples by ``up``, low-pass filters (a Kaiser-windowed FIR) and keeps one
    sample in ``down``, with up / down = target_sr / orig_sr reduced by their gcd. Output length:
    ceil(L * up / down). Works along the last axis.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return np.asarray(y)
    g = math.gcd(int(orig_sr), int(target_sr))
    up, down = int(target_sr) // g, int(orig_sr) // g
    out = resample_poly(np.asarray(y, dtype=np.float64), up, down, axis=-1)
    dtype = np.asarray(y).dtype if np.asarray(y).dtype.kind == "f" else np.float64
    return out.astype(dtype, copy=False)


def peak_db(y) -> float:
    """Peak level in dBFS: 20 log10(max |y|) (-inf for an all-zero signal)."""
    peak = float(np.max(np.abs(y))) if np.size(y) else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def check_not_silent(y, silence_db: float = -50.0, name: str = "signal") -> None:
    """Raise AudioError if the peak level is below ``silence_db`` dBFS (default -50 dB = 0.0032)."""
    level = peak_db(y)
    if level < silence_db:
        what = "all zeros" if level == -math.inf else f"peak {level:.1f} dBFS"
        raise AudioError(
            f"{name}: the recording is silent ({what}, below {silence_db:g} dBFS): check the "
            "microphone and record again"
        )


def frame_rms(y, frame_length: int = 2048, hop_length: int = 512):
    """Root-mean-square energy of centred frames (librosa.feature.rms, zero padding): (frames,).

    rms[t] = sqrt(1/frame_length * sum_k ypad[t * hop + k]^2), ypad = y with frame_length // 2
    zeros on each side, so frame t is centred on sample t * hop and there are 1 + L // hop frames.
    """
    y = np.asarray(y, dtype=np.float64)
    pad = frame_length // 2
    ypad = np.pad(y, (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(ypad, frame_length)[::hop_length]
    return np.sqrt(np.mean(frames * frames, axis=-1))


def trim_silence(y, top_db: float = 60.0, frame_length: int = 2048, hop_length: int = 512):
    """Cut leading and trailing silence (librosa.effects.trim's rule).

    A frame is silent when its mean power is more than ``top_db`` dB below the loudest frame's:
        db[t] = 10 log10(max(amin, rms[t]^2)) - 10 log10(max(amin, max_t rms[t]^2)),  amin = 1e-10
    (``frame_rms``; mel.power_to_db with ref = max); frames with db[t] > -top_db are kept.
    Returns (trimmed y, (start, end)) with y_trimmed = y[start:end]; start is the first kept
    frame's sample (t * hop), end the sample after the last kept frame (capped at L).
    An all-zero signal is kept whole (every frame sits at the amin floor, like the maximum), as
    in librosa: check silence first (``check_not_silent``).
    """
    y = np.asarray(y)
    mse = frame_rms(y, frame_length, hop_length) ** 2
    amin = 1e-10
    db = 10.0 * np.log10(np.maximum(amin, mse)) - 10.0 * np.log10(max(amin, float(mse.max())))
    keep = np.flatnonzero(db > -top_db)
    if keep.size == 0:
        return y[..., :0], (0, 0)
    start = int(keep[0] * hop_length)
    end = int(min(y.shape[-1], (keep[-1] + 1) * hop_length))
    return y[..., start:end], (start, end)


def pad_or_trim(y, length: int, align: str = "center"):
    """Exactly ``length`` samples: zero-pad a short signal, cut a long one.

    ``align``: 'left' keeps the start (pads/cuts at the end); 'center' keeps the middle (pads or
    cuts equally on both sides, the extra sample at the end).
    """
    y = np.asarray(y)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if align not in ("left", "center"):
        raise ValueError(f"align must be 'left' or 'center', got {align!r}")
    L = y.shape[-1]
    if L == length:
        return y
    if L > length:
        start = 0 if align == "left" else (L - length) // 2
        return y[..., start:start + length]
    before = 0 if align == "left" else (length - L) // 2
    widths = [(0, 0)] * (y.ndim - 1) + [(before, length - L - before)]
    return np.pad(y, widths)


def load_clip(path, sr: int, max_seconds: float = 10.0, downmix: bool = False,
              trim_db: float | None = 30.0, silence_db: float = -50.0,
              frame_length: int = 256, hop_length: int = 64):
    """A user's recording ready for a model: read, check, resample to ``sr``, trim silence.

    Returns y (L,) float32 at ``sr``. Raises AudioError for unreadable, empty, stereo (unless
    ``downmix``), too long, or silent files, and when nothing is left after trimming.
    """
    y, sr = read_wav(path, sr=sr, downmix=downmix, max_seconds=max_seconds)
    check_not_silent(y, silence_db, name=os.fspath(path))
    if trim_db is not None:
        y, _ = trim_silence(y, top_db=trim_db, frame_length=frame_length, hop_length=hop_length)
        if y.size < frame_length // 2:
            raise AudioError(f"{path}: almost nothing is left after trimming silence "
                             f"({y.size} samples): record the word louder or closer")
    return y


__all__ = [
    "AudioError", "read_wav", "write_wav", "resample", "peak_db", "check_not_silent", "frame_rms",
    "trim_silence", "pad_or_trim", "load_clip",
]
