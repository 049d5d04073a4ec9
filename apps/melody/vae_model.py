"""The slides' MLP variational auto-encoder (seed 002), used twice: once for the notes, once for
the rhythm, and its loss.

    encoder     x (B, D) -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> h (B, 500)
    bottleneck  h -> mu, log_var (B, Z); z = mu + exp(0.5 log_var) * eps; KL(q(z|x) || N(0, I))
                (nnscratch.VariationalBottleneck, docs/derivations/variational.md)
    decoder     z -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> logits (B, D)

Loss per song = binary cross-entropy of sigmoid(logits) against the normalised input (summed
over positions) + beta * KL. The sigmoid is fused into the loss (``BCEWithLogitsLoss``: the same
function, computed stably); ``decode`` applies it. The slides write z = mean + logvar * eps; the
reparameterisation here is the standard one.
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


def reconstruct(model: MelodyVAE, x) -> np.ndarray:
    """Sigmoid output (batch, input_dim) at z = mu (the most likely code)."""
    mu, _ = model.encode(x)
    return model.decode(mu)


def latent_prior(model: MelodyVAE, x) -> dict:
    """Mean and std (each (latent,)) of the codes mu(x) over the training set (the fitted
    sampling prior)."""
    mu = np.concatenate([model.encode(x[s:s + 1024])[0] for s in range(0, len(x), 1024)])
    return {"latent_mean": mu.mean(0), "latent_std": mu.std(0) + 1e-6}


def load_vae(path: str) -> tuple:
    """(model in eval mode, fitted prior (mean, std) or None) from a checkpoint."""
    ck = nn.load_checkpoint(path)
    c = ck.config
    model = MelodyVAE(c["input_dim"], c["hidden"], c["latent"])
    model.load_state_dict(ck.model)
    model.eval()
    prior = None
    if "latent_mean" in ck.arrays:
        prior = (ck.arrays["latent_mean"], ck.arrays["latent_std"])
    return model, prior
