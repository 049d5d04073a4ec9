"""The VAE reparameterisation trick: z = mu + exp(0.5 * log_var) * eps.

Shapes: mu, log_var, eps, z all (batch, latent). ``eps`` ~ N(0, I) is passed in, so the
function is deterministic and can be gradient-checked; the layer draws it.
``log_var`` is the log-variance (not the log-std: keras #3283, #9970).

Derivation: docs/derivations/sampling.md.
"""
from __future__ import annotations

from ..backend import get_array_module
from .base import Function


class Reparameterize(Function):
    """z = mu + sigma * eps with sigma = exp(0.5 * log_var).

    Forward:  sigma = exp(0.5 * log_var)                 (1)
              z = mu + sigma * eps                       (2)
    Backward: dmu = dz                                   (3)
              dlog_var = dz * 0.5 * sigma * eps          (4)
              deps = dz * sigma                          (5)
    """

    @staticmethod
    def forward(ctx, mu, log_var, eps):
        if not (mu.shape == log_var.shape == eps.shape):
            raise ValueError(
                "Reparameterize: mu, log_var and eps must share one shape, got "
                f"{tuple(mu.shape)}, {tuple(log_var.shape)} and {tuple(eps.shape)}"
            )
        xp = get_array_module(mu)
        sigma = xp.exp(0.5 * log_var)  # (1)
        ctx.save(sigma=sigma, eps=eps)
        return mu + sigma * eps  # (2)

    @staticmethod
    def backward(ctx, dz):
        ctx.consume("Reparameterize")
        s_eps = ctx.sigma * ctx.eps
        return dz, dz * 0.5 * s_eps, dz * ctx.sigma  # (3), (4), (5)
