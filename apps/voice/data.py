"""The data of apps/voice_vae.py: FSDD recordings as dB images, the split, the labels.

Shapes: ``VoiceData.S_db`` (N, n_mels, frames) float32 dB images in fsdd order, ``hops`` (N,) the
analysis hop of each recording (resynthesis needs it); a model sees x = scaler.transform(S_db) in
[0, 1] (apps/audio/inverse.SpectrogramScaler) and, when conditional, ``condition(digits,
speakers, names)``: the one-hot digit (N, 10), then for cvae_speaker the one-hot speaker.
Two feature protocols: 'classifier' (the digit classifier's front end, 8 kHz) and 'seed' (the
seed report's librosa defaults); see ``features_of``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

import nnscratch as nn
from apps.audio import fsdd
from apps.audio.features import FeatureConfig, extract, fit_frames, hop_length_for, prepare_signal
from apps.audio.mel import melspectrogram, power_to_db
from apps.audio.wav import read_wav
from apps.common.errors import UsageError
from apps.common.runs import RUNS_ROOT

APP = "voice_vae"
DEFAULT_OUT_ROOT = os.path.join(RUNS_ROOT, APP)
CACHE_DIR = os.path.join(DEFAULT_OUT_ROOT, ".cache")
N_DIGITS = 10
PROTOCOLS = ("classifier", "seed")


def feature_config(protocol: str = "classifier", n_mels: int = 50,
                   n_frames: int = 50) -> FeatureConfig:
    """The features of a protocol: 'classifier' (the digit classifier's front end, 8 kHz) or
    'seed' (the seed report's librosa defaults, see ``features_of``)."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown feature protocol {protocol!r}: choose from {PROTOCOLS}")
    if protocol == "seed":
        return FeatureConfig(sr=22050, n_fft=2048, n_mels=n_mels, n_frames=n_frames, trim_db=None)
    return FeatureConfig(n_mels=n_mels, n_frames=n_frames)


class VoiceData:
    """dB images (N, n_mels, frames), hops and labels of every recording, fsdd order."""

    def __init__(self, recs, S_db, hops, cfg, protocol="classifier"):
        self.recs, self.S_db, self.hops, self.cfg = recs, S_db, np.asarray(hops), cfg
        self.protocol = protocol
        self.digits = np.array([r.digit for r in recs])
        self.index = np.array([r.index for r in recs])
        self.speakers = np.array([r.speaker for r in recs])


def features_of(y, cfg: FeatureConfig, protocol: str = "classifier"):
    """(dB image (n_mels, frames), hop) of one signal at cfg.sr, and the hop used, which
    resynthesis needs.

    'classifier': features.extract (silence trimmed, hop = features.hop_length_for(trimmed
    length), dB below the loudest bin). 'seed': the seed report's chapters 2.1 and 6.1 with
    librosa's defaults: the whole file at 22,050 Hz, n_fft 2048, hop = floor((L + 1) / frames)
    (its rule, which can give one frame too many: cropped), power_to_db with ref = 1 (absolute
    level) and top_db 80. The two give very different [0, 1] images (see apps/voice_vae.py).
    """
    if protocol == "seed":
        hop = max(1, (len(y) + 1) // cfg.n_frames)
        S = melspectrogram(np.asarray(y, dtype=np.float64), sr=cfg.sr, n_fft=cfg.n_fft,
                           hop_length=hop, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
                           htk=cfg.htk)
        S_db = fit_frames(power_to_db(S, ref=1.0, top_db=cfg.top_db), cfg.n_frames)
        return S_db.astype(np.float32), int(hop)
    if cfg.time_mode == "stretch":
        hop = hop_length_for(prepare_signal(y, cfg).size, cfg.n_frames)
    else:
        hop = hop_length_for(int(round(cfg.duration * cfg.sr)), cfg.n_frames)
    return extract(y, cfg), int(hop)


def load_data(root=None, cfg: FeatureConfig | None = None, limit: int | None = None,
              cache_dir: str | None = None, progress: bool = True, log=print,
              protocol: str = "classifier") -> VoiceData:
    """Every FSDD recording (index < limit if given) as a dB image, cached under cache_dir."""
    cfg = cfg or FeatureConfig()
    root = fsdd.resolve_root(root)
    recs = fsdd.list_recordings(root)
    if limit is not None:
        recs = [r for r in recs if r.index < limit]
    key = json.dumps({"root": os.path.abspath(root), "cfg": cfg.to_dict(), "n": len(recs), "v": 1,
                      "protocol": protocol},
                     sort_keys=True)
    path = (os.path.join(cache_dir, f"voice-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz")
            if cache_dir else None)
    if path and os.path.exists(path):
        with np.load(path, allow_pickle=False) as z:
            return VoiceData(recs, z["S_db"], z["hops"], cfg, protocol)
    t0 = time.perf_counter()
    it = recs
    if progress:
        from tqdm import tqdm

        it = tqdm(recs, desc="features", unit="file", leave=False)
    S_db = np.empty((len(recs), *cfg.shape), dtype=np.float32)
    hops = np.empty(len(recs), dtype=np.int64)
    for i, r in enumerate(it):
        S_db[i], hops[i] = features_of(read_wav(r.path, sr=cfg.sr)[0], cfg, protocol)
    log(f"features: {len(recs)} recordings -> {cfg.shape} mel images in "
        f"{time.perf_counter() - t0:.1f} s")
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, S_db=S_db, hops=hops)
        os.replace(tmp, path)  # atomic: a killed run leaves no half-written cache
    return VoiceData(recs, S_db, hops, cfg, protocol)


def split(data: VoiceData, val_fraction: float = 0.1, seed: int = 0):
    """(train, val, test) indices: FSDD's official test set (index 0-4); a stratified share of
    the rest for validation (picks the best epoch)."""
    train_idx, test_idx = fsdd.official_split(data.recs)
    if val_fraction <= 0:
        return train_idx, train_idx[:0], test_idx
    k = max(2, int(round(1 / val_fraction)))
    tr, va = fsdd.kfold(train_idx, data.digits[train_idx], k=k, seed=seed)[0]
    return np.sort(tr), np.sort(va), test_idx


def hop_stats(hops, digits, speakers=None, names=()) -> dict:
    """Median analysis hop per digit and overall: the length given to generated words; with
    the speakers' names of the recordings (N,) and the model's speaker list ``names``, also
    ``hop_by_pair`` (10, len(names)): a word in a chosen voice gets that speaker's pace."""
    overall = float(np.median(hops))

    def median(mask, fallback):
        return float(np.median(hops[mask])) if np.any(mask) else fallback

    by_digit = [median(digits == d, overall) for d in range(N_DIGITS)]
    out = {"hop_by_digit": np.array(by_digit), "hop_median": np.array(overall)}
    if speakers is not None and len(names):
        out["hop_by_pair"] = np.array([[median((digits == d) & (speakers == s), by_digit[d])
                                        for s in names] for d in range(N_DIGITS)])
    return out


# ----------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------
def check_digit(d) -> int:
    """A --digit value as an int in 0-9, or a UsageError naming the problem."""
    if d is None:
        raise UsageError("this command needs --digit (0-9)")
    if not float(d).is_integer() or not 0 <= int(d) < N_DIGITS:
        raise UsageError(f"digit {d} is out of range: choose a digit from 0 to {N_DIGITS - 1}")
    return int(d)


def speaker_names(speakers) -> list[str]:
    """The sorted distinct speaker names of (N,) recordings: the order of the speaker one-hot."""
    return sorted({str(s) for s in speakers})


def speaker_index(speakers, names) -> np.ndarray:
    """(N,) speaker names -> (N,) int indexes into ``names``; a UsageError names an unknown
    voice and lists the known ones."""
    pos = {n: k for k, n in enumerate(names)}
    out = np.empty(len(speakers), dtype=np.int64)
    for k, s in enumerate(speakers):
        if str(s) not in pos:
            raise UsageError(f"unknown speaker {s!r}: this model knows {', '.join(names)}")
        out[k] = pos[str(s)]
    return out


def pair_grid(voices, n: int, digits=range(N_DIGITS)):
    """(digits (M,) ints, voices (M,)) listing every digit x voice pair n times in a row, digit
    by digit: M = len(digits) len(voices) n. ``voices`` may be [None] (a model without them)."""
    digits = list(digits)
    return (np.repeat(np.array(digits, dtype=np.int64), len(voices) * n),
            np.array([v for _ in digits for v in voices for _ in range(n)], dtype=object))


def condition(digits, speakers=None, names=()) -> np.ndarray:
    """The condition vector of the conditional VAEs: one_hot(digits) (N, 10), then, when the
    model knows voices (``names``), one_hot(speaker) (N, len(names)) after it."""
    c = one_hot(digits)
    if not len(names):
        return c
    if speakers is None or len(speakers) != len(c):
        raise UsageError(f"this model is conditioned on the voice too: it needs one speaker per "
                         f"digit (one of {', '.join(names)})")
    return np.concatenate([c, one_hot(speaker_index(speakers, names), len(names))], axis=1)


def one_hot(labels, n_classes: int = N_DIGITS) -> np.ndarray:
    """(N,) ints in 0..n_classes-1 -> (N, n_classes) float32; ValueError for labels out of range.

    The conditional models read it beside their hidden features and their code."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ValueError(f"digit {int(bad)} is out of range: expected 0-{n_classes - 1}")
    out = np.zeros((labels.size, n_classes), dtype=nn.backend.get_default_dtype())
    out[np.arange(labels.size), labels.astype(np.int64)] = 1.0
    return out
