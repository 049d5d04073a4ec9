"""Embedding lookup: y = W[idx], a table of one learned vector per token id.

Shapes: idx (...) integer ids in [0, V); W (V, D); y (..., D).
Derivation: docs/derivations/embedding.md.

The forward is a gather (``take``, 5x faster than fancy indexing on NumPy). The backward is a
scatter-add: a token id that occurs n times receives the sum of its n output gradients. The
plain path uses ``add.at`` (unbuffered, so repeated ids add up rather than overwrite); the fused
CPU path a numba loop (kernels/cpu/embedding.py, ~15x faster at the seed config).
"""
from __future__ import annotations

import numpy as np

from ..backend import fused_enabled, get_array_module, numba_available
from .base import Function


def check_ids(idx, num_embeddings: int, owner: str = "Embedding") -> None:
    """Raise a ValueError naming ``owner`` if ids are not integers in [0, num_embeddings).

    On the GPU this reads one boolean back (a host synchronisation per call).
    """
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{owner}: token ids must be integers, got dtype {idx.dtype} "
                         f"(input shape {tuple(idx.shape)})")
    if idx.size == 0:
        return
    xp = get_array_module(idx)
    bad = xp.logical_or(idx < 0, idx >= num_embeddings).any()
    if bool(bad):
        lo, hi = int(idx.min()), int(idx.max())
        raise ValueError(
            f"{owner}: token ids must lie in [0, {num_embeddings}), got values from {lo} to {hi} "
            f"(input shape {tuple(idx.shape)})"
        )


class Embedding(Function):
    """y = W[idx].

    Forward:  y[n] = W[idx[n]]                                   (1)
    Backward: dW[v] = sum over {n : idx[n] = v} of dy[n]        (2)
              dW[padding_idx] = 0                               (3)
    (n runs over every position of idx.) ``backward`` returns (None, dW): ids have no gradient.
    """

    @staticmethod
    def forward(ctx, idx, W, padding_idx=None, path=None):
        xp = get_array_module(W)
        y = xp.take(W, idx, axis=0)                                           # (1)
        ctx.save(idx=idx, W_shape=W.shape, dtype=W.dtype, padding_idx=padding_idx, path=path)
        return y

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Embedding")
        xp = get_array_module(dy)
        V, D = ctx.W_shape
        idx = ctx.idx.reshape(-1)
        dy2 = dy.reshape(-1, D).astype(ctx.dtype, copy=False)
        dW = xp.zeros((V, D), ctx.dtype)
        path = ctx.path
        if path is None:
            path = "numba" if (xp is np and fused_enabled() and numba_available()) else "plain"
        if path == "numba":
            from ..kernels.cpu.embedding import embedding_scatter_add  # noqa: PLC0415

            pad = -1 if ctx.padding_idx is None else int(ctx.padding_idx)
            embedding_scatter_add(np.ascontiguousarray(idx), np.ascontiguousarray(dy2), dW, pad)
            return None, dW
        if xp is np or (hasattr(xp.add, "at") and dW.dtype == np.float32):
            xp.add.at(dW, idx, dy2)                                           # (2)
        else:  # no GPU atomicAdd for this dtype (or no ufunc.at): the one-hot product, same sums
            onehot = (idx[:, None] == xp.arange(V)[None, :]).astype(ctx.dtype)
            dW = onehot.T @ dy2                                               # (2)
        if ctx.padding_idx is not None:
            dW[ctx.padding_idx] = 0                                           # (3)
        return None, dW
