"""Spectrogram classifiers on nnscratch: the MLP and the CNN, their training loop, and reports.

Used by apps/spoken_digits.py (digits and speakers of FSDD); nothing here is specific to FSDD.

    hp = HParams(model="cnn", epochs=20)
    model, history = train_model(hp, Xtr, ytr, n_classes=10, Xval=Xva, yval=yva)
    proba = predict_proba(model, hp, Xte)                # (N, classes) softmax probabilities
    plot_confusion(confusion_matrix(yte, proba.argmax(1), 10), classes, "confusion.png", title)

Inputs are standardised feature images X (N, height, frames) float32 (features.Standardizer);
labels are int class indices. Models (the seed report's chapter 5 architectures, channels first):
    MLP: flattened image -> [Dense, ReLU, Dropout] per hidden size -> Dense -> softmax
    CNN: [Conv 3x3 'same', ReLU, MaxPool 2] x 2 -> Dropout -> Flatten -> Dense, ReLU, Dropout
         -> Dense -> softmax
Training: Adam (AdamW with weight_decay > 0) on the softmax cross-entropy, mini-batches, random
time shifts as augmentation, progress bars (tqdm) with loss and accuracy, and the weights of the
best validation epoch kept.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

import nnscratch as nn
from nnscratch.layers.conv import Conv2D
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.pool import Flatten, MaxPool2D


# ----------------------------------------------------------------------------------------------
# Models and training
# ----------------------------------------------------------------------------------------------
@dataclass
class HParams:
    """Model and training choices, saved in checkpoints (``to_dict``) to rebuild the model."""

    model: str = "cnn"               # 'cnn' or 'mlp'
    channels: tuple = (16, 32)       # CNN: filters of the two conv layers
    hidden: tuple = (256, 128)       # MLP: hidden layer sizes
    dense: int = 128                 # CNN: units of the dense layer
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 0.0        # AdamW's decoupled decay when > 0
    batch_size: int = 64
    epochs: int = 20
    shift: int = 3                   # augmentation: random time shift of up to +-shift frames
    norm: str = "band"               # Standardizer: 'band', 'pixel' or 'global'

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["channels"], d["hidden"] = list(self.channels), list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HParams":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("channels", "hidden"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def build_model(hp: HParams, input_shape, n_classes: int) -> nn.Sequential:
    """The MLP or the CNN for (height, frames) inputs (the CNN takes (N, 1, height, frames))."""
    H, T = input_shape
    if hp.model == "mlp":
        sizes = [H * T, *hp.hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Dense(a, b, init="he_uniform"), nn.ReLU(), Dropout(hp.dropout)]
        layers.append(nn.Dense(sizes[-1], n_classes))
        model = nn.Sequential(*layers)
        model[0].input_grad = False  # the first Dense sees data: no dx
        return model
    if hp.model != "cnn":
        raise ValueError(f"unknown model {hp.model!r}: expected 'cnn' or 'mlp'")
    c1, c2 = hp.channels
    if H < 4 or T < 4:
        raise ValueError(f"the CNN needs inputs of at least 4 x 4, got {input_shape}")
    model = nn.Sequential(
        Conv2D(1, c1, 3, padding="same", init="he_uniform"), nn.ReLU(), MaxPool2D(2),
        Conv2D(c1, c2, 3, padding="same", init="he_uniform"), nn.ReLU(), MaxPool2D(2),
        Dropout(hp.dropout), Flatten(),
        nn.Dense(c2 * (H // 4) * (T // 4), hp.dense, init="he_uniform"), nn.ReLU(),
        Dropout(hp.dropout), nn.Dense(hp.dense, n_classes),
    )
    model[0].input_grad = False  # the first convolution sees data: skip its col2im
    return model


def _as_input(hp: HParams, X):
    """(N, H, T) images -> the model's input: (N, 1, H, T) for the CNN, (N, H * T) for the MLP."""
    return X[:, None] if hp.model == "cnn" else X.reshape(len(X), -1)


def predict_proba(model, hp: HParams, X, batch: int = 256) -> np.ndarray:
    """Softmax probabilities (N, classes), evaluation mode, no saved contexts."""
    model.eval()
    out = []
    with nn.no_grad():
        for i in range(0, len(X), batch):
            logits = nn.to_cpu(model(nn.to_device(_as_input(hp, X[i:i + batch]))))
            out.append(nn.functions.softmax(logits.astype(np.float64), axis=-1))
    return np.concatenate(out) if out else np.zeros((0, 0))


def _shift_batch(xb, max_shift, rng):
    """Augmentation: shift each image by -max_shift..max_shift frames, repeating the edge frame."""
    if max_shift <= 0:
        return xb
    out = np.empty_like(xb)
    T = xb.shape[-1]
    for i, s in enumerate(rng.integers(-max_shift, max_shift + 1, size=len(xb))):
        idx = np.clip(np.arange(T) - s, 0, T - 1)
        out[i] = xb[i][..., idx]
    return out


def train_model(hp: HParams, Xtr, ytr, n_classes: int, Xval=None, yval=None, seed: int = 0,
                progress: bool = True, desc: str = "train", log=print):
    """Train one model; returns (model, history). Keeps the weights of the best validation epoch
    (highest accuracy, ties to the lowest loss) when a validation set is given, else the last.

    Xtr, Xval: standardised (N, H, T) float32; ytr, yval: (N,) int class indices.
    history: per epoch {'epoch', 'loss', 'train_acc', 'val_loss', 'val_acc', 'seconds'}.
    """
    nn.manual_seed(seed)
    model = build_model(hp, Xtr.shape[1:], n_classes)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    if hp.weight_decay > 0:
        opt = nn.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    else:
        opt = nn.optim.Adam(model.parameters(), lr=hp.lr)
    rng = np.random.default_rng(seed)
    history, best, best_state = [], None, None
    n = len(Xtr)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=hp.epochs * ((n + hp.batch_size - 1) // hp.batch_size), desc=desc,
                   unit="batch", leave=False, dynamic_ncols=True)
    for epoch in range(1, hp.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = rng.permutation(n)
        tot_loss, tot_correct = 0.0, 0
        for i in range(0, n, hp.batch_size):
            b = perm[i:i + hp.batch_size]
            xb = nn.to_device(_as_input(hp, _shift_batch(Xtr[b], hp.shift, rng)))
            tb = nn.to_device(ytr[b])
            logits = model(xb)
            loss = loss_fn(logits, tb)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            tot_loss += loss * len(b)
            tot_correct += int((nn.to_cpu(logits).argmax(axis=1) == ytr[b]).sum())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{tot_loss / min(i + len(b), n):.3f}",
                                acc=f"{tot_correct / min(i + len(b), n):.3f}")
        rec = {"epoch": epoch, "loss": tot_loss / n, "train_acc": tot_correct / n}
        if Xval is not None and len(Xval):
            p = predict_proba(model, hp, Xval)
            rec["val_loss"] = float(-np.log(np.maximum(p[np.arange(len(yval)), yval], 1e-12)).mean())
            rec["val_acc"] = float((p.argmax(axis=1) == yval).mean())
            score = (rec["val_acc"], -rec["val_loss"])  # accuracy first, ties to the lower loss
            if best is None or score > best:
                best, best_state = score, model.state_dict()
                rec["best"] = True
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(rec)
        if bar is not None:
            bar.set_postfix(epoch=epoch, loss=f"{rec['loss']:.3f}", acc=f"{rec['train_acc']:.3f}",
                            val=f"{rec.get('val_acc', float('nan')):.3f}")
        elif log is not None:
            val = f", val loss {rec['val_loss']:.4f} acc {rec['val_acc']:.4f}" if "val_acc" in rec else ""
            log(f"[{desc}] epoch {epoch:3d}/{hp.epochs}: loss {rec['loss']:.4f}, train acc "
                f"{rec['train_acc']:.4f}{val} ({rec['seconds']:.1f} s)")
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------
def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """C[t, p] = number of examples of class t predicted as p."""
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return C


def error_distances(y_true, y_pred, n_classes: int) -> dict:
    """Among wrong predictions, the share (%) at each distance |pred - true| (the seed's table
    5.1; meaningful for ordered classes such as digits)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = y_true != y_pred
    d = np.abs(y_true[wrong] - y_pred[wrong])
    total = int(wrong.sum())
    return {str(k): (round(100.0 * float((d == k).sum()) / total, 2) if total else 0.0)
            for k in range(1, n_classes)}


def plot_confusion(conf, class_names, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(conf)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(class_names), 0.8 + 0.5 * len(class_names)))
    im = ax.imshow(conf, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45 if len(class_names[0]) > 2 else 0)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    thresh = conf.max() / 2 if conf.size else 0
    for i, j in itertools.product(range(conf.shape[0]), range(conf.shape[1])):
        if conf[i, j]:
            ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if conf[i, j] > thresh else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_history(histories: dict, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        a.plot(ep, [h["loss"] for h in hist], label=f"{name} train")
        if hist and "val_loss" in hist[0]:
            a.plot(ep, [h["val_loss"] for h in hist], "--", label=f"{name} val")
        b.plot(ep, [h["train_acc"] for h in hist], label=f"{name} train")
        if hist and "val_acc" in hist[0]:
            b.plot(ep, [h["val_acc"] for h in hist], "--", label=f"{name} val")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy")
    a.set_yscale("log")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    if len(histories) <= 6:
        a.legend(fontsize=7)
        b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["HParams", "build_model", "predict_proba", "train_model", "confusion_matrix",
           "error_distances", "plot_confusion", "plot_history"]
