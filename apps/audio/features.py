"""From a recording to a fixed-size image: the feature pipeline of the audio classifiers.

The seed report (chapter 2.1.2) feeds networks (n_mels x frames) spectrograms of a fixed size,
50 x 50, and picks ``hop_length`` from the signal length L so that the STFT has the wanted
number of frames. With ``center=True`` there are frames = 1 + L // hop (stft.py, (2)), so

    frames = y  <=>  L // hop = y - 1  <=>  L / y < hop <= L / (y - 1)                     (1)

and hop = floor(L / (y - 1)) works whenever that interval holds an integer, which is always the
case for L >= y (y - 1) (2,450 samples = 0.31 s at 8 kHz for y = 50). (The seed writes the
bounds the other way round and suggests floor((L + 1) / y), which gives y + 1 frames for
L = 4000, y = 50: 4000 // 80 = 50.) For shorter signals no hop is exact; ``hop_length_for``
returns the closest and ``fit_frames`` crops the extra frame(s).

Pipeline (``extract``), for one mono signal at ``sr``:
    1. trim leading/trailing silence (wav.trim_silence, ``trim_db``);
    2. 'stretch' mode (default, the seed's): hop = hop_length_for(L, n_frames), so every word
       fills the n_frames columns whatever its duration; 'fixed' mode: pad or cut the signal to
       ``duration`` seconds and use one hop for all;
    3. mel spectrogram (n_mels, frames), in dB relative to its loudest bin (power_to_db with
       ref = max, floor top_db below): the recording level does not matter; or, with
       ``scale`` 'pcen', the magnitude mel spectrogram through per-channel energy normalisation
       (mel.pcen: each band over its own smoothed level; the level barely matters either);
    4. 'mel': that image; 'mfcc': the first n_mfcc rows of its DCT-II (mfcc.py); 'both': the
       two stacked vertically, (n_mels + n_mfcc, n_frames).
Output: float32 (height, n_frames). ``Standardizer`` then subtracts means and divides by standard
deviations computed on the training examples only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .mel import melspectrogram, pcen, power_to_db
from .mfcc import dct_matrix
from .wav import AudioError, pad_or_trim, trim_silence

KINDS = ("mel", "mfcc", "both")
TIME_MODES = ("stretch", "fixed")
SCALES = ("db", "pcen")
PCEN_INPUT_SCALE = 2.0 ** 31   # librosa's advice: signals in [-1, 1] scaled like 32-bit PCM


def hop_length_for(n_samples: int, n_frames: int, exact: bool = False) -> int:
    """The hop that gives ``n_frames`` centred STFT frames for ``n_samples`` samples, (1).

    Returns floor(L / (y - 1)), which is exact when L >= y (y - 1); for shorter signals it is the
    largest hop giving at least y frames (crop the surplus with ``fit_frames``), and 1 when even
    hop 1 gives fewer (L < y - 1: L + 1 frames, pad them with ``fit_frames``). With ``exact``,
    raises ValueError instead of returning an inexact hop. y = 1 returns L + 1.
    """
    L, y = int(n_samples), int(n_frames)
    if L < 1 or y < 1:
        raise ValueError(f"need n_samples >= 1 and n_frames >= 1, got {n_samples}, {n_frames}")
    if y == 1:
        return L + 1
    hop = max(1, L // (y - 1))
    if 1 + L // hop != y and exact:
        raise ValueError(f"no hop_length gives {y} frames for {L} samples (need L >= y (y - 1) = "
                         f"{y * (y - 1)}); the closest, {hop}, gives {1 + L // hop}")
    return hop


def fit_frames(S, n_frames: int, fill=None):
    """S (..., frames) cropped at the end, or padded with ``fill`` (default: S's minimum), to
    n_frames."""
    T = S.shape[-1]
    if T == n_frames:
        return S
    if T > n_frames:
        return S[..., :n_frames]
    fill = float(S.min()) if fill is None else fill
    widths = [(0, 0)] * (S.ndim - 1) + [(0, n_frames - T)]
    return np.pad(S, widths, constant_values=fill)


@dataclass(frozen=True)
class FeatureConfig:
    """Every choice of the feature pipeline, saved in checkpoints so ``predict`` repeats it."""

    kind: str = "mel"            # 'mel', 'mfcc' or 'both'
    sr: int = 8000               # signals are resampled to this rate first
    n_mels: int = 50
    n_frames: int = 50
    n_mfcc: int = 20
    n_fft: int = 512             # 64 ms at 8 kHz; bins of 15.6 Hz
    fmin: float = 0.0
    fmax: float | None = None    # None: sr / 2
    htk: bool = False            # mel scale: Slaney (librosa's default) or HTK
    top_db: float = 80.0         # dB floor below the loudest bin
    trim_db: float | None = 30.0 # silence trimming threshold (None: no trimming)
    time_mode: str = "stretch"   # 'stretch' (hop per recording, the seed's) or 'fixed'
    duration: float = 1.0        # seconds, 'fixed' mode only
    scale: str = "db"            # 'db' (decibels below the loudest bin) or 'pcen'

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"feature kind must be one of {KINDS}, got {self.kind!r}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.time_mode not in TIME_MODES:
            raise ValueError(f"time_mode must be one of {TIME_MODES}, got {self.time_mode!r}")
        if self.kind != "mel" and not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"need 1 <= n_mfcc <= n_mels, got {self.n_mfcc} and {self.n_mels}")

    @property
    def height(self) -> int:
        heights = {"mel": self.n_mels, "mfcc": self.n_mfcc, "both": self.n_mels + self.n_mfcc}
        return heights[self.kind]

    @property
    def shape(self) -> tuple[int, int]:
        """(height, n_frames) of one feature image."""
        return self.height, self.n_frames

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def prepare_signal(y, cfg: FeatureConfig):
    """Steps 1-2 on the signal: trim silence; in 'fixed' mode pad or cut to cfg.duration."""
    y = np.asarray(y, dtype=np.float32)
    if cfg.trim_db is not None:
        trimmed, _ = trim_silence(y, top_db=cfg.trim_db, frame_length=256, hop_length=64)
        if trimmed.size >= 256:  # keep the original if trimming would leave (almost) nothing
            y = trimmed
    if cfg.time_mode == "fixed":
        y = pad_or_trim(y, int(round(cfg.duration * cfg.sr)), align="center")
    if y.size == 0:
        raise AudioError("empty signal: nothing to extract features from")
    return y


def extract(y, cfg: FeatureConfig):
    """The (height, n_frames) float32 feature image of one mono signal at cfg.sr (steps 1-4)."""
    y = prepare_signal(y, cfg)
    if cfg.time_mode == "stretch":
        hop = hop_length_for(y.size, cfg.n_frames)
    else:
        hop = hop_length_for(int(round(cfg.duration * cfg.sr)), cfg.n_frames)
    mel_args = dict(sr=cfg.sr, n_fft=cfg.n_fft, hop_length=hop, n_mels=cfg.n_mels,
                    fmin=cfg.fmin, fmax=cfg.fmax, htk=cfg.htk)
    if cfg.scale == "pcen":
        S = melspectrogram(y.astype(np.float64) * PCEN_INPUT_SCALE, power=1.0, **mel_args)
        image = fit_frames(pcen(S, cfg.sr, hop), cfg.n_frames)
    else:
        S = melspectrogram(y.astype(np.float64), **mel_args)
        image = fit_frames(power_to_db(S, ref=np.max, top_db=cfg.top_db), cfg.n_frames)
    if cfg.kind == "mel":
        out = image
    else:
        C = dct_matrix(cfg.n_mfcc, cfg.n_mels) @ image
        out = C if cfg.kind == "mfcc" else np.concatenate([image, C], axis=0)
    return out.astype(np.float32)


def extract_many(signals, cfg: FeatureConfig, progress: bool = False, desc: str = "features"):
    """Stack ``extract`` over signals: (N, height, n_frames) float32."""
    it = signals
    if progress:
        from tqdm import tqdm

        it = tqdm(signals, desc=desc, unit="file", leave=False)
    out = np.empty((len(signals),) + cfg.shape, dtype=np.float32)
    for i, y in enumerate(it):
        out[i] = extract(y, cfg)
    return out


class Standardizer:
    """z = (x - mean) / std with statistics from the training examples only.

    ``per``: 'band' (one mean/std per feature row, over examples and frames: the default,
    robust for convolutions), 'pixel' (one per row and frame, like scikit-learn's StandardScaler
    on flattened images) or 'global' (one scalar). Shapes: x (N, height, frames).
    """

    PER = ("band", "pixel", "global")

    def __init__(self, per: str = "band", eps: float = 1e-5):
        if per not in self.PER:
            raise ValueError(f"per must be one of {self.PER}, got {per!r}")
        self.per, self.eps = per, eps
        self.mean = self.std = None

    def fit(self, X) -> Standardizer:
        axes = {"band": (0, 2), "pixel": (0,), "global": (0, 1, 2)}[self.per]
        X = np.asarray(X, dtype=np.float64)
        self.mean = X.mean(axis=axes, keepdims=True)[0].astype(np.float32)
        self.std = (X.std(axis=axes, keepdims=True)[0] + self.eps).astype(np.float32)
        return self

    def transform(self, X):
        if self.mean is None:
            raise RuntimeError("Standardizer: call fit() on the training data first")
        return ((np.asarray(X, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def arrays(self) -> dict:
        return {"norm_mean": self.mean, "norm_std": self.std}

    @classmethod
    def from_arrays(cls, per: str, mean, std) -> Standardizer:
        s = cls(per)
        s.mean, s.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        return s


__all__ = ["FeatureConfig", "hop_length_for", "fit_frames", "prepare_signal", "extract",
           "extract_many", "Standardizer", "KINDS", "TIME_MODES"]
