"""Convolutions by im2col + one GEMM for the batch: Conv2D, Conv1D, Conv2DTranspose.

Layout is channels first, like PyTorch (the seed's Keras code is channels last):

    Conv2D           x (N, C_in, H, W)    W (C_out, C_in, kh, kw)   b (C_out,)
                     y (N, C_out, OH, OW),  OH = (H + pt + pb - kh) // sh + 1   (same for OW)
    Conv1D           x (N, C_in, L)       W (C_out, C_in, k)        b (C_out,)
                     y (N, C_out, OL): Conv2D on (N, C_in, 1, L) with a (1, k) kernel
    Conv2DTranspose  x (N, C_in, H, W)    W (C_in, C_out, kh, kw)   b (C_out,)
                     y (N, C_out, H_out, W_out),  H_out = (H - 1) sh - 2 ph + kh + oph

``stride`` is an int or a pair (sh, sw); ``padding`` an int, a pair (ph, pw), an explicit
(top, bottom, left, right) 4-tuple, 'valid' (0) or 'same' (stride 1 only; for an even kernel
the extra row/column goes to the bottom/right, as in PyTorch). Conv2DTranspose follows
``torch.nn.functional.conv_transpose2d``: ``padding`` crops ph rows/columns from each side of
the full output and ``output_padding`` (< stride) adds oph rows at the bottom (and opw columns
on the right), to pick among the input sizes that a strided Conv2D maps to the same size.

How: im2col gathers every (kh x kw) patch of the padded input into a column,

    cols[(c, i, j), (n, oh, ow)] = xpad[n, c, oh * sh + i, ow * sw + j]          (1)

so the convolution (a cross-correlation, as in every deep-learning library) is ONE matrix
product for the whole batch, (C_out, C_in*kh*kw) @ (C_in*kh*kw, N*OH*OW). col2im is its adjoint
(it adds each column back where it came from), which gives both the input gradient of Conv2D and
the forward of Conv2DTranspose.

Two paths compute the same thing, chosen at the top of each ``forward`` / ``backward``:
* the plain path (``Conv2D._forward_plain`` ...): the one to read first and the tests'
  reference; NumPy's ``as_strided`` im2col, kh * kw strided slice additions for col2im, one GEMM
  for the batch; it runs unchanged on CuPy arrays;
* the CPU fast path (``Conv2D._forward_fast`` ...), for float32/float64 NumPy arrays when numba
  is installed (``NNSCRATCH_FUSED=0`` turns it off): the same equations, with the columns laid
  out per example, cols[n] = (C_in*kh*kw, OH*OW), so each example's product W2 @ cols[n] lands
  directly in the (N, C, H, W) output and W2^T @ dy[n] reads dy as it comes (no transpose
  copies); numba kernels (nnscratch/kernels/cpu/conv.py) for im2col and a fused col2im that
  adds into the output plane by plane (no padded buffer, no strided passes over the batch); a
  row of ones appended to the columns carries the bias, so (2) and (4) need no pass of their
  own; the work goes a chunk of examples at a time, so the columns of the input gradient are
  consumed while they are still in the cache, and the chunks are shared among the threads the
  engine's policy allows (nnscratch/threads.py), each GEMM on one BLAS thread (one product per
  example split across BLAS threads would pay their hand-off on every small GEMM, ruinous on a
  busy machine); and the big buffers come from ``workspace`` and go back to it after backward,
  instead of being faulted in afresh every step.

Derivation: docs/derivations/conv.md (equation numbers cited as ``# (n)``).
"""
from __future__ import annotations

import numpy as np

from .. import threads
from ..backend import fused_enabled, get_array_module, numba_available
from .base import Function
from .lstm import Workspace


# ----------------------------------------------------------------------------------------------
# Sizes and padding
# ----------------------------------------------------------------------------------------------
def _pair(v, name: str) -> tuple[int, int]:
    """(a, b) from an int or a pair of ints; a clear error otherwise."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = v
        return int(a), int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None


def conv_pads(padding, kernel: tuple[int, int],
              stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding from 'valid', 'same', an int, a pair (ph, pw) or
    an explicit 4-tuple (top, bottom, left, right)."""
    kh, kw = kernel
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            # PyTorch's rule: total k - 1, the smaller half first (top/left).
            return (kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2
        raise ValueError(f"padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:  # (top, bottom, left, right)
        pads = tuple(int(p) for p in padding)
        if min(pads) < 0:
            raise ValueError(f"padding must be >= 0, got {padding!r}")
        return pads
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return ph, ph, pw, pw


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a convolution or pooling: (size + pads - kernel) // stride + 1."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def _check_geometry(op, x_shape, kernel, stride, pads):
    kh, kw = kernel
    sh, sw = stride
    if kh < 1 or kw < 1 or sh < 1 or sw < 1:
        raise ValueError(f"{op}: kernel and stride must be >= 1, got kernel {kernel}, stride "
                         f"{stride}")
    H, W = x_shape[-2:]
    Hp, Wp = H + pads[0] + pads[1], W + pads[2] + pads[3]
    if Hp < kh or Wp < kw:
        raise ValueError(
            f"{op}: input of spatial size {(H, W)} (padded {(Hp, Wp)}) is smaller than the kernel "
            f"{(kh, kw)}"
        )
    return (conv_output_size(H, kh, sh, pads[0], pads[1]),
            conv_output_size(W, kw, sw, pads[2], pads[3]))


def pad2d(x, pads, value=0.0):
    """x (N, C, H, W) with pads = (top, bottom, left, right) rows/columns of ``value`` added."""
    pt, pb, pl, pr = pads
    if not (pt or pb or pl or pr):
        return x
    xp = get_array_module(x)
    N, C, H, W = x.shape
    out = xp.full((N, C, H + pt + pb, W + pl + pr), value, dtype=x.dtype)
    out[:, :, pt:pt + H, pl:pl + W] = x
    return out


# ----------------------------------------------------------------------------------------------
# im2col and col2im
# ----------------------------------------------------------------------------------------------
def im2col(x, kernel, stride, pads, out_hw):
    """im2col on NumPy or CuPy: x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW), equation (1).

    The padded input is viewed through ``as_strided`` as (C, kh, kw, N, OH, OW) without a copy;
    the reshape into columns then copies it once.
    """
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out_hw
    xpad = xp.ascontiguousarray(pad2d(x, pads))
    N, C = xpad.shape[:2]
    s_n, s_c, s_h, s_w = xpad.strides
    view = xp.lib.stride_tricks.as_strided(
        xpad, shape=(C, kh, kw, N, OH, OW),
        # view[c, i, j, n, oh, ow] = xpad[n, c, oh*sh + i, ow*sw + j]
        strides=(s_c, s_h, s_w, s_n, s_h * sh, s_w * sw))
    return view.reshape(C * kh * kw, N * OH * OW)  # (1)


def col2im(cols, x_shape, kernel, stride, pads, out_hw):
    """col2im on NumPy or CuPy, the adjoint of (1): cols (C*kh*kw, N*OH*OW) -> (N, C, H, W).

    One strided slice-add per kernel offset (i, j): kh * kw vectorised passes, no ``np.add.at``.
    Entries that fall in the padding are dropped, equation (6). (The sum is built channel-major,
    (C, N, H, W), the layout of the columns, and transposed once at the end.)
    """
    xp = get_array_module(cols)
    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out_hw
    N, C, H, W = x_shape
    pt, pb, pl, pr = pads
    c6 = cols.reshape(C, kh, kw, N, OH, OW)
    dxpad = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxpad[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += c6[:, i, j]  # (6)
    return xp.ascontiguousarray(dxpad[:, :, pt:pt + H, pl:pl + W].transpose(1, 0, 2, 3))


def _to_channel_major(a):
    """(N, C, H, W) -> (C, N*H*W), one copy: the layout of the columns' GEMMs."""
    xp = get_array_module(a)
    N, C = a.shape[:2]
    return xp.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(C, -1)


def _from_channel_major(a2, N, hw):
    """(C, N*H*W) -> (N, C, H, W) contiguous, one copy."""
    xp = get_array_module(a2)
    C = a2.shape[0]
    return xp.ascontiguousarray(a2.reshape(C, N, *hw).transpose(1, 0, 2, 3))


def _check_weight(op, x, W, b, channel_axis_of_W):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected x of shape (N, C, H, W), got {tuple(x.shape)}")
    if W.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight, got shape {tuple(W.shape)}")
    if x.shape[1] != W.shape[channel_axis_of_W]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but the weight of shape {tuple(W.shape)} "
            f"expects {W.shape[channel_axis_of_W]}"
        )
    n_out = W.shape[1 - channel_axis_of_W]
    if b is not None and tuple(b.shape) != (n_out,):
        raise ValueError(f"{op}: bias must have shape ({n_out},), got {tuple(b.shape)}")


# ----------------------------------------------------------------------------------------------
# The CPU fast path's pieces
# ----------------------------------------------------------------------------------------------
workspace = Workspace(max_bytes=256 * 2**20)
"""Recycles the fast path's columns between training steps (the LSTM's Workspace class): a
fresh 20-40 MB array costs its page faults at every step (docs/benchmarks.md measured a third
of the middle layer's time there)."""

#: bytes of columns per chunk of examples: small enough to stay in the cache between the GEMM
#: that writes them and the col2im that reads them
CHUNK_BYTES = 512 * 1024


def _fast(x, W) -> bool:
    """Use the CPU fast path: NumPy float32/float64 arrays of one dtype, numba installed,
    NNSCRATCH_FUSED not 0."""
    return (get_array_module(x) is np and x.dtype in (np.float32, np.float64)
            and W.dtype == x.dtype and fused_enabled() and numba_available())


def _chunks(N: int, bytes_per_example: int):
    """(n0, n1) ranges covering the batch, each about CHUNK_BYTES of columns (at least one
    example)."""
    nc = max(1, min(N, CHUNK_BYTES // max(1, bytes_per_example)))
    return [(n0, min(N, n0 + nc)) for n0 in range(0, N, nc)], nc


def _kernels():
    from ..kernels.cpu import conv as kernels  # noqa: PLC0415 - numba's import is slow

    return kernels


def _saves_anything(ctx) -> bool:
    """False when no gradient is wanted at all (a layer under no_grad): nothing to keep."""
    return ctx.needs(0) or ctx.needs(1) or ctx.needs(2)


# ----------------------------------------------------------------------------------------------
# Functions
# ----------------------------------------------------------------------------------------------
class Conv2D(Function):
    """y = W * x + b, a 2-D cross-correlation with stride and zero padding.

    Forward, with W2 = W.reshape(C_out, C_in*kh*kw):
        cols = im2col(x)                       (C_in*kh*kw, N*OH*OW)     (1)
        y2 = W2 @ cols + b                     (C_out, N*OH*OW) -> y     (2)
      i.e. y[n,o,oh,ow] = sum_{c,i,j} W[o,c,i,j] xpad[n,c,oh*sh+i,ow*sw+j] + b[o]
    Backward, with dy2 = dy as (C_out, N*OH*OW):
        dW2 = dy2 @ cols^T                                               (3)
        db  = sum_{n,oh,ow} dy[n, :, oh, ow]                             (4)
        dcols = W2^T @ dy2                                               (5)
        dx = col2im(dcols)  (adds each column back; padding dropped)     (6)

    ``forward`` and ``backward`` pick the path at the top: the CPU fast path
    (``_forward_fast`` / ``_backward_fast``) or the plain one (``_forward_plain`` /
    ``_backward_plain``), the reference.
    """

    @staticmethod
    def forward(ctx, x, W, b=None, stride=1, padding=0):
        _check_weight("Conv2D", x, W, b, 1)
        C_out, C_in, kh, kw = W.shape
        stride = _pair(stride, "stride")
        pads = conv_pads(padding, (kh, kw), stride)
        OH, OW = _check_geometry("Conv2D", x.shape, (kh, kw), stride, pads)
        ctx.save(W=W, x_shape=x.shape, kernel=(kh, kw), stride=stride, pads=pads,
                 out_hw=(OH, OW), has_bias=b is not None, fast=_fast(x, W))
        if ctx.fast:
            return Conv2D._forward_fast(ctx, x, W, b)
        return Conv2D._forward_plain(ctx, x, W, b)

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Conv2D")
        if ctx.fast:
            return Conv2D._backward_fast(ctx, dy)
        return Conv2D._backward_plain(ctx, dy)

    # -- the plain path: the reference -----------------------------------------------------------
    @staticmethod
    def _forward_plain(ctx, x, W, b):
        C_out = W.shape[0]
        cols = im2col(x, ctx.kernel, ctx.stride, ctx.pads, ctx.out_hw)  # (1)
        y2 = W.reshape(C_out, -1) @ cols  # (2): one GEMM for the batch
        if b is not None:
            y2 += b[:, None]
        ctx.save(cols=cols)
        return _from_channel_major(y2, x.shape[0], ctx.out_hw)

    @staticmethod
    def _backward_plain(ctx, dy):
        W, cols = ctx.W, ctx.cols
        C_out = W.shape[0]
        dy2 = _to_channel_major(dy)
        dW = (dy2 @ cols.T).reshape(W.shape)  # (3)
        db = dy2.sum(axis=1) if ctx.has_bias else None  # (4)
        dx = None
        if ctx.needs(0):
            dcols = W.reshape(C_out, -1).T @ dy2  # (5)
            dx = col2im(dcols, ctx.x_shape, ctx.kernel, ctx.stride, ctx.pads, ctx.out_hw)  # (6)
        return dx, dW, db

    # -- the CPU fast path -------------------------------------------------------------------------
    @staticmethod
    def _forward_fast(ctx, x, W, b):
        """(1)-(2) a chunk of examples at a time, one GEMM per example, straight into y. With a
        bias, cols gets a last row of ones and W2 a last column b: W2e = [W2 | b],
        y[n] = W2e @ [cols[n]; 1] = W2 @ cols[n] + b. The columns of the whole batch are kept
        for (3) (in a ``workspace`` buffer) unless no gradient is wanted. The chunks are shared
        among the threads the policy allows (nnscratch/threads.py), each GEMM on one thread."""
        K = _kernels()
        x = np.ascontiguousarray(x)
        N = x.shape[0]
        C_out = W.shape[0]
        (kh, kw), (sh, sw), (pt, _, pl, _), (OH, OW) = ctx.kernel, ctx.stride, ctx.pads, ctx.out_hw
        W2e = W.reshape(C_out, -1)
        if b is not None:
            W2e = np.concatenate([W2e, b[:, None].astype(W.dtype, copy=False)], axis=1)
        R1, P = W2e.shape[1], OH * OW
        y = np.empty((N, C_out, OH, OW), x.dtype)
        y3 = y.reshape(N, C_out, P)
        keep = _saves_anything(ctx)
        chunks, nc = _chunks(N, R1 * P * x.itemsize)
        workers = threads.threads_for(2.0 * C_out * R1 * P * N)
        if keep:
            cols = workspace.take((N, R1, P), x.dtype)
        else:
            bufs = [workspace.take((nc, R1, P), x.dtype) for _ in range(workers)]

        def run(worker, lo, hi):
            for n0, n1 in chunks[lo:hi]:
                c = cols[n0:n1] if keep else bufs[worker][:n1 - n0]
                K.im2col_chunk(x, n0, kh, kw, sh, sw, pt, pl, OH, OW, c)  # (1), the ones row
                np.matmul(W2e, c, out=y3[n0:n1])  # (2) with the bias

        threads.parallel_for(run, len(chunks), workers)
        if keep:
            ctx.save(cols=cols, W2e=W2e)
        else:
            workspace.give(*bufs)
        return y

    @staticmethod
    def _backward_fast(ctx, dy):
        """(3)-(6) a chunk at a time: the weight (and bias) gradient as one GEMM per example
        against the saved columns (summed over the batch at the end); dcols = W2^T dy[n] for the
        chunk and the fused col2im into dx while dcols is still in the cache. The columns go
        back to ``workspace``."""
        K = _kernels()
        cols, W2e, W = ctx.cols, ctx.W2e, ctx.W
        N, C_in = ctx.x_shape[:2]
        C_out = W.shape[0]
        (kh, kw), (sh, sw), (pt, _, pl, _), (OH, OW) = ctx.kernel, ctx.stride, ctx.pads, ctx.out_hw
        R, R1, P = C_in * kh * kw, W2e.shape[1], OH * OW
        dy3 = np.ascontiguousarray(dy).reshape(N, C_out, P)
        dtype = dy3.dtype
        want_dx = ctx.needs(0)
        dx = np.empty(ctx.x_shape, dtype) if want_dx else None
        W2T = W2e[:, :R].T
        zeros = np.zeros(C_in, dtype)
        chunks, nc = _chunks(N, R1 * P * dy3.itemsize)
        workers = threads.threads_for(2.0 * C_out * R1 * P * N * (2 if want_dx else 1))
        dWe = workspace.take((N, C_out, R1), dtype)  # per-example terms of (3) and (4)
        dcols = [workspace.take((nc, R, P), dtype) for _ in range(workers)] if want_dx else []

        def run(worker, lo, hi):
            for n0, n1 in chunks[lo:hi]:
                # (3), (4): dy[n] @ [cols[n]; 1]^T
                np.matmul(dy3[n0:n1], cols[n0:n1].transpose(0, 2, 1), out=dWe[n0:n1])
                if want_dx:
                    dc = dcols[worker][:n1 - n0]
                    np.matmul(W2T, dy3[n0:n1], out=dc)  # (5)
                    K.col2im_chunk(dc, n0, kh, kw, sh, sw, pt, pl, OH, OW, zeros, dx)  # (6)

        threads.parallel_for(run, len(chunks), workers)
        dW2e = dWe.sum(axis=0)  # (3), (4): the sums over the batch
        dW = np.ascontiguousarray(dW2e[:, :R]).reshape(W.shape)  # (3)
        db = np.ascontiguousarray(dW2e[:, R]) if ctx.has_bias else None  # (4)
        workspace.give(cols, dWe, *dcols)
        ctx.cols = None
        return dx, dW, db


class Conv1D(Function):
    """1-D convolution: Conv2D on (N, C_in, 1, L) with a (1, k) kernel.

    Shapes: x (N, C_in, L), W (C_out, C_in, k), b (C_out,) -> y (N, C_out, OL),
    OL = (L + 2 p - k) // s + 1 ('same': stride 1, OL = L).
    ``stride`` and ``padding`` are ints (or 'valid' / 'same' / a (left, right) pair).
    Forward and backward: Conv2D's (1)-(6) with kh = 1.
    """

    @staticmethod
    def forward(ctx, x, W, b=None, stride=1, padding=0):
        if x.ndim != 3 or W.ndim != 3:
            raise ValueError(f"Conv1D: expected x (N, C, L) and W (C_out, C_in, k), got "
                             f"{tuple(x.shape)} and {tuple(W.shape)}")
        if not isinstance(stride, (int, np.integer)):
            raise ValueError(f"Conv1D: stride must be an int, got {stride!r}")
        if isinstance(padding, str):
            pads = padding
        elif isinstance(padding, (int, np.integer)):
            pads = (0, 0, int(padding), int(padding))
        else:
            left, right = _pair(padding, "padding")
            pads = (0, 0, left, right)
        y = Conv2D.forward(ctx, x[:, :, None, :], W[:, :, None, :], b, stride=(1, stride),
                           padding=pads)
        return y[:, :, 0, :]

    @staticmethod
    def backward(ctx, dy):
        dx, dW, db = Conv2D.backward(ctx, dy[:, :, None, :])
        return (None if dx is None else dx[:, :, 0, :]), dW[:, :, 0, :], db


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int,
                               output_padding: int) -> int:
    """(size - 1) * stride - 2 * padding + kernel + output_padding (PyTorch's formula)."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


class Conv2DTranspose(Function):
    """The transposed convolution ("deconvolution"): the adjoint of Conv2D with respect to x.

    Shapes: x (N, C_in, H, W), W (C_in, C_out, kh, kw) (PyTorch's layout), b (C_out,)
            -> y (N, C_out, H_out, W_out), H_out = (H - 1) sh - 2 ph + kh + oph.
    With W2 = W.reshape(C_in, C_out*kh*kw), x2 = x as (C_in, N*H*W), and pads
    (ph, ph + oph, pw, pw + opw) on an output of size (H_out, W_out) -- the Conv2D whose input
    gradient this is:
    Forward:
        cols = W2^T @ x2                       (C_out*kh*kw, N*H*W)      (7)
        y = col2im(cols) + b                                             (8)
    Backward:
        dcols = im2col(dy)                     (C_out*kh*kw, N*H*W)      (9)
        dx2 = W2 @ dcols                                                 (10)
        dW2 = x2 @ dcols^T                                               (11)
        db  = sum_{n,h,w} dy[n, :, h, w]                                 (12)
    """

    @staticmethod
    def forward(ctx, x, W, b=None, stride=1, padding=0, output_padding=0):
        _check_weight("Conv2DTranspose", x, W, b, 0)
        C_in, C_out, kh, kw = W.shape
        sh, sw = _pair(stride, "stride")
        ph, pw = _pair(padding, "padding")
        oph, opw = _pair(output_padding, "output_padding")
        if sh < 1 or sw < 1 or ph < 0 or pw < 0:
            raise ValueError(f"Conv2DTranspose: stride must be >= 1 and padding >= 0, got stride "
                             f"{(sh, sw)}, padding {(ph, pw)}")
        if not (0 <= oph < sh and 0 <= opw < sw):
            raise ValueError(f"Conv2DTranspose: output_padding {(oph, opw)} must be smaller than "
                             f"the stride {(sh, sw)} (and >= 0)")
        N, _, H, Wd = x.shape
        H_out = conv_transpose_output_size(H, kh, sh, ph, oph)
        W_out = conv_transpose_output_size(Wd, kw, sw, pw, opw)
        if H_out < 1 or W_out < 1:
            raise ValueError(f"Conv2DTranspose: padding {(ph, pw)} leaves an empty output "
                             f"({H_out}, {W_out}) for input {(H, Wd)} and kernel {(kh, kw)}")
        pads = (ph, ph + oph, pw, pw + opw)
        ctx.save(x_shape=x.shape, W=W, kernel=(kh, kw), stride=(sh, sw), pads=pads,
                 in_hw=(H, Wd), out_hw=(H_out, W_out), has_bias=b is not None, fast=_fast(x, W))
        if ctx.fast:
            return Conv2DTranspose._forward_fast(ctx, x, W, b)
        return Conv2DTranspose._forward_plain(ctx, x, W, b)

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Conv2DTranspose")
        if ctx.fast:
            return Conv2DTranspose._backward_fast(ctx, dy)
        return Conv2DTranspose._backward_plain(ctx, dy)

    # -- the plain path: the reference -----------------------------------------------------------
    @staticmethod
    def _forward_plain(ctx, x, W, b):
        C_in, C_out = W.shape[:2]
        x2 = _to_channel_major(x)
        cols = W.reshape(C_in, -1).T @ x2  # (7)
        y = col2im(cols, (x.shape[0], C_out) + ctx.out_hw, ctx.kernel, ctx.stride, ctx.pads,
                   ctx.in_hw)  # (8)
        if b is not None:
            y += b[:, None, None]
        ctx.save(x2=x2)
        return y

    @staticmethod
    def _backward_plain(ctx, dy):
        x2, W = ctx.x2, ctx.W
        C_in = W.shape[0]
        dcols = im2col(dy, ctx.kernel, ctx.stride, ctx.pads, ctx.in_hw)  # (9)
        dx = None
        if ctx.needs(0):
            dx = _from_channel_major(W.reshape(C_in, -1) @ dcols, ctx.x_shape[0], ctx.in_hw)  # (10)
        dW = (x2 @ dcols.T).reshape(W.shape)  # (11)
        db = dy.sum(axis=(0, 2, 3)) if ctx.has_bias else None  # (12)
        return dx, dW, db

    # -- the CPU fast path -------------------------------------------------------------------------
    @staticmethod
    def _forward_fast(ctx, x, W, b):
        """(7)-(8) a chunk at a time: cols[n] = W2^T @ x[n] (x[n] is already (C_in, H*W): no
        transpose copy), then the fused col2im writes y[n] plane by plane, starting from the
        bias instead of zero."""
        K = _kernels()
        x = np.ascontiguousarray(x)
        N, C_in, H, Wd = x.shape
        C_out = W.shape[1]
        (kh, kw), (sh, sw), (pt, _, pl, _) = ctx.kernel, ctx.stride, ctx.pads
        W2T = W.reshape(C_in, -1).T
        R, P = W2T.shape[0], H * Wd
        bias = (np.zeros(C_out, x.dtype) if b is None
                else np.ascontiguousarray(b, dtype=x.dtype))
        y = np.empty((N, C_out) + ctx.out_hw, x.dtype)
        x3 = x.reshape(N, C_in, P)
        chunks, nc = _chunks(N, R * P * x.itemsize)
        workers = threads.threads_for(2.0 * C_in * R * P * N)
        bufs = [workspace.take((nc, R, P), x.dtype) for _ in range(workers)]

        def run(worker, lo, hi):
            for n0, n1 in chunks[lo:hi]:
                c = bufs[worker][:n1 - n0]
                np.matmul(W2T, x3[n0:n1], out=c)  # (7)
                K.col2im_chunk(c, n0, kh, kw, sh, sw, pt, pl, H, Wd, bias, y)  # (8)

        threads.parallel_for(run, len(chunks), workers)
        workspace.give(*bufs)
        if _saves_anything(ctx):
            ctx.save(x3=x3)
        return y

    @staticmethod
    def _backward_fast(ctx, dy):
        """(9)-(12) a chunk at a time: dcols[n] = im2col(dy[n]); dx[n] = W2 @ dcols[n], straight
        into dx; dW2 = sum_n x[n] @ dcols[n]^T (summed per worker, then over the workers)."""
        K = _kernels()
        x3, W = ctx.x3, ctx.W
        N, C_in, H, Wd = ctx.x_shape
        C_out = W.shape[1]
        (kh, kw), (sh, sw), (pt, _, pl, _) = ctx.kernel, ctx.stride, ctx.pads
        W2 = W.reshape(C_in, -1)
        R, P = W2.shape[1], H * Wd
        dy = np.ascontiguousarray(dy)
        dtype = dy.dtype
        dx = np.empty(ctx.x_shape, dtype) if ctx.needs(0) else None
        dx3 = None if dx is None else dx.reshape(N, C_in, P)
        chunks, nc = _chunks(N, R * P * dy.itemsize)
        workers = threads.threads_for(2.0 * C_in * R * P * N * (2 if dx is not None else 1))
        dcols = [workspace.take((nc, R, P), dtype) for _ in range(workers)]
        dWn = [workspace.take((nc, C_in, R), dtype) for _ in range(workers)]
        dW2 = [np.zeros((C_in, R), dtype) for _ in range(workers)]

        def run(worker, lo, hi):
            for n0, n1 in chunks[lo:hi]:
                dc, dw = dcols[worker][:n1 - n0], dWn[worker][:n1 - n0]
                K.im2col_chunk(dy, n0, kh, kw, sh, sw, pt, pl, H, Wd, dc)  # (9)
                if dx3 is not None:
                    np.matmul(W2, dc, out=dx3[n0:n1])  # (10)
                np.matmul(x3[n0:n1], dc.transpose(0, 2, 1), out=dw)  # (11), per example
                dW2[worker] += dw.sum(axis=0)

        threads.parallel_for(run, len(chunks), workers)
        workspace.give(*dcols, *dWn)
        db = dy.reshape(N, C_out, -1).sum(axis=2).sum(axis=0) if ctx.has_bias else None  # (12)
        return dx, sum(dW2[1:], dW2[0]).reshape(W.shape), db


__all__ = [
    "Conv1D", "Conv2D", "Conv2DTranspose", "im2col", "col2im", "conv_pads", "conv_output_size",
    "conv_transpose_output_size", "pad2d",
]
