"""Dropout layer (inverted): active in training mode, the identity in evaluation mode."""
from __future__ import annotations

from ..functions.base import Context
from ..functions.dropout import Dropout as DropoutFn
from ..functions.dropout import dropout_mask_like
from .base import Layer


class Dropout(Layer):
    """y = x * mask, mask in {0, 1/(1-p)}  (functions.dropout; docs/derivations/dropout.md).

    Shapes: x (...) -> y (...), the same.
    ``forward(x, mask=None)``: in training mode with p > 0 the mask is drawn from the backend's
    seeded generator (``nnscratch.manual_seed``); a given mask (broadcastable to x) is always
    applied, which is how tests make dropout deterministic. In eval mode, or with p == 0 and
    no mask, the layer is the identity. ``backward(dy)`` returns dy * mask.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must lie in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x, mask=None):
        ctx = Context()
        if mask is None and (not self.training or self.p == 0.0):
            ctx.save(identity=True)
            self.save_context(ctx)
            return x
        if mask is None:
            mask = dropout_mask_like(x, self.p)
        ctx.save(identity=False)
        y = DropoutFn.forward(ctx, x, mask)
        self.save_context(ctx)
        return y

    def backward(self, dy):
        ctx = self.pop_context()
        if ctx.identity:
            ctx.consume("Dropout")
            return dy
        dx, _ = DropoutFn.backward(ctx, dy)
        return dx

    def extra_repr(self) -> str:
        return f"p={self.p}"
