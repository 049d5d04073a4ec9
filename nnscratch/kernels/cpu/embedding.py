"""numba kernel for the embedding backward: a scatter-add of the output gradient rows.

Equation numbers refer to docs/derivations/embedding.md and ``nnscratch/functions/embedding.py``.
NumPy's plain path, ``np.add.at(dW, idx, dy)``, takes 18 ms at the seed config (8192 tokens,
embedding 256) against ~1 ms for this loop, which is serial (rows may repeat: two threads would
race on one row) and has no literal constants (see kernels/cpu/lstm.py).
"""
from __future__ import annotations

import numba


@numba.njit(cache=True, error_model="numpy")
def embedding_scatter_add(idx, dy, dW, padding_idx):
    """dW[v] += sum of dy[n] over the rows n with idx[n] = v, except v = padding_idx   (2), (3)

    idx (N,) integers, dy (N, D), dW (V, D); ``padding_idx`` < 0 means none.
    """
    D = dy.shape[1]
    for n in range(idx.shape[0]):
        v = idx[n]
        if v == padding_idx:
            continue                                                            # (3)
        row = dW[v]
        src = dy[n]
        for k in range(D):
            row[k] += src[k]                                                    # (2)
