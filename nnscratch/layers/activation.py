"""Activation layers: thin wrappers that keep one saved context per forward call.

Shapes: any input shape; the output has the same shape.
Math: nnscratch/functions/activation.py and docs/derivations/activation.md.
"""
from __future__ import annotations

from ..functions import activation as F
from ..functions.base import Context
from .base import Layer


class _Elementwise(Layer):
    fn: type = F.Identity

    def _options(self) -> dict:
        return {}

    def forward(self, x):
        ctx = Context()
        y = self.fn.forward(ctx, x, **self._options())
        self.save_context(ctx)
        return y

    def backward(self, dy):
        (dx,) = self.fn.backward(self.pop_context(), dy)
        return dx


class Sigmoid(_Elementwise):
    fn = F.Sigmoid


class Tanh(_Elementwise):
    fn = F.Tanh


class ReLU(_Elementwise):
    fn = F.ReLU


class Identity(_Elementwise):
    fn = F.Identity


class LeakyReLU(_Elementwise):
    fn = F.LeakyReLU

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = alpha

    def _options(self) -> dict:
        return {"alpha": self.alpha}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softmax(_Elementwise):
    fn = F.Softmax

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def _options(self) -> dict:
        return {"axis": self.axis}

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
