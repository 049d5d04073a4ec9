"""The melody VAEs' MLPs: the slides' variational auto-encoder (seed 002), its categorical
version, and their losses.

    encoder     x (B, D) -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> h (B, 500)
    bottleneck  h -> mu, log_var (B, Z); z = mu + exp(0.5 log_var) * eps; KL(q(z|x) || N(0, I))
                (nnscratch.VariationalBottleneck, docs/derivations/variational.md)
    decoder     z -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> logits (B, D)

``MelodyVAE`` is the slides' model: x holds the normalised codes in [0, 1] (D = max_len), and
the loss per song is the binary cross-entropy of sigmoid(logits) against x (summed over
positions) + beta * KL (``VAELoss``). The sigmoid is fused into the loss
(``BCEWithLogitsLoss``: the same function, computed stably); ``decode`` applies it. The slides
write z = mean + logvar * eps; the reparameterisation here is the standard one.

``CategoricalMLPVAE`` keeps that encoder, bottleneck and decoder but reads and writes classes:
x is the one-hot of the segment's class ids (D = max_len * C), the decoder's output is read as
logits (B, max_len, C), one softmax per position, and the loss is their cross-entropy
(``CategoricalVAELoss``). Why the regression fails and this works: docs/derivations/melody_vae.md.
The sequence model (BiLSTM encoder, LSTM decoder) is in vae_seq_model.py; choosing, loading
and feeding either is vae_build.py.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import nnscratch as nn
from nnscratch.functions.loss import NonFiniteError


class VAEOutput(NamedTuple):
    """What ``MelodyVAE.forward`` returns: logits (B, D), mu and log_var (B, Z), and the KL term
    of the batch (a 0-d float: the bottleneck's batch-mean KL)."""

    logits: object
    mu: object
    log_var: object
    kl: object


class VAEGrads(NamedTuple):
    """What ``MelodyVAE.backward`` takes: the loss's gradients with respect to each output.

    dL/dKL is the KL's weight in the loss (beta); the bottleneck turns it into the KL's gradients
    on mu and log_var. Any field may be None (that output does not reach the loss).
    """

    dlogits: object
    dmu: object = None
    dlog_var: object = None
    dkl: object = None


class MelodyVAE(nn.Layer):
    """The slides' MLP VAE; ``forward(x, eps=None)`` returns a :class:`VAEOutput`.

    Shapes: x (batch, input_dim) in [0, 1]; mu, log_var, z (batch, latent); logits
    (batch, input_dim), the decoder's output before its final sigmoid. ``eps`` (batch, latent)
    is drawn unless given; in eval mode z = mu.

    ``backward(grads)`` takes a :class:`VAEGrads` (or any tuple in the output's order): the
    decoder first, then the bottleneck, which adds dkl times the KL's gradient and the gradients
    on mu and log_var to the sampling path and sums its two heads' gradients on h; then the
    encoder. Returns dL/dx (None while the first layer's ``input_grad`` is False, as for data).
    """

    def __init__(self, input_dim: int, hidden: int = 500, latent: int = 250, alpha: float = 0.2):
        super().__init__()
        self.input_dim, self.hidden, self.latent, self.alpha = input_dim, hidden, latent, alpha
        self.encoder = nn.Sequential(nn.Dense(input_dim, hidden), nn.LeakyReLU(alpha),
                                     nn.Dense(hidden, hidden), nn.LeakyReLU(alpha))
        self.encoder[0].input_grad = False
        self.bottleneck = nn.VariationalBottleneck(hidden, latent)
        self.decoder = nn.Sequential(nn.Dense(latent, hidden), nn.LeakyReLU(alpha),
                                     nn.Dense(hidden, hidden), nn.LeakyReLU(alpha),
                                     nn.Dense(hidden, input_dim))

    def forward(self, x, eps=None) -> VAEOutput:
        self.check_input(x, ndim=2, last_dim=self.input_dim)
        h = self.encoder(x)
        b = self.bottleneck(h, eps)              # z = mu + exp(0.5 log_var) eps, and the KL
        return VAEOutput(self.decoder(b.z), b.mu, b.log_var, np.float64(b.kl))

    def backward(self, grads):
        g = VAEGrads(*grads)
        dz = self.decoder.backward(g.dlogits)
        kl_weight = 0.0 if g.dkl is None else float(g.dkl)
        dh = self.bottleneck.backward(dz, kl_weight=kl_weight, dmu=g.dmu, dlog_var=g.dlog_var)
        return self.encoder.backward(dh)

    def encode(self, x):
        """(mu, log_var), each (batch, latent), as CPU arrays; no contexts saved (x: NumPy or
        device array)."""
        with nn.no_grad():
            mu, log_var = self.bottleneck.encode(self.encoder(nn.to_device(x)))
            return nn.to_cpu(mu), nn.to_cpu(log_var)

    def decode(self, z):
        """Sigmoid outputs in [0, 1], (batch, input_dim), for latent codes z (batch, latent), as a
        CPU array."""
        with nn.no_grad():
            return nn.to_cpu(nn.functions.sigmoid(self.decoder(nn.to_device(z))))

    def extra_repr(self) -> str:
        return f"input={self.input_dim}, hidden={self.hidden}, latent={self.latent}"


class VAELoss:
    """Per-song loss averaged over the batch: sum over positions of BCE + beta * KL.

    ``loss, parts = vl(out, x)`` with ``out`` the model's :class:`VAEOutput`; ``grads =
    vl.backward()`` gives the :class:`VAEGrads` that ``MelodyVAE.backward`` takes (dlogits, and
    dkl = beta: the bottleneck adds the KL's own gradient).
    """

    def __init__(self, beta: float = 1.0):
        self.recon = nn.BCEWithLogitsLoss(reduction="sum")
        self.beta = beta
        self.batch = 1

    def __call__(self, out: VAEOutput, x):
        self.batch = x.shape[0]
        rec = self.recon(out.logits, x) / self.batch
        kl = float(out.kl)
        if not math.isfinite(kl):
            raise NonFiniteError(f"the VAE's KL term is {kl}: mu or log_var overflowed "
                                 "(a smaller learning rate may help)")
        return rec + self.beta * kl, {"recon": rec, "kl": kl}

    def backward(self) -> VAEGrads:
        return VAEGrads(dlogits=self.recon.backward(1.0 / self.batch), dkl=self.beta)


class CategoricalMLPVAE(nn.Layer):
    """The slides' MLP VAE over class ids: one-hot (B, L * C) -> ``MelodyVAE`` -> logits
    (B, L, C).

    ``forward(ids, eps=None)`` takes class ids (batch, length) (``data.to_classes``) and returns
    a :class:`VAEOutput` whose logits are (batch, length, classes); ``backward`` takes a
    :class:`VAEGrads` with dlogits of that shape and returns None (the ids are data). The
    one-hot is a fixed reshaping of the input, so the backward is the MLP VAE's, on
    dlogits reshaped to (B, L * C): docs/derivations/melody_vae.md (4).
    """

    def __init__(self, length: int, classes: int, hidden: int = 500, latent: int = 250,
                 alpha: float = 0.2, free_bits: float = 0.0):
        super().__init__()
        self.length, self.classes, self.hidden, self.latent = length, classes, hidden, latent
        self.vae = MelodyVAE(length * classes, hidden, latent, alpha)
        self.vae.bottleneck.free_bits = float(free_bits)

    def one_hot(self, ids):
        """ids (B, L) -> one-hot (B, L * C) on the parameters' device and dtype."""
        W = self.vae.encoder[0].weight.data
        xp = nn.get_array_module(W)
        ids = xp.asarray(ids)
        return xp.eye(self.classes, dtype=W.dtype)[ids].reshape(ids.shape[0], -1)

    def forward(self, ids, eps=None) -> VAEOutput:
        self.check_input(ids, ndim=2, last_dim=self.length, what="class ids (batch, length)")
        out = self.vae(self.one_hot(ids), eps)
        B = out.logits.shape[0]
        return out._replace(logits=out.logits.reshape(B, self.length, self.classes))

    def backward(self, grads):
        g = VAEGrads(*grads)
        B = g.dlogits.shape[0]
        self.vae.backward(g._replace(dlogits=g.dlogits.reshape(B, -1)))
        return None

    def encode(self, ids):
        """(mu, log_var) (batch, latent), CPU arrays; nothing saved."""
        return self.vae.encode(self.one_hot(ids))

    def decode(self, z, rng=None, temperature: float = 1.0):
        """Class ids (batch, length) for codes z: each position's most likely class, or a draw
        from its softmax (at ``temperature``) when ``rng`` is given. CPU array."""
        with nn.no_grad():
            logits = nn.to_cpu(self.vae.decoder(nn.to_device(z)))
        logits = logits.reshape(len(z), self.length, self.classes).astype(np.float64)
        return pick(logits, rng, temperature)

    def extra_repr(self) -> str:
        return f"length={self.length}, classes={self.classes}"


def pick(logits, rng=None, temperature: float = 1.0) -> np.ndarray:
    """Class ids from logits (..., C): argmax without ``rng``, else a draw from
    softmax(logits / temperature)."""
    if rng is None:
        return logits.argmax(-1)
    z = logits / temperature
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    u = rng.random(p.shape[:-1] + (1,))
    return np.minimum((p.cumsum(-1) < u).sum(-1), p.shape[-1] - 1)


class CategoricalVAELoss(VAELoss):
    """Per-segment loss averaged over the batch: the cross-entropy of every position's softmax
    against its class (summed over positions, end class included: the model learns where a
    segment ends) + beta * KL. ``beta`` may change between steps (KL annealing).
    ``loss, parts = vl(out, ids)`` with ids (batch, positions) class indices."""

    def __init__(self, beta: float = 1.0):
        super().__init__(beta)
        self.recon = nn.SoftmaxCrossEntropyLoss(reduction="sum")
