"""Inverted dropout: y = x * mask, with the mask passed in (so the op is deterministic and can be
gradient-checked); ``dropout_mask`` draws one from the backend's seeded generator.

Shapes: x (...), mask broadcastable to x (the same shape, or e.g. (B, 1, D) to drop the same
features at every time step), y like x.

Derivation: docs/derivations/dropout.md.
"""
from __future__ import annotations

import numpy as np

from ..backend import device_of, get_rng
from .base import Function


def dropout_mask(shape, p: float, dtype, device: str | None = None):
    """A mask with entries 0 (probability p) or 1 / (1 - p) (probability 1 - p)        (3)

    so that E[mask] = 1 and the expected output of training equals the evaluation output x.
    ``device`` 'cpu' or 'gpu' (None: the current device). p = 1 gives an all-zero mask.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must lie in [0, 1], got {p}")
    rng = get_rng(device)
    keep = rng.random(shape, dtype=dtype) >= p
    scale = 0.0 if p >= 1.0 else 1.0 / (1.0 - p)
    return keep.astype(dtype) * rng.xp.asarray(scale, dtype=dtype)


def dropout_mask_like(x, p: float):
    """``dropout_mask`` with the shape, dtype and device of ``x``."""
    return dropout_mask(x.shape, p, x.dtype, device_of(x))


class Dropout(Function):
    """y = x * mask   (inverted dropout; mask in {0, 1/(1-p)}, drawn by the caller).

    Forward:  y = x * mask                          (1)
    Backward: dx = dy * mask                        (2)
    (docs/derivations/dropout.md; (3) is the mask's distribution, ``dropout_mask``.)
    ``backward`` returns (dx, None): the mask is not differentiated.
    """

    @staticmethod
    def forward(ctx, x, mask):
        try:
            ok = np.broadcast_shapes(x.shape, mask.shape) == tuple(x.shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"Dropout: mask of shape {tuple(mask.shape)} does not broadcast to the input's "
                f"shape {tuple(x.shape)}"
            )
        ctx.save(mask=mask)
        return x * mask                                 # (1)

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Dropout")
        return dy * ctx.mask, None                      # (2)
