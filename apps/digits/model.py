"""The spectrogram classifiers (the seed report's chapter 5 architectures) and their checkpoints.

    hp = HParams(model="cnn")
    model = build_model(hp, (50, 50), n_classes=10)
    norm = fit_normaliser(hp, X_train_raw)              # CMVN (option) + training statistics
    proba = predict_proba(model, hp, prepare(hp, norm, X_raw))   # (N, classes) probabilities
    save_model(path, model, hp, cfg, norm, "digit", DIGITS)
    model, hp, cfg, norm, config = load_model(path)

Inputs are standardised feature images X (N, height, frames) float32 (``prepare``: optional
per-utterance CMVN, then features.Standardizer with training-set statistics);
labels are int class indices. Models (channels first):
    MLP: flattened image -> [Dense, ReLU, Dropout] per hidden size -> Dense -> softmax
    CNN: [Conv 3x3 'same', ReLU, MaxPool 2] x 2 -> Dropout -> Flatten -> Dense, ReLU, Dropout
         -> Dense -> softmax
    CNN with a pooled-over-time head ('cnn_pool'): the same two conv blocks, then the max over
         time of every channel and band (nnscratch GlobalMaxPool, (6)-(8) of
         docs/derivations/pool.md): (N, C, H/4, T/4) -> (N, C, H/4), whatever the number of
         frames T; then Dropout -> Flatten -> Dense, ReLU, Dropout -> Dense -> softmax. It reads
         a word wherever it lies in the frames and at whatever length, so it goes with
         'fixed' time mode (a fixed hop, silence around the word) rather than stretching.
The softmax is fused into the loss while training (apps/digits/train.py) and applied by
``predict_proba``. A checkpoint holds the weights, the hyperparameters, the feature settings and
the standardisation statistics: everything ``predict`` needs to classify a new recording.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

import nnscratch as nn
from apps.audio.augment import cmvn
from apps.audio.features import SCALES, FeatureConfig, Standardizer
from apps.digits.data import APP, DEFAULT_OUT_ROOT


@dataclass
class HParams:
    """Model and training choices, saved in checkpoints (``to_dict``) to rebuild the model."""

    model: str = "cnn"               # 'cnn', 'cnn_pool' or 'mlp'
    channels: tuple = (16, 32)       # CNNs: filters of the two conv layers
    hidden: tuple = (256, 128)       # MLP: hidden layer sizes
    dense: int = 128                 # CNN: units of the dense layer
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 0.0        # AdamW's decoupled decay when > 0
    batch_size: int = 64
    epochs: int = 20
    shift: int = 3                   # augmentation: random time shift of up to +-shift frames
    norm: str = "band"               # Standardizer: 'band', 'pixel' or 'global'
    augment: tuple = ("shift",)      # training augmentations (apps/digits/augment.py)
    cmvn: str = "dataset"            # 'dataset': Standardizer only; 'utterance': CMVN first
    freq_pool: tuple = (2, 2)        # CNNs: bands pooled by each MaxPool (time: always 2)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["channels"], d["hidden"] = list(self.channels), list(self.hidden)
        d["augment"], d["freq_pool"] = list(self.augment), list(self.freq_pool)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HParams:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("channels", "hidden", "augment", "freq_pool"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


MODELS = ("cnn", "cnn_pool", "mlp")


def build_model(hp: HParams, input_shape, n_classes: int) -> nn.Sequential:
    """The MLP or a CNN for (height, frames) inputs (the CNNs take (N, 1, height, frames);
    'cnn_pool' then takes any number of frames >= 4, not only the training images' T)."""
    H, T = input_shape
    if hp.model == "mlp":
        sizes = [H * T, *hp.hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Dense(a, b, init="he_uniform"), nn.ReLU(), nn.Dropout(hp.dropout)]
        layers.append(nn.Dense(sizes[-1], n_classes))
        model = nn.Sequential(*layers)
        model[0].input_grad = False  # the first Dense sees data: no dx
        return model
    if hp.model not in MODELS:
        raise ValueError(f"unknown model {hp.model!r}: expected one of {MODELS}")
    c1, c2 = hp.channels
    f1, f2 = hp.freq_pool
    bands = H // f1 // f2
    if bands < 1 or T < 4:
        raise ValueError(f"the CNN needs inputs of at least {f1 * f2} x 4, got {input_shape}")
    # Pooling more bands than frames (Abdel-Hamid et al. 2014) lets a formant move by a band or
    # two, as it does from one voice to another, without changing what the dense layers see.
    convs = [
        nn.Conv2D(1, c1, 3, padding="same", init="he_uniform"), nn.ReLU(), nn.MaxPool2D((f1, 2)),
        nn.Conv2D(c1, c2, 3, padding="same", init="he_uniform"), nn.ReLU(), nn.MaxPool2D((f2, 2)),
    ]
    if hp.model == "cnn_pool":  # (N, c2, bands, T/4) -> (N, c2, bands): the frames pooled away
        head, features = [nn.GlobalMaxPool()], c2 * bands
    else:
        head, features = [], c2 * bands * (T // 4)
    model = nn.Sequential(
        *convs, *head, nn.Dropout(hp.dropout), nn.Flatten(),
        nn.Dense(features, hp.dense, init="he_uniform"), nn.ReLU(),
        nn.Dropout(hp.dropout), nn.Dense(hp.dense, n_classes),
    )
    model[0].input_grad = False  # the first convolution sees data: skip its col2im
    return model


CMVN = ("dataset", "utterance")


def fit_normaliser(hp: HParams, X) -> Standardizer:
    """The Standardizer of the raw training images X (N, H, T), after per-utterance CMVN when
    hp.cmvn is 'utterance' (then its statistics are close to 0 and 1)."""
    if hp.cmvn not in CMVN:
        raise ValueError(f"cmvn must be one of {CMVN}, got {hp.cmvn!r}")
    return Standardizer(hp.norm).fit(cmvn(X) if hp.cmvn == "utterance" else X)


def prepare(hp: HParams, norm: Standardizer, X):
    """Raw feature images (N, H, T) -> the model's standardised images: per-utterance CMVN
    (hp.cmvn == 'utterance', apps/audio/augment.cmvn), then the training-set statistics."""
    return norm.transform(cmvn(X) if hp.cmvn == "utterance" else X)


def as_input(hp: HParams, X):
    """(N, H, T) images -> the model's input: (N, 1, H, T) for the CNNs, (N, H * T) for the
    MLP."""
    return X.reshape(len(X), -1) if hp.model == "mlp" else X[:, None]


def predict_proba(model, hp: HParams, X, batch: int = 256) -> np.ndarray:
    """Softmax probabilities (N, classes), evaluation mode, no saved contexts."""
    model.eval()
    out = []
    with nn.no_grad():
        for i in range(0, len(X), batch):
            logits = nn.to_cpu(model(nn.to_device(as_input(hp, X[i:i + batch]))))
            out.append(nn.functions.softmax(logits.astype(np.float64), axis=-1))
    return np.concatenate(out) if out else np.zeros((0, 0))


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def save_model(path, model, hp, cfg, norm, task, class_names, extra=None):
    """Write model.npz: weights, hyperparameters, feature settings, standardisation."""
    config = {"app": APP, "task": task, "hparams": hp.to_dict(),
              "features": cfg.to_dict(), "norm_per": norm.per, "classes": list(class_names),
              "input_shape": list(cfg.shape)}
    nn.save_checkpoint(path, model, config=config, extra=extra or {}, arrays=norm.arrays())
    return path


def _broadcasts_to(shape, *others) -> bool:
    try:
        return np.broadcast_shapes(shape, *others) == tuple(shape)
    except ValueError:
        return False


def load_model(path):
    """(model, hp, cfg, norm, config) from a checkpoint written by ``save_model``."""
    meta = nn.load_checkpoint(path)
    config = meta.config
    if config.get("app") != APP:
        raise nn.CheckpointError(f"{path}: not a spoken_digits checkpoint")
    try:  # the config rebuilds the model: a damaged one is the checkpoint's fault, not a bug
        if not (isinstance(config["classes"], list) and config["classes"]
                and config["task"] in ("digit", "speaker")):
            raise ValueError("no class names or task")
        hp = HParams.from_dict(config["hparams"])
        if hp.cmvn not in CMVN:
            raise ValueError(f"cmvn {hp.cmvn!r}")
        cfg = FeatureConfig.from_dict(config["features"])
        model = build_model(hp, cfg.shape, len(config["classes"]))
        norm = Standardizer.from_arrays(config["norm_per"], meta.arrays["norm_mean"],
                                        meta.arrays["norm_std"])
        if not _broadcasts_to(cfg.shape, norm.mean.shape, norm.std.shape):
            raise ValueError(f"standardisation statistics of shape {norm.mean.shape} for "
                             f"features of shape {tuple(cfg.shape)}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise nn.CheckpointError(f"{path}: damaged spoken_digits checkpoint: its config cannot "
                                 f"rebuild the model ({type(exc).__name__}: {exc})") from None
    nn.load_checkpoint(path, model)
    model.eval()
    return model, hp, cfg, norm, config


def latest_checkpoint(root=DEFAULT_OUT_ROOT, task: str | None = None):
    """The newest model.npz under runs/spoken_digits/* (of the given task), or None."""
    paths = sorted(glob.glob(os.path.join(root, "*", "model.npz")), key=os.path.getmtime,
                   reverse=True)
    for p in paths:
        if task is None:
            return p
        try:
            if nn.load_checkpoint(p).config.get("task") == task:
                return p
        except nn.CheckpointError:
            continue  # a half-written or foreign file: look further back
    return None


def with_companions(path) -> list:
    """``path`` (a run's model.npz) and the models `train --scale db+pcen` wrote beside it on
    the other front ends (model_pcen.npz): the ensemble `predict` pools by default."""
    folder = os.path.dirname(path)
    others = (os.path.join(folder, f"model_{scale}.npz") for scale in SCALES)
    return [path] + [p for p in others if os.path.exists(p)]
