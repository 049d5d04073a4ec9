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
product for the whole batch, (C_out, C_in*kh*kw) @ (C_in*kh*kw, N*OH*OW). (One product per
example via a batched matmul was as fast on a quiet machine, and 5-10x slower on a busy one:
every small GEMM pays OpenBLAS's thread hand-off.) col2im is its adjoint (it adds each column
back where it came from), which gives both the input gradient of Conv2D and the forward of
Conv2DTranspose. Both are plain NumPy (an ``as_strided`` view copied once; kh * kw strided
slice additions) and run unchanged on CuPy arrays. numba versions of im2col and col2im were
measured and lost to them in this layout (2.2 vs 4.8 ms and 4.7 vs 6.0 ms on the digit CNN's
layers), so there is no fused path here.

Derivation: docs/derivations/conv.md (equation numbers cited as ``# (n)``).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .base import Function


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
    """

    @staticmethod
    def forward(ctx, x, W, b=None, stride=1, padding=0):
        _check_weight("Conv2D", x, W, b, 1)
        C_out, C_in, kh, kw = W.shape
        stride = _pair(stride, "stride")
        pads = conv_pads(padding, (kh, kw), stride)
        OH, OW = _check_geometry("Conv2D", x.shape, (kh, kw), stride, pads)
        cols = im2col(x, (kh, kw), stride, pads, (OH, OW))  # (1)
        y2 = W.reshape(C_out, -1) @ cols  # (2): one GEMM for the batch
        if b is not None:
            y2 += b[:, None]
        ctx.save(cols=cols, W=W, x_shape=x.shape, kernel=(kh, kw), stride=stride, pads=pads,
                 out_hw=(OH, OW), has_bias=b is not None)
        return _from_channel_major(y2, x.shape[0], (OH, OW))

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Conv2D")
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
        x2 = _to_channel_major(x)
        cols = W.reshape(C_in, -1).T @ x2  # (7)
        y = col2im(cols, (N, C_out, H_out, W_out), (kh, kw), (sh, sw), pads, (H, Wd))  # (8)
        if b is not None:
            y += b[:, None, None]
        ctx.save(x2=x2, x_shape=x.shape, W=W, kernel=(kh, kw), stride=(sh, sw), pads=pads,
                 in_hw=(H, Wd), has_bias=b is not None)
        return y

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("Conv2DTranspose")
        x2, W = ctx.x2, ctx.W
        C_in = W.shape[0]
        dcols = im2col(dy, ctx.kernel, ctx.stride, ctx.pads, ctx.in_hw)  # (9)
        dx = None
        if ctx.needs(0):
            dx = _from_channel_major(W.reshape(C_in, -1) @ dcols, ctx.x_shape[0], ctx.in_hw)  # (10)
        dW = (x2 @ dcols.T).reshape(W.shape)  # (11)
        db = dy.sum(axis=(0, 2, 3)) if ctx.has_bias else None  # (12)
        return dx, dW, db


__all__ = [
    "Conv1D", "Conv2D", "Conv2DTranspose", "im2col", "col2im", "conv_pads", "conv_output_size",
    "conv_transpose_output_size", "pad2d",
]
