"""The VAE bottleneck: two linear heads (mu, log_var), the reparameterised sample and the KL term.

Derivation: docs/derivations/variational.md (equation numbers cited as ``# (n)``).
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import device_of, get_array_module, get_rng
from ..functions.base import Context
from ..functions.sampling import Reparameterize as ReparameterizeFn
from .base import Layer, no_grad
from .linear import Dense


class BottleneckOutput(NamedTuple):
    """What one forward computed. z, mu, log_var: (B, Z) arrays; kl: a float (the term the loss
    adds, after free bits); kl_per_dim: (Z,) array, each latent dimension's KL averaged over the
    batch, before the free-bits floor (the diagnostic of posterior collapse)."""

    z: object
    mu: object
    log_var: object
    kl: float
    kl_per_dim: object


class VariationalBottleneck(Layer):
    """h (B, F) -> z (B, Z): q(z | h) = N(mu, diag(exp(log_var))), sampled, and KL(q || N(0, I)).

    Forward (docs/derivations/variational.md):
        mu = h W_mu^T + b_mu                                              (1)
        log_var = h W_lv^T + b_lv                                         (2)
        z = mu + exp(log_var / 2) * eps,  eps ~ N(0, I)                   (3)
        K_j = 1/B sum_b 1/2 (mu_bj^2 + exp(log_var_bj) - 1 - log_var_bj)   (4)
        KL = sum_j max(K_j, lambda)         (lambda = free_bits, 0 = plain KL)   (5)
    Backward, with dz = dL/dz and w the weight of KL in the loss:
        dmu = dz + w [K_j > lambda] mu / B                                (6)
        dlog_var = dz * 1/2 sigma eps + w [K_j > lambda] 1/2 (exp(log_var) - 1) / B   (7)
        dh = dmu W_mu + dlog_var W_lv      (both heads read h)            (8)

    ``forward(h, eps=None)`` returns a :class:`BottleneckOutput`. ``eps`` is drawn from the
    backend generator of ``h``'s device unless given (tests pass it); in eval mode z = mu, the
    most likely code, unless ``sample_in_eval``. ``backward(dz, kl_weight=1.0, dmu=None,
    dlog_var=None)`` adds the KL's gradient with weight ``kl_weight`` (the beta of a beta-VAE,
    0 to leave KL out) and any other loss term's gradients on mu and log_var, and returns dh.
    ``reduction='sum'`` sums the KL over the batch instead of averaging it.
    """

    def __init__(self, in_features: int, latent: int, free_bits: float = 0.0,
                 reduction: str = "mean", sample_in_eval: bool = False,
                 init: str = "glorot_uniform"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError("VariationalBottleneck: reduction must be 'mean' or 'sum', got "
                             f"{reduction!r}")
        if free_bits < 0:
            raise ValueError(f"VariationalBottleneck: free_bits must be >= 0, got {free_bits}")
        self.in_features, self.latent = in_features, latent
        self.free_bits, self.reduction = float(free_bits), reduction
        self.sample_in_eval = sample_in_eval
        self.fc_mu = Dense(in_features, latent, init=init)
        self.fc_log_var = Dense(in_features, latent, init=init)

    def forward(self, h, eps=None) -> BottleneckOutput:
        self.check_input(h, ndim=2, last_dim=self.in_features)
        self.fc_mu.input_grad = self.fc_log_var.input_grad = self.input_grad
        mu = self.fc_mu(h)                                                   # (1)
        log_var = self.fc_log_var(h)                                         # (2)
        xp = get_array_module(mu)
        if eps is None:
            if self.training or self.sample_in_eval:
                eps = get_rng(device_of(mu)).normal(mu.shape, dtype=mu.dtype)
            else:
                eps = xp.zeros_like(mu)
        ctx = Context()
        z = ReparameterizeFn.forward(ctx, mu, log_var, eps)                 # (3)
        var = xp.exp(log_var)
        batch = mu.shape[0] if self.reduction == "mean" else 1
        per_dim = 0.5 * (mu * mu + var - 1.0 - log_var).sum(axis=0) / batch  # (4)
        active = per_dim > self.free_bits
        kl = float(xp.where(active, per_dim, self.free_bits).sum())          # (5)
        ctx.save(mu=mu, var=var, active=active.astype(mu.dtype), batch=batch)
        self.save_context(ctx)
        return BottleneckOutput(z, mu, log_var, kl, per_dim)

    def backward(self, dz, kl_weight: float = 1.0, dmu=None, dlog_var=None):
        ctx = self.pop_context()
        d_mu, d_lv, _ = ReparameterizeFn.backward(ctx, dz)   # the sample: sampling.md (3)-(4)
        if kl_weight:
            scale = ctx.active * (kl_weight / ctx.batch)     # [K_j > lambda] w / B, per dimension
            d_mu = d_mu + scale * ctx.mu                                    # (6)
            d_lv = d_lv + scale * 0.5 * (ctx.var - 1.0)                      # (7)
        if dmu is not None:                  # other loss terms that read mu / log_var directly
            d_mu = d_mu + dmu
        if dlog_var is not None:
            d_lv = d_lv + dlog_var
        dh_mu = self.fc_mu.backward(d_mu)
        dh_lv = self.fc_log_var.backward(d_lv)
        if dh_mu is None:                    # input_grad=False: h is data, no dh
            return None
        return dh_mu + dh_lv                                                 # (8)

    def encode(self, h):
        """(mu, log_var) without saving a context (evaluation; no backward follows)."""
        with no_grad():
            return self.fc_mu(h), self.fc_log_var(h)

    def extra_repr(self) -> str:
        fb = f", free_bits={self.free_bits}" if self.free_bits else ""
        return f"{self.in_features} -> {self.latent}{fb}"
