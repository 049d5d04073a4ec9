"""numba kernels for the convolutions' CPU fast path (nnscratch/functions/conv.py).

Equation numbers refer to docs/derivations/conv.md and match the plain NumPy path in
``nnscratch/functions/conv.py`` (``im2col`` (1), ``col2im`` (6)), which the tests compare these
kernels against (float32 and float64, non-contiguous inputs too).

Layout: the fast path works on a chunk of ``nc`` examples at a time, its columns laid out per
example, ``cols[k, r, q]`` with r = (c, i, j) and q = (oh, ow) of example n0 + k: the
(R, OH*OW) block of one example is then the right operand of one GEMM whose result is that
example's (C_out, OH*OW) output, already in the (N, C, H, W) layout (no transpose copy), and a
chunk of a few examples stays in the CPU's cache between the im2col, the GEMMs and the col2im.

Serial, not ``parallel=True``: numba's worker threads fight OpenBLAS's for the cores (as for the
Adam kernel in optim.py). ``nogil=True`` lets a caller's worker thread run them beside another.
"""
from __future__ import annotations

import numba


def im2col_chunk(x, n0, kh, kw, sh, sw, pt, pl, OH, OW, cols):
    """cols[k, (c,i,j), (oh,ow)] = xpad[n0 + k, c, oh*sh + i, ow*sw + j]                  (1)

    x: (N, C, H, W) unpadded (the padding is read as zeros); cols: (nc, R, OH*OW), C-contiguous,
    with R = C*kh*kw, or C*kh*kw + 1, whose last row is then set to ones (the bias row, (2)).
    Row by row: the valid middle of each output row is one copy, the ends that fall in the
    padding are zeros. Two kernels: a column stride of 1 (contiguous rows of x, a copy LLVM
    vectorises) and any stride (a strided gather); one kernel for both ran 2-4x slower.
    """
    kernel = _im2col_unit if sw == 1 else _im2col_strided
    kernel(x, n0, kh, kw, sh, sw, pt, pl, OH, OW, cols)


def col2im_chunk(dcols, n0, kh, kw, sh, sw, pt, pl, OH, OW, bias, dx):
    """dx[n0 + k, c] = bias[c] + the sum of the columns' entries that im2col read from it   (6)

    dcols: (nc, >= C*kh*kw, OH*OW) (rows past C*kh*kw ignored); bias: (C,) (zeros for a plain
    col2im); dx: (N, C, H, W) C-contiguous, examples n0 .. n0 + nc - 1 overwritten. Entries that
    fall in the padding are dropped. One (H, W) plane at a time, so its additions stay in the
    cache. Two kernels, as for im2col.
    """
    kernel = _col2im_unit if sw == 1 else _col2im_strided
    kernel(dcols, n0, kh, kw, sh, sw, pt, pl, OH, OW, bias, dx)


@numba.njit(cache=True, nogil=True, inline="always")
def _valid_range(j, pl, sw, W, OW):
    """The output columns [lo, hi) whose input column ow * sw + j - pl lies inside [0, W)."""
    lo = 0
    if j < pl:
        lo = (pl - j + sw - 1) // sw
    hi = (W - 1 - j + pl) // sw + 1
    if hi > OW:
        hi = OW
    if hi < lo:
        hi = lo
    return lo, hi


# The loops below copy and add with ``for t in range(...)`` over views rather than with slice
# expressions: numba's slice assignment and a signed running index (with its negative-index
# wraparound) both kept LLVM from vectorising the rows (measured 3-4x slower).
@numba.njit(cache=True, nogil=True)
def _im2col_unit(x, n0, kh, kw, sh, sw, pt, pl, OH, OW, cols):
    nc, R = cols.shape[0], cols.shape[1]
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    zero = cols.dtype.type(0)
    for k in range(nc):
        n = n0 + k
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    dst_r = cols[k, (c * kh + i) * kw + j]
                    lo, hi = _valid_range(j, pl, 1, W, OW)
                    for oh in range(OH):
                        dst = dst_r[oh * OW:(oh + 1) * OW]
                        h = oh * sh + i - pt
                        if h < 0 or h >= H:
                            for t in range(OW):
                                dst[t] = zero
                            continue
                        for t in range(lo):
                            dst[t] = zero
                        for t in range(OW - hi):
                            dst[hi + t] = zero
                        src = x[n, c, h, lo + j - pl:hi + j - pl]
                        d = dst[lo:hi]
                        for t in range(hi - lo):
                            d[t] = src[t]  # (1)
        if R > C * kh * kw:
            ones = cols[k, R - 1]
            for t in range(OH * OW):
                ones[t] = 1


@numba.njit(cache=True, nogil=True)
def _im2col_strided(x, n0, kh, kw, sh, sw, pt, pl, OH, OW, cols):
    nc, R = cols.shape[0], cols.shape[1]
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    zero = cols.dtype.type(0)
    for k in range(nc):
        n = n0 + k
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    dst_r = cols[k, (c * kh + i) * kw + j]
                    lo, hi = _valid_range(j, pl, sw, W, OW)
                    for oh in range(OH):
                        dst = dst_r[oh * OW:(oh + 1) * OW]
                        h = oh * sh + i - pt
                        if h < 0 or h >= H:
                            for t in range(OW):
                                dst[t] = zero
                            continue
                        for t in range(lo):
                            dst[t] = zero
                        for t in range(OW - hi):
                            dst[hi + t] = zero
                        src = x[n, c, h, lo * sw + j - pl:(hi - 1) * sw + j - pl + 1:sw]
                        d = dst[lo:hi]
                        for t in range(hi - lo):
                            d[t] = src[t]  # (1)
        if R > C * kh * kw:
            ones = cols[k, R - 1]
            for t in range(OH * OW):
                ones[t] = 1


@numba.njit(cache=True, nogil=True)
def _col2im_unit(dcols, n0, kh, kw, sh, sw, pt, pl, OH, OW, bias, dx):
    nc = dcols.shape[0]
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    for k in range(nc):
        n = n0 + k
        for c in range(C):
            plane = dx[n, c]
            plane[:, :] = bias[c]
            for i in range(kh):
                for j in range(kw):
                    src_r = dcols[k, (c * kh + i) * kw + j]
                    lo, hi = _valid_range(j, pl, 1, W, OW)
                    for oh in range(OH):
                        h = oh * sh + i - pt
                        if h < 0 or h >= H:
                            continue
                        src = src_r[oh * OW + lo:oh * OW + hi]
                        d = plane[h, lo + j - pl:hi + j - pl]
                        for t in range(hi - lo):
                            d[t] += src[t]  # (6)


@numba.njit(cache=True, nogil=True)
def _col2im_strided(dcols, n0, kh, kw, sh, sw, pt, pl, OH, OW, bias, dx):
    nc = dcols.shape[0]
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    for k in range(nc):
        n = n0 + k
        for c in range(C):
            plane = dx[n, c]
            plane[:, :] = bias[c]
            for i in range(kh):
                for j in range(kw):
                    src_r = dcols[k, (c * kh + i) * kw + j]
                    lo, hi = _valid_range(j, pl, sw, W, OW)
                    for oh in range(OH):
                        h = oh * sh + i - pt
                        if h < 0 or h >= H:
                            continue
                        src = src_r[oh * OW + lo:oh * OW + hi]
                        d = plane[h, lo * sw + j - pl:(hi - 1) * sw + j - pl + 1:sw]
                        for t in range(hi - lo):
                            d[t] += src[t]  # (6)
