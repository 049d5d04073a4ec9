"""The VAE sampling layer (reparameterisation trick)."""
from __future__ import annotations

from ..backend import device_of, get_array_module, get_rng
from ..functions.base import Context
from ..functions.sampling import Reparameterize as ReparameterizeFn
from .base import Layer


class Reparameterize(Layer):
    """z = mu + exp(0.5 * log_var) * eps, eps ~ N(0, I)  (docs/derivations/sampling.md).

    Shapes: mu, log_var (batch, latent) -> z (batch, latent).
    ``forward(mu, log_var, eps=None)`` draws eps from the backend generator unless given (tests
    pass it to make the layer deterministic). In eval mode it returns mu, the most likely code,
    unless ``sample_in_eval=True``. ``backward(dz)`` returns ``(dmu, dlog_var)``.
    """

    def __init__(self, sample_in_eval: bool = False):
        super().__init__()
        self.sample_in_eval = sample_in_eval

    def forward(self, mu, log_var, eps=None):
        if not self.training and not self.sample_in_eval and eps is None:
            xp = get_array_module(mu)
            eps = xp.zeros_like(mu)
        elif eps is None:
            eps = get_rng(device_of(mu)).normal(mu.shape, dtype=mu.dtype)
        ctx = Context()
        z = ReparameterizeFn.forward(ctx, mu, log_var, eps)
        self.save_context(ctx)
        return z

    def backward(self, dz):
        dmu, dlog_var, _ = ReparameterizeFn.backward(self.pop_context(), dz)
        return dmu, dlog_var
