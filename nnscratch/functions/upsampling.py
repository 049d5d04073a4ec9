"""Nearest-neighbour upsampling by integer factors (Keras' UpSampling2D, PyTorch's
``interpolate(mode='nearest', scale_factor=s)`` for integer s).

Shapes: x (N, C, H, W) -> y (N, C, H * sh, W * sw); ``scale`` is an int or a pair (sh, sw).

Derivation: docs/derivations/upsampling.md (equation numbers cited as ``# (n)``).
"""
from __future__ import annotations

from ..backend import get_array_module
from .base import Function
from .conv import _pair


class UpSampling2D(Function):
    """Each input pixel becomes an (sh x sw) block of copies.

    Forward:  y[n, c, h, w] = x[n, c, h // sh, w // sw]                        (1)
    Backward: dx[n, c, p, q] = sum_{a < sh, b < sw} dy[n, c, p*sh + a, q*sw + b]  (2)
    """

    @staticmethod
    def forward(ctx, x, scale=2):
        sh, sw = _pair(scale, "scale")
        if sh < 1 or sw < 1:
            raise ValueError(f"UpSampling2D: scale must be >= 1, got {(sh, sw)}")
        if x.ndim != 4:
            raise ValueError("UpSampling2D: expected x of shape (N, C, H, W), got "
                             f"{tuple(x.shape)}")
        xp = get_array_module(x)
        N, C, H, W = x.shape
        # (1): view x as (N, C, H, 1, W, 1), broadcast the block axes, then lay the blocks out.
        y = xp.broadcast_to(x[:, :, :, None, :, None], (N, C, H, sh, W, sw))
        y = y.reshape(N, C, H * sh, W * sw)
        ctx.save(scale=(sh, sw), x_shape=x.shape)
        return y

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("UpSampling2D")
        N, C, H, W = ctx.x_shape
        sh, sw = ctx.scale
        return (dy.reshape(N, C, H, sh, W, sw).sum(axis=(3, 5)),)  # (2)


__all__ = ["UpSampling2D"]
