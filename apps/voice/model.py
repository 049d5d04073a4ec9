"""Auto-encoders for (n_mels x frames) spectrograms in [0, 1]: dense, convolutional, VAE, CVAE.

One class, ``SpectrogramAE``, covers the six models of apps/voice_vae.py (``MODELS``: the seed
report's chapter 6, plus two conditional VAEs: on the digit, and on the digit and the voice):

    kind='dense'  flattened image -> Dense 512, ReLU -> Dense 128, ReLU -> code (seed n°3)
    kind='conv'   image (1, H, W) -> [Conv stride 2, ReLU] x 3 -> Dense ``hidden``, ReLU
                  (then Dropout(``dropout``), here and after the decoder's first layer) -> code
                  (50 x 50 -> 25 x 25 -> 13 x 13 -> 7 x 7; kernel 4 x 4 where a stage halves the
                  size exactly, 3 x 3 where it rounds up)                      (seed n°1, n°2)
    decoder       code -> the mirror image: Dense layers, then for 'conv' [ConvTranspose stride 2,
                  ReLU] x 3 back to H x W (the last one straight to 1 channel; its 4 x 4 kernel
                  covers every output pixel equally, no checkerboard); a sigmoid keeps the
                  output in [0, 1].

    variational=False   code z = Dense(h)                       forward -> (y, z, None, None)
    variational=True    nnscratch.VariationalBottleneck:        forward -> (y, mu, log_var, KL)
                        mu = Dense(h), log_var = Dense(h), z = mu + exp(0.5 * log_var) * eps,
                        KL(N(mu, exp(log_var)) || N(0, I)) summed over latents, batch mean
                        (docs/derivations/variational.md)
    n_classes > 0       conditional: the condition vector c (n_classes wide: the one-hot
                        digit, and for cvae_speaker the one-hot speaker after it,
                        apps/voice/data.condition) is appended to h before the code heads
                        and to z before the decoder: y = dec([z, c]), (mu, log_var) = enc([h, c])

Losses (``AELoss``):  auto-encoder  L = MSE(y, x)
                      VAE / CVAE    L = lambda * MSE(y, x) + w KL   (w = 1 but during a KL
                                    warm-up; KL with an optional free-bits floor per dimension)
with MSE the mean over pixels and batch, KL summed over the latent axis and averaged over the
batch (the seed's D_KL, chapter 4.4; its Keras code averages over latents, i.e. divides KL by d).
    aux_classes > 0     plus gamma * CE(aux_head(mu), digit): a linear classifier on the code's
                        mean (``--digit-aux``; the VAE's recipe), whose gradient joins the
                        bottleneck's on mu (docs/derivations/variational.md (9)-(10))

Backward is written by hand (``SpectrogramAE.backward``): decoder, then drop the gradient of the
one-hot columns (c is data), then the bottleneck, which adds the KL's gradient (weighted by
dL/dKL) to the sampling path's on mu and log_var and sums its two heads' gradients on h, then
the encoder. The training loop is apps/voice/train.py.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import nnscratch as nn
from apps.voice.data import N_DIGITS
from nnscratch.functions.loss import NonFiniteError, check_finite

KINDS = ("dense", "conv")
MODELS = {  # name -> SpectrogramAE arguments (channels/hidden from the command line)
    "dense3": {"kind": "dense", "latent": 3, "variational": False, "n_classes": 0},
    "conv3": {"kind": "conv", "latent": 3, "variational": False, "n_classes": 0},
    "conv10": {"kind": "conv", "latent": 10, "variational": False, "n_classes": 0},
    "vae": {"kind": "conv", "latent": 10, "variational": True, "n_classes": 0},
    "cvae": {"kind": "conv", "latent": 10, "variational": True, "n_classes": N_DIGITS},
    # the digit and the speaker: n_classes grows by the number of voices in the training data
    # (apps/voice/train.train_one), whose names the checkpoint keeps
    "cvae_speaker": {"kind": "conv", "latent": 10, "variational": True, "n_classes": N_DIGITS,
                     "speakers": True},
}
# How a model trains where it differs from the command line's defaults, each chosen by a
# measurement (docs/benchmarks.md): conv3's 3-number code over-fits, so dropout and a long run
# with the learning rate divided by 10 at epoch 150 (test MSE 0.00573, was 0.00673); the
# digit-and-voice CVAE's lambda (the MSE's weight against the KL), chosen by the judges; the
# VAE's auxiliary digit classifier's weight gamma.
RECIPES = {
    "conv3": {"dropout": 0.2, "epochs": 200, "lr_decay_epoch": 150},
    "cvae_speaker": {"lam": 2000.0},
    # the seven's centroid decoded to a nine while the codes gathered by voice; a digit
    # classifier on mu (AELoss, variational.md (9)) gathers them by word: 10 of 10 centroids
    "vae": {"digit_aux": 10.0},
}
DEFAULT_LAMBDA = 5000.0   # the VAEs' lambda unless RECIPES or --lambda say otherwise
DEFAULT_CONV_EPOCHS = 60  # the convolutional auto-encoders' unless RECIPES or --conv-epochs
SEED_TEST_MSE = {"conv3": 0.0059, "conv10": 0.0038, "dense3": 0.0060, "vae": 0.0054}


def conv_sizes(size: int, n: int = 3) -> list[int]:
    """Spatial sizes through n stride-2 convolutions with padding 1 and kernel 4 (even s) or 3
    (odd s): s -> ceil(s / 2)."""
    sizes = [int(size)]
    for _ in range(n):
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


class AEOutput(NamedTuple):
    """What ``SpectrogramAE.forward`` returns. y (N, H, W) in [0, 1]; mu (N, latent) the code (z
    itself for a plain auto-encoder); log_var (N, latent) and kl (a 0-d float64, the batch-mean
    KL) for a VAE, None otherwise."""

    y: object
    mu: object
    log_var: object = None
    kl: object = None


class AEGrads(NamedTuple):
    """What ``SpectrogramAE.backward`` takes: the loss's gradient with respect to each output.

    dkl = dL/dKL is the KL's weight in the loss; the bottleneck turns it into the KL's gradients
    on mu and log_var. Any field but dy may be None (that output does not reach the loss)."""

    dy: object
    dmu: object = None
    dlog_var: object = None
    dkl: object = None


class SpectrogramAE(nn.Layer):
    """Auto-encoder, VAE or conditional VAE on (N, H, W) images in [0, 1].

    ``forward(x, c=None, eps=None)`` -> :class:`AEOutput`. c: (N, n_classes) the condition of a
    conditional model (one-hot digit, then one-hot speaker for cvae_speaker). eps: the sampling
    noise (N, latent), drawn when None (tests pass it); in eval mode z = mu.
    ``backward(grads)`` takes an :class:`AEGrads` (or any tuple in the output's order) and returns
    dL/dx (None while the first layer's ``input_grad`` is False, as it is for data).
    """

    def __init__(self, shape=(50, 50), latent: int = 3, kind: str = "conv",
                 variational: bool = False, n_classes: int = 0, channels=(32, 64, 64),
                 hidden: int = 256, dense_hidden=(512, 128), dropout: float = 0.0,
                 free_bits: float = 0.0, aux_classes: int = 0):
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
        self.channels = tuple(int(c) for c in channels)
        self.dense_hidden = tuple(int(h) for h in dense_hidden)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if kind == "dense":
            self._build_dense(H, W)
        else:
            self._build_conv(H, W, int(hidden))
        self.encoder[0].input_grad = False  # the first layer reads data: no dx
        head_in = self.hidden + self.n_classes
        if free_bits < 0:
            raise ValueError(f"free bits must be >= 0 nats, got {free_bits}")
        self.free_bits = float(free_bits)
        if self.variational:  # each dimension's KL counts >= free_bits: variational.md (5)
            self.bottleneck = nn.VariationalBottleneck(head_in, self.latent,
                                                       free_bits=self.free_bits)
        else:
            self.fc_z = nn.Dense(head_in, self.latent)
        if aux_classes < 0:
            raise ValueError(f"aux_classes must be >= 0, got {aux_classes}")
        self.aux_classes = int(aux_classes)
        if self.aux_classes:  # a linear classifier reading the code mu (AELoss, variational.md (9))
            self.aux_head = nn.Dense(self.latent, self.aux_classes)

    def _build_dense(self, H, W):
        sizes = [H * W, *self.dense_hidden]
        enc = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Dense(a, b, init="he_uniform"), nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        self.hidden = sizes[-1]
        rev = sizes[::-1]
        dec = [nn.Dense(self.latent + self.n_classes, rev[0], init="he_uniform"), nn.ReLU()]
        for k, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            last = k == len(rev) - 2  # the output layer: glorot init and a sigmoid
            dec.append(nn.Dense(a, b, init="glorot_uniform" if last else "he_uniform"))
            dec.append(nn.Sigmoid() if last else nn.ReLU())
        self.decoder = nn.Sequential(*dec)

    def _build_conv(self, H, W, hidden):
        c1, c2, c3 = self.channels
        hs, ws = conv_sizes(H), conv_sizes(W)
        if min(hs[-1], ws[-1]) < 1 or min(H, W) < 2:
            raise ValueError(f"the convolutional model needs images of at least 2 x 2, got "
                             f"{(H, W)}")
        self.hidden = hidden
        flat = c3 * hs[3] * ws[3]

        def k_for(k):  # kernel of stage k (size s_k <-> s_{k+1}): 4 for an exact doubling
            return (4 if hs[k] == 2 * hs[k + 1] else 3, 4 if ws[k] == 2 * ws[k + 1] else 3)

        def up(cin, cout, k):  # stage k backwards: (s_{k+1} - 1) 2 - 2 + kernel + op = s_k
            kh, kw = k_for(k)
            op = (hs[k] - (2 * hs[k + 1] - 4 + kh), ws[k] - (2 * ws[k + 1] - 4 + kw))
            return nn.Conv2DTranspose(cin, cout, (kh, kw), stride=2, padding=1,
                                      output_padding=op, init="he_uniform")

        self.encoder = nn.Sequential(
            nn.Conv2D(1, c1, k_for(0), stride=2, padding=1, init="he_uniform"), nn.ReLU(),
            nn.Conv2D(c1, c2, k_for(1), stride=2, padding=1, init="he_uniform"), nn.ReLU(),
            nn.Conv2D(c2, c3, k_for(2), stride=2, padding=1, init="he_uniform"), nn.ReLU(),
            nn.Flatten(), nn.Dense(flat, hidden, init="he_uniform"), nn.ReLU(),
            *self._dropout())
        self.decoder = nn.Sequential(
            nn.Dense(self.latent + self.n_classes, hidden, init="he_uniform"), nn.ReLU(),
            *self._dropout(),
            nn.Dense(hidden, flat, init="he_uniform"), nn.ReLU(),
            nn.Reshape((c3, hs[3], ws[3])),
            up(c3, c2, 2), nn.ReLU(), up(c2, c1, 1), nn.ReLU(), up(c1, 1, 0), nn.Sigmoid())

    def _dropout(self) -> list:
        """[Dropout(p)] after the conv models' dense hidden layers (a regulariser for the small
        codes that over-fit), or nothing."""
        return [nn.Dropout(self.dropout)] if self.dropout else []

    # -- shapes ------------------------------------------------------------------------------
    def _to_input(self, x):
        """(N, H, W) -> what the first layer reads: (N, 1, H, W) or (N, H * W)."""
        return x[:, None] if self.kind == "conv" else x.reshape(len(x), -1)

    def _check(self, x, c):
        if x.ndim != 3 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"{type(self).__name__}: expected spectrograms of shape "
                             f"(N, {self.shape[0]}, {self.shape[1]}), got {tuple(x.shape)}")
        if self.n_classes and (c is None or tuple(c.shape) != (len(x), self.n_classes)):
            raise ValueError(f"{type(self).__name__}: a conditional model needs condition vectors "
                             f"of shape ({len(x)}, {self.n_classes}), got "
                             f"{None if c is None else tuple(c.shape)}")

    def _join(self, a, c):
        """[a, c] along the feature axis (conditional models), else a."""
        if not self.n_classes:
            return a
        xp = nn.get_array_module(a)
        return xp.concatenate([a, c.astype(a.dtype, copy=False)], axis=1)

    # -- forward and backward ----------------------------------------------------------------
    def forward(self, x, c=None, eps=None) -> AEOutput:
        self._check(x, c)
        h = self._join(self.encoder(self._to_input(x)), c)
        if self.variational:
            b = self.bottleneck(h, eps)     # mu, log_var; z = mu + exp(0.5 log_var) eps; the KL
            z, mu, log_var, kl = b.z, b.mu, b.log_var, np.float64(b.kl)
        else:
            mu = z = self.fc_z(h)
            log_var = kl = None
        y = self.decoder(self._join(z, c))
        return AEOutput(y.reshape(len(x), *self.shape), mu, log_var, kl)

    def backward(self, grads):
        g = AEGrads(*grads)
        dy = g.dy.reshape(len(g.dy), -1) if self.kind == "dense" else g.dy[:, None]
        dz = self.decoder.backward(dy)[:, :self.latent]   # the one-hot columns are data: dropped
        if self.variational:
            # the KL reads mu and log_var directly: the bottleneck adds its gradient, weighted
            # by dL/dKL, to the sampling path's, then sums its two heads' gradients on h
            kl_weight = 0.0 if g.dkl is None else float(g.dkl)
            dhc = self.bottleneck.backward(dz, kl_weight=kl_weight, dmu=g.dmu,
                                           dlog_var=g.dlog_var)
        else:
            dhc = self.fc_z.backward(dz if g.dmu is None else dz + g.dmu)  # two paths add
        dx = self.encoder.backward(dhc[:, :self.hidden])
        return None if dx is None else dx.reshape(len(dx), *self.shape)

    # -- inference helpers (CPU arrays in and out, no saved contexts) ------------------------
    def encode(self, x, c=None, batch: int = 256):
        """(mu, log_var or None) for (N, H, W) images; mu is the code of a plain auto-encoder."""
        mus, lvs = [], []
        with nn.no_grad():
            for i in range(0, len(x), batch):
                xb = nn.to_device(np.asarray(x[i:i + batch],
                                             dtype=nn.backend.get_default_dtype()))
                cb = None if c is None else nn.to_device(np.asarray(c[i:i + batch]))
                self._check(xb, cb)
                h = self._join(self.encoder(self._to_input(xb)), cb)
                if self.variational:
                    mu, log_var = self.bottleneck.encode(h)
                    mus.append(nn.to_cpu(mu))
                    lvs.append(nn.to_cpu(log_var))
                else:
                    mus.append(nn.to_cpu(self.fc_z(h)))
        mu = np.concatenate(mus) if mus else np.zeros((0, self.latent), np.float32)
        return mu, (np.concatenate(lvs) if lvs else None)

    def decode(self, z, c=None, batch: int = 256):
        """(N, H, W) images in [0, 1] for codes z (N, latent) (and condition vectors c)."""
        z = np.asarray(z, dtype=nn.backend.get_default_dtype())
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ValueError(f"latent codes must have shape (N, {self.latent}) for this model "
                             f"(latent size {self.latent}), got {tuple(z.shape)}")
        if self.n_classes and (c is None or np.shape(c) != (len(z), self.n_classes)):
            raise ValueError(f"this conditional model needs condition vectors of shape ({len(z)}, "
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
                "channels": list(self.channels),
                "hidden": self.hidden if self.kind == "conv" else 256,
                "dense_hidden": list(self.dense_hidden), "dropout": self.dropout,
                "free_bits": self.free_bits, "aux_classes": self.aux_classes}

    @classmethod
    def from_config(cls, cfg: dict) -> SpectrogramAE:
        return cls(shape=tuple(cfg["shape"]), latent=cfg["latent"], kind=cfg["kind"],
                   variational=cfg["variational"], n_classes=cfg["n_classes"],
                   channels=tuple(cfg["channels"]), hidden=cfg["hidden"],
                   dense_hidden=tuple(cfg["dense_hidden"]), dropout=cfg.get("dropout", 0.0),
                   free_bits=cfg.get("free_bits", 0.0), aux_classes=cfg.get("aux_classes", 0))

    def extra_repr(self) -> str:
        what = ("C" if self.n_classes else "") + ("VAE" if self.variational else "AE")
        return f"{self.kind} {what}, shape={self.shape}, latent={self.latent}"


class AELoss:
    """MSE for an auto-encoder; lambda * MSE + w KL for a (conditional) VAE; plus, with an
    auxiliary digit classifier, gamma * CE(aux_head(mu), digit).

    ``loss, parts = fn(out, x, labels)`` with ``out`` the model's :class:`AEOutput` (a float and
    {'mse', 'kl', 'aux_ce'}); ``fn.backward()`` returns the :class:`AEGrads` that
    ``SpectrogramAE.backward`` takes: dy = lambda dMSE/dy, dkl = w (the bottleneck adds the KL's
    own gradient, times w: variational.md (6)-(7)) and, with the classifier, dmu = gamma
    dCE/dmu (variational.md (10)). ``kl_weight`` w is 1 except while a KL warm-up raises it
    from 0 (Bowman et al. 2016; apps/voice/train.fit).

    ``aux_weight`` gamma > 0 needs ``aux_head`` (the model's, reading mu) and ``labels`` (N,)
    at every call; the classifier's weights learn from the same loss.
    """

    def __init__(self, variational: bool, lam: float = 1.0, aux_weight: float = 0.0,
                 aux_head=None):
        self.variational, self.lam = variational, float(lam)
        self.kl_weight = 1.0
        self.mse = nn.MSELoss()
        if aux_weight and aux_head is None:
            raise ValueError("an auxiliary classifier's weight needs the model's aux_head")
        self.aux_weight, self.aux_head = float(aux_weight), aux_head
        self.ce = nn.SoftmaxCrossEntropyLoss()

    def __call__(self, out: AEOutput, x, labels=None):
        mse = self.mse(out.y, x)
        parts = {"mse": mse, "kl": 0.0, "aux_ce": 0.0}
        loss = mse
        if self.variational:
            kl = float(out.kl)
            if not math.isfinite(kl):
                check_finite("AELoss KL", mu=out.mu, log_var=out.log_var)  # names a bad input
                raise NonFiniteError(f"AELoss: the KL term is {kl} although mu and log_var are "
                                     "finite (log_var overflowed exp; try a lower learning rate)")
            parts["kl"] = kl
            loss = self.lam * mse + self.kl_weight * kl
        if self.aux_weight:
            if labels is None:
                raise ValueError("AELoss: the auxiliary classifier needs the batch's labels")
            parts["aux_ce"] = self.ce(self.aux_head(out.mu), labels)          # (9)
            loss = loss + self.aux_weight * parts["aux_ce"]
        return loss, parts

    def backward(self) -> AEGrads:
        dmu = None
        if self.aux_weight:  # gamma dCE/dlogits through the head to mu: variational.md (10)
            dmu = self.aux_head.backward(self.ce.backward(self.aux_weight))
        if not self.variational:
            return AEGrads(self.mse.backward(1.0), dmu=dmu)
        return AEGrads(self.mse.backward(self.lam), dmu=dmu, dkl=self.kl_weight)
