"""Reshaping layers between the convolutional and dense parts of a network (no parameters).

Math: nnscratch/functions/reshape.py and docs/derivations/reshape.md.

    Flatten()           (N, C, H, W) -> (N, C * H * W), before Dense layers
    Reshape((C, H, W))  (N, C * H * W) -> (N, C, H, W), after a decoder's Dense layer
"""
from __future__ import annotations

from ..functions.reshape import Flatten as FlattenFn
from ..functions.reshape import Reshape as ReshapeFn
from .base import StatelessLayer


class Flatten(StatelessLayer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    fn = FlattenFn


class Reshape(StatelessLayer):
    """(N, ...) -> (N, *shape), e.g. Reshape((32, 12, 12)) after a decoder's Dense layer."""

    fn = ReshapeFn

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def _options(self) -> dict:
        return {"shape": self.shape}

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


__all__ = ["Flatten", "Reshape"]
