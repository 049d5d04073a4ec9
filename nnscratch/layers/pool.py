"""Pooling layers (no parameters): max and average over windows, 2-D and 1-D, channels first.

Math: nnscratch/functions/pool.py and docs/derivations/pool.md.

    MaxPool2D(2)        (N, C, H, W) -> (N, C, H // 2, W // 2)
    AvgPool2D(2)        the same with window means
    MaxPool1D(2)        (N, C, L) -> (N, C, L // 2)
    AvgPool1D(2)        the same with window means
    GlobalMaxPool()     (..., T) -> (...): the max over the last axis, any T (frames)
"""
from __future__ import annotations

from ..functions.pool import AvgPool1D as AvgPool1DFn
from ..functions.pool import AvgPool2D as AvgPool2DFn
from ..functions.pool import GlobalMaxPool as GlobalMaxPoolFn
from ..functions.pool import MaxPool1D as MaxPool1DFn
from ..functions.pool import MaxPool2D as MaxPool2DFn
from .base import StatelessLayer


class _Pool(StatelessLayer):
    def __init__(self, kernel_size=2, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def _options(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool):
    """Max over (kh x kw) windows of (N, C, H, W); stride defaults to the window size."""

    fn = MaxPool2DFn
    ndim = (4,)


class AvgPool2D(_Pool):
    """Mean over (kh x kw) windows of (N, C, H, W) (zero padding counted, like PyTorch)."""

    fn = AvgPool2DFn
    ndim = (4,)


class MaxPool1D(_Pool):
    """Max over windows of k steps of (N, C, L)."""

    fn = MaxPool1DFn
    ndim = (3,)


class AvgPool1D(_Pool):
    """Mean over windows of k steps of (N, C, L)."""

    fn = AvgPool1DFn
    ndim = (3,)


class GlobalMaxPool(StatelessLayer):
    """The max over the last axis, which it removes: (..., T) -> (...). On (N, C, H, T) feature
    maps it keeps, for each channel and band, the strongest response anywhere in time, so the
    layers after it see the same size whatever the number of frames T."""

    fn = GlobalMaxPoolFn


__all__ = ["MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalMaxPool"]
