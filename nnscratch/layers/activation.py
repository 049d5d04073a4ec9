"""Activation layers: thin wrappers that keep one saved context per forward call.

Shapes: any input shape; the output has the same shape.
Math: nnscratch/functions/activation.py and docs/derivations/activation.md.
"""
from __future__ import annotations

from ..functions.activation import Identity as IdentityFn
from ..functions.activation import LeakyReLU as LeakyReLUFn
from ..functions.activation import ReLU as ReLUFn
from ..functions.activation import Sigmoid as SigmoidFn
from ..functions.activation import Softmax as SoftmaxFn
from ..functions.activation import Tanh as TanhFn
from ..functions.base import Context
from .base import Layer


class _Elementwise(Layer):
    fn: type = IdentityFn

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
    fn = SigmoidFn


class Tanh(_Elementwise):
    fn = TanhFn


class ReLU(_Elementwise):
    fn = ReLUFn


class Identity(_Elementwise):
    fn = IdentityFn


class LeakyReLU(_Elementwise):
    fn = LeakyReLUFn

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = alpha

    def _options(self) -> dict:
        return {"alpha": self.alpha}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softmax(_Elementwise):
    fn = SoftmaxFn

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def _options(self) -> dict:
        return {"axis": self.axis}

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
