"""Data and checkpoints of apps/voice_vae.py: FSDD recordings as dB images, the split, the
per-run checkpoints (save, load, find), and the way back from a [0, 1] image to sound.

Shapes: ``VoiceData.S_db`` (N, n_mels, frames) float32 dB images in fsdd order, ``hops`` (N,) the
analysis hop of each recording (resynthesis needs it); a model sees x = scaler.transform(S_db) in
[0, 1] and codes of shape (N, latent). The shared constants (the model table, the seed's MSEs,
the run folder) live here so that the command line, the training, the plots and the judge use
them without importing one another.
"""
from __future__ import annotations

import glob
import json
import os
import time

import numpy as np

import nnscratch as nn
from apps.audio import fsdd
from apps.audio.features import FeatureConfig, extract, fit_frames, hop_length_for, prepare_signal
from apps.audio.inverse import SpectrogramScaler, spectrogram_to_audio
from apps.audio.mel import melspectrogram, power_to_db
from apps.audio.wav import read_wav
from apps.voice_models import SpectrogramAE, one_hot

APP = "voice_vae"
DEFAULT_OUT_ROOT = os.path.join("runs", APP)
N_DIGITS = 10
MODELS = {  # name -> SpectrogramAE arguments (channels/hidden from the command line)
    "dense3": {"kind": "dense", "latent": 3, "variational": False, "n_classes": 0},
    "conv3": {"kind": "conv", "latent": 3, "variational": False, "n_classes": 0},
    "conv10": {"kind": "conv", "latent": 10, "variational": False, "n_classes": 0},
    "vae": {"kind": "conv", "latent": 10, "variational": True, "n_classes": 0},
    "cvae": {"kind": "conv", "latent": 10, "variational": True, "n_classes": N_DIGITS},
}
SEED_TEST_MSE = {"conv3": 0.0059, "conv10": 0.0038, "dense3": 0.0060, "vae": 0.0054}


class UsageError(ValueError):
    """Bad input from the command line (missing checkpoint, wrong latent size, bad digit...)."""


# ==============================================================================================
# Data
# ==============================================================================================
PROTOCOLS = ("classifier", "seed")


def feature_config(protocol: str = "classifier", n_mels: int = 50, n_frames: int = 50) -> FeatureConfig:
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
    level) and top_db 80. The two give very different [0, 1] images: see the module docstring.
    """
    if protocol == "seed":
        hop = max(1, (len(y) + 1) // cfg.n_frames)
        S = melspectrogram(np.asarray(y, dtype=np.float64), sr=cfg.sr, n_fft=cfg.n_fft, hop_length=hop,
                           n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=cfg.htk)
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
    import hashlib  # noqa: PLC0415

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
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(recs, desc="features", unit="file", leave=False)
    S_db = np.empty((len(recs), *cfg.shape), dtype=np.float32)
    hops = np.empty(len(recs), dtype=np.int64)
    for i, r in enumerate(it):
        S_db[i], hops[i] = features_of(read_wav(r.path, sr=cfg.sr)[0], cfg, protocol)
    log(f"features: {len(recs)} recordings -> {cfg.shape} mel images in {time.perf_counter() - t0:.1f} s")
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, S_db=S_db, hops=hops)
        os.replace(tmp, path)
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


def check_digit(d) -> int:
    if d is None:
        raise UsageError("this command needs --digit (0-9)")
    if not float(d).is_integer() or not 0 <= int(d) < N_DIGITS:
        raise UsageError(f"digit {d} is out of range: choose a digit from 0 to {N_DIGITS - 1}")
    return int(d)


# ==============================================================================================
# Checkpoints
# ==============================================================================================
def latent_stats(model: SpectrogramAE, X, digits) -> dict:
    """Per-digit centroids and spreads of the codes mu(x) of the training images, and their
    overall mean and std (arrays for the checkpoint)."""
    c = one_hot(digits) if model.n_classes else None
    mu, _ = model.encode(X, c)
    cent = np.stack([mu[digits == d].mean(0) if np.any(digits == d) else mu.mean(0)
                     for d in range(N_DIGITS)])
    spread = np.stack([mu[digits == d].std(0) if np.any(digits == d) else mu.std(0)
                       for d in range(N_DIGITS)])
    return {"centroids": cent.astype(np.float32), "centroid_std": spread.astype(np.float32),
            "code_mean": mu.mean(0).astype(np.float32), "code_std": mu.std(0).astype(np.float32)}


def hop_stats(hops, digits) -> dict:
    """Median analysis hop per digit and overall: the length given to generated words."""
    by_digit = [float(np.median(hops[digits == d])) if np.any(digits == d) else float(np.median(hops))
                for d in range(N_DIGITS)]
    return {"hop_by_digit": np.array(by_digit), "hop_median": np.array(float(np.median(hops)))}


def save_model(path, name, model, cfg, scaler, lam, arrays, extra, opt=None, protocol="classifier"):
    config = {"app": APP, "name": name, "model": model.config(), "features": cfg.to_dict(),
              "protocol": protocol, "lambda": lam, "split": "official"}
    return nn.save_checkpoint(path, model, opt, config=config, extra=extra,
                              arrays={**scaler.arrays(), **arrays})


class Loaded:
    """A model loaded from a checkpoint, with what generation needs."""

    def __init__(self, path):
        try:
            ck = nn.load_checkpoint(path)
        except nn.CheckpointError as exc:
            if not os.path.exists(path):
                raise UsageError(f"checkpoint not found: {path}. Train the models first "
                                 "('python apps/voice_vae.py train'), or pass --run / --checkpoint") from None
            raise UsageError(str(exc)) from None
        if ck.config.get("app") != APP:
            raise UsageError(f"{path}: not a voice_vae checkpoint (app {ck.config.get('app')!r})")
        self.path, self.name, self.config = path, ck.config["name"], ck.config
        self.model = SpectrogramAE.from_config(ck.config["model"])
        self.model.load_state_dict(ck.model)
        self.model.eval()
        self.cfg = FeatureConfig.from_dict(ck.config["features"])
        self.protocol = ck.config.get("protocol", "classifier")
        self.scaler = SpectrogramScaler.from_arrays(ck.arrays)
        self.arrays, self.extra = ck.arrays, ck.extra

    @property
    def latent(self) -> int:
        return self.model.latent

    def hop_for(self, digit=None) -> int:
        if digit is None:
            return int(round(float(self.arrays["hop_median"])))
        return int(round(float(self.arrays["hop_by_digit"][digit])))

    def decode(self, z, digits=None):
        c = one_hot(digits) if self.model.n_classes else None
        return self.model.decode(z, c)


def find_checkpoint(run=None, model="conv3", checkpoint=None) -> str:
    """--checkpoint, else <run>/<model>.npz, else the newest runs/voice_vae/*/<model>.npz."""
    if checkpoint:
        return checkpoint
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}: choose from {', '.join(MODELS)}")
    if run:
        return os.path.join(run, f"{model}.npz")
    paths = sorted(glob.glob(os.path.join(DEFAULT_OUT_ROOT, "*", f"{model}.npz")), key=os.path.getmtime)
    if not paths:
        raise UsageError(f"checkpoint not found: no {model}.npz under {DEFAULT_OUT_ROOT}/. Train first "
                         f"('python apps/voice_vae.py train --models {model}'), or pass --run / --checkpoint")
    return paths[-1]


def latest_run() -> str:
    """The newest run folder under runs/voice_vae/ that holds a checkpoint."""
    runs = sorted((d for d in glob.glob(os.path.join(DEFAULT_OUT_ROOT, "*")) if os.path.isdir(d)
                   and glob.glob(os.path.join(d, "*.npz"))), key=os.path.getmtime)
    if not runs:
        raise UsageError(f"checkpoint not found: no runs under {DEFAULT_OUT_ROOT}/. Train first "
                         "('python apps/voice_vae.py train') or pass --run")
    return runs[-1]


# ==============================================================================================
# Back to sound
# ==============================================================================================
def to_audio(loaded: Loaded, image, hop, seed=0, n_iter=32, method="nnls"):
    """(y, info) for one [0, 1] image: inverse.spectrogram_to_audio with the model's features."""
    return spectrogram_to_audio(image, loaded.scaler, loaded.cfg, hop, method=method, n_iter=n_iter,
                                seed=seed)
