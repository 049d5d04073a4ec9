"""Reshapes between convolutional and dense parts of a network: Flatten and Reshape.

Shapes:
    Flatten: x (N, d1, d2, ...) -> y (N, d1 * d2 * ...)      (Keras' Flatten, torch's flatten(1))
    Reshape: x (N, ...) -> y (N, *shape), same number of elements per example
             (a decoder's Dense output (N, C*H*W) -> (N, C, H, W), for instance)

Both move no data when x is contiguous (NumPy returns a view); the gradient is the upstream
gradient reshaped back. Derivation: docs/derivations/reshape.md.
"""
from __future__ import annotations

import math

from .base import Function


class Flatten(Function):
    """Forward:  y[n, f] = x[n, i1, i2, ...],  f the row-major index of (i1, i2, ...)   (1)
    Backward: dx = dy.reshape(x.shape)                                                 (2)
    """

    @staticmethod
    def forward(ctx, x):
        if x.ndim < 1:
            raise ValueError("Flatten: expected an input with a batch axis, got a 0-d array")
        ctx.save(x_shape=x.shape)
        return x.reshape(x.shape[0], -1)  # (1)

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Flatten")
        return (dy.reshape(ctx.x_shape),)  # (2)


class Reshape(Function):
    """Forward:  y = x.reshape(N, *shape)        (3)
    Backward: dx = dy.reshape(x.shape)          (4)
    """

    @staticmethod
    def forward(ctx, x, shape=()):
        shape = tuple(int(s) for s in shape)
        per_example = math.prod(x.shape[1:])
        if -1 not in shape and math.prod(shape) != per_example:
            raise ValueError(
                f"Reshape: cannot reshape examples of shape {tuple(x.shape[1:])} ({per_example} "
                f"values) to {shape} ({math.prod(shape)} values)"
            )
        ctx.save(x_shape=x.shape)
        return x.reshape(x.shape[0], *shape)  # (3)

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Reshape")
        return (dy.reshape(ctx.x_shape),)  # (4)


__all__ = ["Flatten", "Reshape"]
