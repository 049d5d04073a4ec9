"""What a voice_vae run saves and how generation gets it back: checkpoints (save, load, find),
the latent statistics stored beside the weights, and the way from a [0, 1] image to sound.

    save_model(path, name, model, cfg, scaler, lam, arrays, extra)   # <run>/<name>.npz
    m = Loaded(find_checkpoint(run, "conv3"))    # model, features, scaler, centroids, hops
    y, info = to_audio(m, image, hop)            # Griffin-Lim at the model's sample rate

Arrays in a checkpoint: the scaler's min and max, ``hop_by_digit`` (10,) and ``hop_median``
(the length of generated words; cvae_speaker also ``hop_by_pair`` (10, speakers)), and for
best-epoch checkpoints ``centroids`` and ``centroid_std`` (10, latent), ``code_mean`` and
``code_std`` (latent,) of the training codes, and for the unconditional VAE the Gaussian mixture
fitted to them (``latent_mixture.py``: ``mix_weights`` (K,), ``mix_means`` (K, latent),
``mix_chol`` (K, latent, latent)). The config of a model conditioned on the voice lists its
``speakers`` in the order of its speaker one-hot.
"""
from __future__ import annotations

import glob
import os

import numpy as np

import nnscratch as nn
from apps.audio.features import FeatureConfig
from apps.audio.inverse import SpectrogramScaler, spectrogram_to_audio
from apps.common.errors import UsageError
from apps.voice.data import APP, DEFAULT_OUT_ROOT, N_DIGITS, condition, speaker_index
from apps.voice.latent_mixture import choose_mixture
from apps.voice.model import MODELS, SpectrogramAE


def latent_stats(model: SpectrogramAE, X, digits, X_val=None, c=None) -> dict:
    """Per-digit centroids and spreads of the codes mu(x) of the training images, and their
    overall mean and std (arrays for the checkpoint); given validation images ``X_val``, an
    unconditional VAE also gets the Gaussian mixture of its training codes whose size the
    validation codes choose (``latent_mixture.choose_mixture``). c: the images' condition
    vectors (N, n_classes) for a conditional model."""
    mu, _ = model.encode(X, c)
    cent = np.stack([mu[digits == d].mean(0) if np.any(digits == d) else mu.mean(0)
                     for d in range(N_DIGITS)])
    spread = np.stack([mu[digits == d].std(0) if np.any(digits == d) else mu.std(0)
                       for d in range(N_DIGITS)])
    stats = {"centroids": cent.astype(np.float32), "centroid_std": spread.astype(np.float32),
             "code_mean": mu.mean(0).astype(np.float32), "code_std": mu.std(0).astype(np.float32)}
    if model.variational and not model.n_classes and X_val is not None and len(X_val):
        # the prior to sample: a mixture fitted to the codes, without their labels
        mu_val, _ = model.encode(X_val, None)
        stats.update(choose_mixture(mu, mu_val)[0])
    return stats


def save_model(path, name, model, cfg, scaler, lam, arrays, extra, opt=None,
               protocol="classifier", speakers=()):
    """<run>/<name>.npz; ``speakers``: the voices of a model conditioned on them, in the order
    of its speaker one-hot."""
    config = {"app": APP, "name": name, "model": model.config(), "features": cfg.to_dict(),
              "protocol": protocol, "lambda": lam, "split": "official"}
    if len(speakers):
        config["speakers"] = list(speakers)
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
                                 "('python apps/voice_vae.py train'), or pass --run / "
                                 "--checkpoint") from None
            raise UsageError(str(exc)) from None
        if ck.config.get("app") != APP:
            raise UsageError(f"{path}: not a voice_vae checkpoint "
                             f"(app {ck.config.get('app')!r})")
        self.path, self.name, self.config = path, ck.config["name"], ck.config
        self.model = SpectrogramAE.from_config(ck.config["model"])
        self.model.load_state_dict(ck.model)
        self.model.eval()
        self.cfg = FeatureConfig.from_dict(ck.config["features"])
        self.protocol = ck.config.get("protocol", "classifier")
        self.scaler = SpectrogramScaler.from_arrays(ck.arrays)
        self.arrays, self.extra = ck.arrays, ck.extra
        self.speakers = list(ck.config.get("speakers", []))  # the voices it was conditioned on

    @property
    def latent(self) -> int:
        return self.model.latent

    def hop_for(self, digit=None, speaker=None) -> int:
        """The analysis hop (the length) of a generated word: the median of the training
        recordings of that digit (and that speaker, for a model that knows voices)."""
        if digit is None:
            return int(round(float(self.arrays["hop_median"])))
        if speaker is not None and "hop_by_pair" in self.arrays:
            k = speaker_index([speaker], self.speakers)[0]
            return int(round(float(self.arrays["hop_by_pair"][digit, k])))
        return int(round(float(self.arrays["hop_by_digit"][digit])))

    def condition(self, digits, speakers=None):
        """The condition vectors (N, n_classes) of a conditional model for (N,) digits and (N,)
        speaker names (a model conditioned on the voice needs them); None for the others."""
        if not self.model.n_classes:
            return None
        return condition(digits, speakers, self.speakers)

    def decode(self, z, digits=None, speakers=None):
        return self.model.decode(z, self.condition(digits, speakers))


def find_checkpoint(run=None, model="conv3", checkpoint=None) -> str:
    """--checkpoint, else <run>/<model>.npz, else the newest runs/voice_vae/*/<model>.npz."""
    if checkpoint:
        return checkpoint
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}: choose from {', '.join(MODELS)}")
    if run:
        return os.path.join(run, f"{model}.npz")
    paths = sorted(glob.glob(os.path.join(DEFAULT_OUT_ROOT, "*", f"{model}.npz")),
                   key=os.path.getmtime)
    if not paths:
        raise UsageError(f"checkpoint not found: no {model}.npz under {DEFAULT_OUT_ROOT}/. "
                         f"Train first ('python apps/voice_vae.py train --models {model}'), or "
                         "pass --run / --checkpoint")
    return paths[-1]


def latest_run() -> str:
    """The newest run folder under runs/voice_vae/ that holds a checkpoint."""
    runs = sorted((d for d in glob.glob(os.path.join(DEFAULT_OUT_ROOT, "*")) if os.path.isdir(d)
                   and glob.glob(os.path.join(d, "*.npz"))), key=os.path.getmtime)
    if not runs:
        raise UsageError(f"checkpoint not found: no runs under {DEFAULT_OUT_ROOT}/. Train first "
                         "('python apps/voice_vae.py train') or pass --run")
    return runs[-1]


def to_audio(loaded: Loaded, image, hop, seed=0, n_iter=32, method="nnls", init="random"):
    """(y, info) for one [0, 1] image: inverse.spectrogram_to_audio with the model's features.
    ``init``: Griffin-Lim's initial phase ('random', or a complex spectrogram: phase.py)."""
    return spectrogram_to_audio(image, loaded.scaler, loaded.cfg, hop, method=method,
                                n_iter=n_iter, seed=seed, init=init)
