"""The affine map of a dense layer: y = x W^T + b.

Shapes (weights in PyTorch's layout, and the seed report's w_ij = weight of input j of neuron i):
    x: (..., in_features)      any number of leading axes (batch, time, ...)
    W: (out_features, in_features)
    b: (out_features,) or None
    y: (..., out_features)

Derivation: docs/derivations/linear.md.
"""
from __future__ import annotations

from .base import Function


class Linear(Function):
    """y = x W^T + b.

    Forward:
        v = x W^T + b                                   (1)
    Backward, with leading axes flattened into rows n:
        dx = dv W                                       (2)
        dW = sum_n dv_n^T x_n   = dv^T x                (3)
        db = sum_n dv_n                                 (4)
    """

    @staticmethod
    def forward(ctx, x, W, b=None):
        # One GEMM over all leading axes: (B, T, in) @ W^T as a stack of B products is ~1.7x
        # slower than the single (B*T, in) product.
        y = (x.reshape(-1, x.shape[-1]) @ W.T).reshape(*x.shape[:-1], W.shape[0])
        if b is not None:
            y += b
        ctx.save(x=x, W=W, has_bias=b is not None)
        return y

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Linear")
        x, W = ctx.x, ctx.W
        x2 = x.reshape(-1, x.shape[-1])
        dy2 = dy.reshape(-1, dy.shape[-1])
        # (2), skipped when the input is data (ctx.needs_input_grad[0] is False)
        dx = (dy2 @ W).reshape(x.shape) if ctx.needs(0) else None
        dW = dy2.T @ x2                            # (3)
        db = dy2.sum(axis=0) if ctx.has_bias else None  # (4)
        return dx, dW, db
