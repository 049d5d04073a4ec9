"""Pooling, upsampling and reshaping layers (no parameters).

Math: nnscratch/functions/pool.py, upsampling.py, reshape.py and their pages in docs/derivations/.

    MaxPool2D(2)        (N, C, H, W) -> (N, C, H // 2, W // 2)
    AvgPool2D(2)        the same with window means
    MaxPool1D(2)        (N, C, L) -> (N, C, L // 2)
    UpSampling2D(2)     (N, C, H, W) -> (N, C, 2 H, 2 W), nearest neighbour
    Flatten()           (N, C, H, W) -> (N, C * H * W), before Dense layers
    Reshape((C, H, W))  (N, C * H * W) -> (N, C, H, W), after a decoder's Dense layer
"""
from __future__ import annotations

from ..functions import pool as P
from ..functions import reshape as R
from ..functions import upsampling as U
from ..functions.base import Context
from .base import Layer


class _Stateless(Layer):
    """A layer around one Function without parameters: one saved context per forward."""

    fn: type = R.Flatten
    ndim: tuple[int, ...] | None = None

    def _options(self) -> dict:
        return {}

    def forward(self, x):
        if self.ndim is not None:
            self.check_input(x, ndim=self.ndim)
        ctx = Context()
        try:
            y = self.fn.forward(ctx, x, **self._options())
        except ValueError as exc:
            raise ValueError(f"{self.label}: {exc}") from None
        self.save_context(ctx)
        return y

    def backward(self, dy):
        (dx,) = self.fn.backward(self.pop_context(), dy)
        return dx


class _Pool(_Stateless):
    def __init__(self, kernel_size=2, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def _options(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool):
    """Max over (kh x kw) windows of (N, C, H, W); stride defaults to the window size."""

    fn = P.MaxPool2D
    ndim = (4,)


class AvgPool2D(_Pool):
    """Mean over (kh x kw) windows of (N, C, H, W) (zero padding counted, like PyTorch)."""

    fn = P.AvgPool2D
    ndim = (4,)


class MaxPool1D(_Pool):
    """Max over windows of k steps of (N, C, L)."""

    fn = P.MaxPool1D
    ndim = (3,)


class AvgPool1D(_Pool):
    """Mean over windows of k steps of (N, C, L)."""

    fn = P.AvgPool1D
    ndim = (3,)


class UpSampling2D(_Stateless):
    """Nearest-neighbour upsampling of (N, C, H, W) by integer factors: (N, C, H sh, W sw)."""

    fn = U.UpSampling2D
    ndim = (4,)

    def __init__(self, scale=2):
        super().__init__()
        self.scale = scale

    def _options(self) -> dict:
        return {"scale": self.scale}

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class Flatten(_Stateless):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    fn = R.Flatten


class Reshape(_Stateless):
    """(N, ...) -> (N, *shape), e.g. Reshape((32, 12, 12)) after a decoder's Dense layer."""

    fn = R.Reshape

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def _options(self) -> dict:
        return {"shape": self.shape}

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


__all__ = ["MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "UpSampling2D", "Flatten", "Reshape"]
