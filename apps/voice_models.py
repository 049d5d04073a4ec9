"""Auto-encoders for (n_mels x frames) spectrograms in [0, 1]: dense, convolutional, VAE, CVAE.

One class, ``SpectrogramAE``, covers the five models of apps/voice_vae.py (the seed report's
chapter 6, plus a conditional VAE):

    kind='dense'  flattened image -> Dense 512, ReLU -> Dense 128, ReLU -> code        (seed n°3)
    kind='conv'   image (1, H, W) -> [Conv stride 2, ReLU] x 3 -> Dense ``hidden``, ReLU -> code
                  (50 x 50 -> 25 x 25 -> 13 x 13 -> 7 x 7; kernel 4 x 4 where a stage halves the
                  size exactly, 3 x 3 where it rounds up)                             (seed n°1, n°2)
    decoder       code -> the mirror image: Dense layers, then for 'conv' [ConvTranspose stride 2,
                  ReLU] x 3 back to H x W (the last one straight to 1 channel; its 4 x 4 kernel
                  covers every output pixel equally, no checkerboard); a sigmoid keeps the
                  output in [0, 1].

    variational=False   code z = Dense(h)                         forward -> (y, z, None)
    variational=True    mu = Dense(h), log_var = Dense(h)         forward -> (y, mu, log_var)
                        z = mu + exp(0.5 * log_var) * eps         (nnscratch Reparameterize)
    n_classes > 0       conditional: the one-hot digit c is appended to h before the code
                        heads and to z before the decoder: y = dec([z, c]), (mu, log_var) = enc([h, c])

Losses (``AELoss``):  auto-encoder  L = MSE(y, x)
                      VAE / CVAE    L = lambda * MSE(y, x) + KL(N(mu, exp(log_var)) || N(0, I))
with MSE the mean over pixels and batch, KL summed over the latent axis and averaged over the
batch (the seed's D_KL, chapter 4.4; its Keras code averages over latents, i.e. divides KL by d).

Backward is written by hand (``SpectrogramAE.backward``): decoder, then drop the gradient of the
one-hot columns (c is data), then the sampling layer, where the KL gradients join the
reconstruction's on mu and log_var, then the two heads, whose gradients add on h, then the
encoder. ``fit`` is the training loop (Adam, mini-batches, the best validation epoch kept).
"""
from __future__ import annotations

import time

import numpy as np

import nnscratch as nn
from nnscratch.layers.conv import Conv2D, Conv2DTranspose
from nnscratch.layers.pool import Flatten, Reshape

KINDS = ("dense", "conv")


def conv_sizes(size: int, n: int = 3) -> list[int]:
    """Spatial sizes through n stride-2 convolutions with padding 1 and kernel 4 (even s) or 3
    (odd s): s -> ceil(s / 2)."""
    sizes = [int(size)]
    for _ in range(n):
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


class SpectrogramAE(nn.Layer):
    """Auto-encoder, VAE or conditional VAE on (N, H, W) images in [0, 1].

    ``forward(x, c=None, eps=None)`` -> (y, mu, log_var): y (N, H, W) in [0, 1]; mu (N, latent)
    the code (z itself for a plain auto-encoder); log_var (N, latent), or None when not
    variational. c: (N, n_classes) one-hot digits for a conditional model. eps: the sampling
    noise (N, latent), drawn when None (tests pass it).
    ``backward((dy, dmu, dlog_var))``: dy = dL/dy; dmu, dlog_var the gradients of the loss terms
    that read the code directly (the KL term), or None. Returns dL/dx (None while the first
    layer's ``input_grad`` is False, as it is for data).
    """

    def __init__(self, shape=(50, 50), latent: int = 3, kind: str = "conv", variational: bool = False,
                 n_classes: int = 0, channels=(32, 64, 64), hidden: int = 256,
                 dense_hidden=(512, 128)):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"model kind must be one of {KINDS}, got {kind!r}")
        if int(latent) < 1:
            raise ValueError(f"latent size must be >= 1, got {latent}")
        if n_classes < 0:
            raise ValueError(f"n_classes must be >= 0, got {n_classes}")
        H, W = (int(s) for s in shape)
        self.shape, self.latent, self.kind = (H, W), int(latent), kind
        self.variational, self.n_classes = bool(variational), int(n_classes)
        self.channels, self.dense_hidden = tuple(int(c) for c in channels), tuple(int(h) for h in dense_hidden)
        if kind == "dense":
            sizes = [H * W, *self.dense_hidden]
            enc = []
            for a, b in zip(sizes[:-1], sizes[1:]):
                enc += [nn.Dense(a, b, init="he_uniform"), nn.ReLU()]
            self.encoder = nn.Sequential(*enc)
            self.hidden = sizes[-1]
            dec_sizes = sizes[::-1]
            dec = [nn.Dense(self.latent + self.n_classes, dec_sizes[0], init="he_uniform"), nn.ReLU()]
            for k, (a, b) in enumerate(zip(dec_sizes[:-1], dec_sizes[1:])):
                dec.append(nn.Dense(a, b, init="he_uniform" if k < len(dec_sizes) - 2 else "glorot_uniform"))
                dec.append(nn.ReLU() if k < len(dec_sizes) - 2 else nn.Sigmoid())
            self.decoder = nn.Sequential(*dec)
        else:
            c1, c2, c3 = self.channels
            hs, ws = conv_sizes(H), conv_sizes(W)
            if min(hs[-1], ws[-1]) < 1 or min(H, W) < 2:
                raise ValueError(f"the convolutional model needs images of at least 2 x 2, got {shape}")
            self.hidden = int(hidden)
            flat = c3 * hs[3] * ws[3]

            def k_for(k):  # kernel of stage k (size s_k <-> s_{k+1}): 4 for an exact doubling
                return (4 if hs[k] == 2 * hs[k + 1] else 3, 4 if ws[k] == 2 * ws[k + 1] else 3)

            def up(cin, cout, k):  # stage k backwards: s_{k+1} -> (s_{k+1} - 1) 2 - 2 + kernel + op = s_k
                kh, kw = k_for(k)
                op = (hs[k] - (2 * hs[k + 1] - 4 + kh), ws[k] - (2 * ws[k + 1] - 4 + kw))
                return Conv2DTranspose(cin, cout, (kh, kw), stride=2, padding=1, output_padding=op,
                                       init="he_uniform")

            self.encoder = nn.Sequential(
                Conv2D(1, c1, k_for(0), stride=2, padding=1, init="he_uniform"), nn.ReLU(),
                Conv2D(c1, c2, k_for(1), stride=2, padding=1, init="he_uniform"), nn.ReLU(),
                Conv2D(c2, c3, k_for(2), stride=2, padding=1, init="he_uniform"), nn.ReLU(),
                Flatten(), nn.Dense(flat, self.hidden, init="he_uniform"), nn.ReLU())
            self.decoder = nn.Sequential(
                nn.Dense(self.latent + self.n_classes, self.hidden, init="he_uniform"), nn.ReLU(),
                nn.Dense(self.hidden, flat, init="he_uniform"), nn.ReLU(), Reshape((c3, hs[3], ws[3])),
                up(c3, c2, 2), nn.ReLU(), up(c2, c1, 1), nn.ReLU(), up(c1, 1, 0), nn.Sigmoid())
        self.encoder[0].input_grad = False  # the first layer reads data: no dx
        head_in = self.hidden + self.n_classes
        if self.variational:
            self.fc_mu = nn.Dense(head_in, self.latent)
            self.fc_log_var = nn.Dense(head_in, self.latent)
            self.sample = nn.Reparameterize()
        else:
            self.fc_z = nn.Dense(head_in, self.latent)

    # -- shapes ------------------------------------------------------------------------------
    def _to_input(self, x):
        """(N, H, W) -> what the first layer reads: (N, 1, H, W) or (N, H * W)."""
        return x[:, None] if self.kind == "conv" else x.reshape(len(x), -1)

    def _check(self, x, c):
        if x.ndim != 3 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"{type(self).__name__}: expected spectrograms of shape (N, {self.shape[0]}, "
                             f"{self.shape[1]}), got {tuple(x.shape)}")
        if self.n_classes and (c is None or tuple(c.shape) != (len(x), self.n_classes)):
            raise ValueError(f"{type(self).__name__}: a conditional model needs one-hot labels of shape "
                             f"({len(x)}, {self.n_classes}), got "
                             f"{None if c is None else tuple(c.shape)}")

    def _join(self, a, c):
        """[a, c] along the feature axis (conditional models), else a."""
        if not self.n_classes:
            return a
        xp = nn.get_array_module(a)
        return xp.concatenate([a, c.astype(a.dtype, copy=False)], axis=1)

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, x, c=None, eps=None):
        self._check(x, c)
        h = self._join(self.encoder(self._to_input(x)), c)
        if self.variational:
            mu, log_var = self.fc_mu(h), self.fc_log_var(h)
            z = self.sample(mu, log_var, eps)          # z = mu + exp(0.5 log_var) eps
        else:
            mu = z = self.fc_z(h)
            log_var = None
        y = self.decoder(self._join(z, c))
        return y.reshape(len(x), *self.shape), mu, log_var

    def backward(self, grads):
        dy, dmu_extra, dlog_var_extra = grads
        dzc = self.decoder.backward(dy.reshape(len(dy), -1) if self.kind == "dense" else dy[:, None])
        dz = dzc[:, :self.latent]                       # the one-hot columns are data: dropped
        if self.variational:
            dmu, dlog_var = self.sample.backward(dz)    # dmu = dz; dlog_var = dz * 0.5 sigma eps
            if dmu_extra is not None:                   # the KL term reads mu and log_var directly:
                dmu = dmu + dmu_extra                   # two paths join, their gradients add
            if dlog_var_extra is not None:
                dlog_var = dlog_var + dlog_var_extra
            dhc = self.fc_mu.backward(dmu) + self.fc_log_var.backward(dlog_var)  # both heads read h
        else:
            if dmu_extra is not None:
                dz = dz + dmu_extra
            dhc = self.fc_z.backward(dz)
        dx = self.encoder.backward(dhc[:, :self.hidden])
        return None if dx is None else dx.reshape(len(dx), *self.shape)

    # -- inference helpers (CPU arrays in and out, no saved contexts) ----------------------------
    def encode(self, x, c=None, batch: int = 256):
        """(mu, log_var or None) for (N, H, W) images; mu is the code of a plain auto-encoder."""
        mus, lvs = [], []
        with nn.no_grad():
            for i in range(0, len(x), batch):
                xb = nn.to_device(np.asarray(x[i:i + batch], dtype=nn.backend.get_default_dtype()))
                cb = None if c is None else nn.to_device(np.asarray(c[i:i + batch]))
                self._check(xb, cb)
                h = self._join(self.encoder(self._to_input(xb)), cb)
                if self.variational:
                    mus.append(nn.to_cpu(self.fc_mu(h)))
                    lvs.append(nn.to_cpu(self.fc_log_var(h)))
                else:
                    mus.append(nn.to_cpu(self.fc_z(h)))
        mu = np.concatenate(mus) if mus else np.zeros((0, self.latent), np.float32)
        return mu, (np.concatenate(lvs) if lvs else None)

    def decode(self, z, c=None, batch: int = 256):
        """(N, H, W) images in [0, 1] for codes z (N, latent) (and one-hot labels c)."""
        z = np.asarray(z, dtype=nn.backend.get_default_dtype())
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ValueError(f"latent codes must have shape (N, {self.latent}) for this model "
                             f"(latent size {self.latent}), got {tuple(z.shape)}")
        if self.n_classes and (c is None or np.shape(c) != (len(z), self.n_classes)):
            raise ValueError(f"this conditional model needs one-hot labels of shape ({len(z)}, "
                             f"{self.n_classes})")
        out = []
        with nn.no_grad():
            for i in range(0, len(z), batch):
                zb = nn.to_device(z[i:i + batch])
                cb = None if c is None else nn.to_device(np.asarray(c[i:i + batch]))
                y = self.decoder(self._join(zb, cb))
                out.append(nn.to_cpu(y).reshape(len(zb), *self.shape))
        return np.concatenate(out) if out else np.zeros((0, *self.shape), np.float32)

    def reconstruct(self, x, c=None):
        """Decoder output at the code mu (no sampling): the model's reconstruction of x."""
        mu, _ = self.encode(x, c)
        return self.decode(mu, c)

    def config(self) -> dict:
        return {"shape": list(self.shape), "latent": self.latent, "kind": self.kind,
                "variational": self.variational, "n_classes": self.n_classes,
                "channels": list(self.channels), "hidden": self.hidden if self.kind == "conv" else 256,
                "dense_hidden": list(self.dense_hidden)}

    @classmethod
    def from_config(cls, cfg: dict) -> "SpectrogramAE":
        return cls(shape=tuple(cfg["shape"]), latent=cfg["latent"], kind=cfg["kind"],
                   variational=cfg["variational"], n_classes=cfg["n_classes"],
                   channels=tuple(cfg["channels"]), hidden=cfg["hidden"],
                   dense_hidden=tuple(cfg["dense_hidden"]))

    def extra_repr(self) -> str:
        what = ("C" if self.n_classes else "") + ("VAE" if self.variational else "AE")
        return f"{self.kind} {what}, shape={self.shape}, latent={self.latent}"


def one_hot(labels, n_classes: int = 10) -> np.ndarray:
    """(N,) ints in 0..n_classes-1 -> (N, n_classes) float32; ValueError for labels out of range."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ValueError(f"digit {int(bad)} is out of range: expected 0-{n_classes - 1}")
    out = np.zeros((labels.size, n_classes), dtype=nn.backend.get_default_dtype())
    out[np.arange(labels.size), labels.astype(np.int64)] = 1.0
    return out


class AELoss:
    """MSE for an auto-encoder; lambda * MSE + KL for a (conditional) VAE.

    ``loss, parts = fn(y, x, mu, log_var)`` (a float and {'mse', 'kl'}); ``fn.backward()`` returns
    the tuple ``SpectrogramAE.backward`` takes.
    """

    def __init__(self, variational: bool, lam: float = 1.0):
        self.variational, self.lam = variational, float(lam)
        self.mse = nn.MSELoss()
        self.kl = nn.KLDivergence(reduction="mean") if variational else None

    def __call__(self, y, x, mu, log_var):
        mse = self.mse(y, x)
        if not self.variational:
            return mse, {"mse": mse, "kl": 0.0}
        kl = self.kl(mu, log_var)
        return self.lam * mse + kl, {"mse": mse, "kl": kl}

    def backward(self):
        if not self.variational:
            return self.mse.backward(1.0), None, None
        dy = self.mse.backward(self.lam)
        dmu, dlog_var = self.kl.backward(1.0)
        return dy, dmu, dlog_var


def evaluate(model: SpectrogramAE, X, c=None, lam: float = 1.0, batch: int = 256, seed: int = 0) -> dict:
    """Test figures: the MSE of the reconstruction at z = mu; for a VAE also the KL term,
    lambda * MSE + KL (at z = mu), and the MSE with z sampled once, z = mu + exp(log_var / 2) eps
    (what a Keras VAE's predict returns, the seed's likely measure)."""
    mu, log_var = model.encode(X, c, batch)
    rec = model.decode(mu, c, batch)
    out = {"mse": float(np.mean((rec.astype(np.float64) - X) ** 2)), "n": int(len(X))}
    if model.variational:
        kl = float(np.mean(-0.5 * np.sum(1.0 + log_var - mu ** 2 - np.exp(log_var), axis=1)))
        eps = np.random.default_rng(seed).standard_normal(mu.shape).astype(mu.dtype)
        rec_s = model.decode(mu + np.exp(0.5 * log_var) * eps, c, batch)
        out.update(kl=kl, loss=lam * out["mse"] + kl,
                   mse_sampled=float(np.mean((rec_s.astype(np.float64) - X) ** 2)))
    return out


def train_step(model, loss_fn, opt, xb, cb=None, clip: float | None = None):
    """One optimisation step on a batch; returns (loss, parts)."""
    y, mu, log_var = model(xb, cb)
    loss, parts = loss_fn(y, xb, mu, log_var)
    model.backward(loss_fn.backward())
    if clip:
        nn.optim.clip_grad_norm(model.parameters(), clip)
    opt.step()
    opt.zero_grad()
    return loss, parts


def fit(model: SpectrogramAE, Xtr, Xval, ctr=None, cval=None, epochs: int = 40, batch_size: int = 64,
        lr: float = 1e-3, lam: float = 1.0, seed: int = 0, progress: bool = True, desc: str = "train",
        log=print, on_epoch=None, state=None, lr_decay_epoch: int | None = None, clip: float | None = 5.0):
    """Train with Adam; keep the weights of the epoch with the lowest validation loss.

    Xtr, Xval: (N, H, W) float32 in [0, 1]; ctr, cval: one-hot labels for a conditional model.
    ``state``: {'opt', 'history', 'best', 'best_state', 'epoch', 'rng'} from a checkpoint, to
    resume. ``on_epoch(model, opt, state)`` runs after every epoch (the app saves checkpoints).
    ``lr_decay_epoch``: divide the learning rate by 10 from that epoch on (None: constant).
    Returns (model with the best weights loaded, state).
    """
    loss_fn = AELoss(model.variational, lam)
    opt = nn.optim.Adam(model.parameters(), lr=lr)
    state = dict(state or {})
    if state.get("opt") is not None:
        opt.load_state_dict(state["opt"])
    history = list(state.get("history", []))
    best, best_state = state.get("best"), state.get("best_state")
    start = int(state.get("epoch", 0)) + 1
    rng = np.random.default_rng(seed)
    if state.get("rng") is not None:
        rng.bit_generator.state = state["rng"]
    n = len(Xtr)
    bar = None
    if progress and start <= epochs:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=(epochs - start + 1) * ((n + batch_size - 1) // batch_size), desc=desc,
                   unit="batch", leave=False, dynamic_ncols=True)
    for epoch in range(start, epochs + 1):
        if lr_decay_epoch and epoch >= lr_decay_epoch:
            opt.lr = lr / 10.0
        t0 = time.perf_counter()
        model.train()
        perm = rng.permutation(n)
        tot = {"loss": 0.0, "mse": 0.0, "kl": 0.0}
        for i in range(0, n, batch_size):
            b = perm[i:i + batch_size]
            xb = nn.to_device(Xtr[b])
            cb = None if ctr is None else nn.to_device(ctr[b])
            loss, parts = train_step(model, loss_fn, opt, xb, cb, clip)
            tot["loss"] += loss * len(b)
            tot["mse"] += parts["mse"] * len(b)
            tot["kl"] += parts["kl"] * len(b)
            if bar is not None:
                bar.update(1)
                seen = min(i + len(b), n)
                bar.set_postfix(epoch=epoch, loss=f"{tot['loss'] / seen:.4g}", mse=f"{tot['mse'] / seen:.4f}")
        model.eval()
        val = evaluate(model, Xval, cval, lam)
        rec = {"epoch": epoch, "loss": tot["loss"] / n, "mse": tot["mse"] / n, "kl": tot["kl"] / n,
               "val_mse": val["mse"], "val_loss": val.get("loss", val["mse"]),
               "val_kl": val.get("kl", 0.0), "lr": opt.lr,
               "seconds": round(time.perf_counter() - t0, 2)}
        if best is None or rec["val_loss"] < best:
            best, best_state = rec["val_loss"], model.state_dict()
            rec["best"] = True
        history.append(rec)
        if bar is not None:
            bar.set_postfix(epoch=epoch, loss=f"{rec['loss']:.4g}", val_mse=f"{val['mse']:.5f}")
        if log is not None:
            kl = f", KL {rec['kl']:.3f} (val {rec['val_kl']:.3f})" if model.variational else ""
            log(f"[{desc}] epoch {epoch:3d}/{epochs}: train loss {rec['loss']:.5g}, MSE {rec['mse']:.5f}"
                f"{kl}; val MSE {val['mse']:.5f}{' *' if rec.get('best') else ''} ({rec['seconds']:.0f} s)")
        state = {"opt": opt.state_dict(), "history": history, "best": best, "best_state": best_state,
                 "epoch": epoch, "rng": rng.bit_generator.state}
        if on_epoch is not None:
            on_epoch(model, opt, state)
    if bar is not None:
        bar.close()
    if not state:
        state = {"history": history, "best": best, "best_state": best_state, "epoch": start - 1}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, state


__all__ = ["SpectrogramAE", "AELoss", "one_hot", "evaluate", "fit", "train_step", "conv_sizes", "KINDS"]
