"""Pooling: max and average over (kh x kw) windows, 2-D and 1-D, channels first.

Shapes:
    2-D: x (N, C, H, W) -> y (N, C, OH, OW),  OH = (H + 2 ph - kh) // sh + 1   (same for OW)
    1-D: x (N, C, L)    -> y (N, C, OL): the 2-D op on (N, C, 1, L) with a (1, k) window
    global max over the last axis: x (..., T) -> y (...), any T >= 1 (``GlobalMaxPool``)
``kernel_size`` is an int or a pair; ``stride`` defaults to the kernel size (non-overlapping
windows, Keras' and PyTorch's default); ``padding`` (at most half the kernel, PyTorch's rule)
pads with -inf for max pooling (padding never wins) and with zeros for average pooling, which
divides by kh * kw everywhere (PyTorch's ``count_include_pad=True``). Outputs are floored
(PyTorch's ``ceil_mode=False``, Keras' 'valid').

How: instead of gathering windows, both ops loop over the kh * kw offsets (i, j) of a window and
work on the strided slice ``xpad[:, :, i::sh, j::sw]`` (cropped to OH x OW), which holds the
(i, j)-th element of every window at once: kh * kw vectorised passes, on NumPy or CuPy. On the
CPU, max pooling switches to numba kernels (one visit per window, nnscratch/kernels/cpu/pool.py)
when numba is installed (NNSCRATCH_FUSED=0 turns them off).

Derivation: docs/derivations/pool.md (equation numbers cited as ``# (n)``).
"""
from __future__ import annotations

import numpy as np

from ..backend import fused_enabled, get_array_module, numba_available
from .base import Function
from .conv import _pair, conv_output_size, pad2d


def pool_geometry(op, x_shape, kernel_size, stride, padding):
    """((kh, kw), (sh, sw), (ph, pw), (OH, OW)) with checks; stride None means the kernel size."""
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if min(kh, kw, sh, sw) < 1:
        raise ValueError(f"{op}: kernel_size and stride must be >= 1, got {(kh, kw)} and "
                         f"{(sh, sw)}")
    if not (0 <= ph <= kh // 2 and 0 <= pw <= kw // 2):
        raise ValueError(f"{op}: padding {(ph, pw)} must be between 0 and half the kernel "
                         f"{(kh, kw)}")
    if len(x_shape) != 4:
        raise ValueError(f"{op}: expected x of shape (N, C, H, W), got {tuple(x_shape)}")
    H, W = x_shape[2:]
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(f"{op}: input of spatial size {(H, W)} is smaller than the window "
                         f"{(kh, kw)}")
    OH, OW = conv_output_size(H, kh, sh, ph, ph), conv_output_size(W, kw, sw, pw, pw)
    return (kh, kw), (sh, sw), (ph, pw), (OH, OW)


def _fast(x) -> bool:
    """Use the numba kernels: NumPy float arrays, numba installed, NNSCRATCH_FUSED not 0."""
    return (get_array_module(x) is np and x.dtype in (np.float32, np.float64) and fused_enabled()
            and numba_available())


def _maxpool_forward_fast(x, kernel, stride, pads, out_hw):
    """numba path of (1)-(2): one visit per window (nnscratch/kernels/cpu/pool.py)."""
    from ..kernels.cpu.pool import maxpool2d_forward  # noqa: PLC0415 - numba import is slow

    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out_hw
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    arg = np.empty(y.shape, dtype=np.uint8 if kh * kw <= 255 else np.int32)
    maxpool2d_forward(x, kh, kw, sh, sw, pads[0], pads[2], OH, OW, y, arg)
    return y, arg


def _maxpool_backward_fast(dy, ctx):
    """numba path of (3)."""
    from ..kernels.cpu.pool import maxpool2d_backward  # noqa: PLC0415

    (kh, kw), (sh, sw) = ctx.kernel, ctx.stride
    dx = np.empty(ctx.x_shape, dtype=dy.dtype)
    maxpool2d_backward(dy, ctx.arg, kh, kw, sh, sw, ctx.pads[0], ctx.pads[2], dx)
    return dx


def _window_slice(i, j, stride, out_hw):
    """Index of the (i, j)-th element of every window: rows i, i + sh, ..., (OH of them)."""
    (sh, sw), (OH, OW) = stride, out_hw
    return (slice(None), slice(None), slice(i, i + sh * (OH - 1) + 1, sh),
            slice(j, j + sw * (OW - 1) + 1, sw))


class MaxPool2D(Function):
    """y = the maximum of each window; the gradient goes to the (first) maximum.

    Forward, over the window offsets k = (i, j) in row-major order:
        y[n,c,oh,ow] = max_k xpad[n,c,oh*sh+i,ow*sw+j]                         (1)
        a[n,c,oh,ow] = the first k reaching that maximum (PyTorch's tie rule)   (2)
    Backward:
        dxpad[n,c,oh*sh+i,ow*sw+j] += dy[n,c,oh,ow] * [a[n,c,oh,ow] = k]        (3)
        dx = dxpad without the padding
    """

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        kernel, stride, (ph, pw), out_hw = pool_geometry("MaxPool2D", x.shape, kernel_size,
                                                         stride, padding)
        xp = get_array_module(x)
        pads = (ph, ph, pw, pw)
        ctx.save(x_shape=x.shape, kernel=kernel, stride=stride, pads=pads, out_hw=out_hw)
        if _fast(x):
            y, arg = _maxpool_forward_fast(x, kernel, stride, pads, out_hw)
            ctx.save(arg=arg)
            return y
        xpad = pad2d(x, pads, value=-np.inf)
        kh, kw = kernel
        arg_dtype = xp.uint8 if kh * kw <= 255 else xp.int32
        y = arg = None
        for i in range(kh):
            for j in range(kw):
                v = xpad[_window_slice(i, j, stride, out_hw)]
                if y is None:
                    y = v.copy()
                    arg = xp.zeros(y.shape, dtype=arg_dtype)
                    continue
                better = v > y  # strict: ties keep the first offset                   (2)
                y = xp.where(better, v, y)  # (1)
                arg = xp.where(better, arg_dtype(i * kw + j), arg)
        ctx.save(arg=arg)
        return y

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("MaxPool2D")
        xp = get_array_module(dy)
        if _fast(dy):
            return (_maxpool_backward_fast(dy, ctx),)
        N, C, H, W = ctx.x_shape
        pt, pb, pl, pr = ctx.pads
        kh, kw = ctx.kernel
        dxpad = xp.zeros((N, C, H + pt + pb, W + pl + pr), dtype=dy.dtype)
        zero = dy.dtype.type(0)
        for i in range(kh):
            for j in range(kw):
                # (3): overlapping windows (stride < kernel) add into the same input element
                window = _window_slice(i, j, ctx.stride, ctx.out_hw)
                dxpad[window] += xp.where(ctx.arg == i * kw + j, dy, zero)
        return (dxpad[:, :, pt:pt + H, pl:pl + W],)


class AvgPool2D(Function):
    """y = the mean of each window (zero padding counted, PyTorch's count_include_pad=True).

    Forward:
        y[n,c,oh,ow] = 1/(kh kw) sum_{i,j} xpad[n,c,oh*sh+i,ow*sw+j]            (4)
    Backward:
        dxpad[n,c,oh*sh+i,ow*sw+j] += dy[n,c,oh,ow] / (kh kw)   for every (i, j)   (5)
    """

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        kernel, stride, (ph, pw), out_hw = pool_geometry("AvgPool2D", x.shape, kernel_size,
                                                         stride, padding)
        pads = (ph, ph, pw, pw)
        xpad = pad2d(x, pads, value=0.0)
        kh, kw = kernel
        y = None
        for i in range(kh):
            for j in range(kw):
                v = xpad[_window_slice(i, j, stride, out_hw)]
                y = v.copy() if y is None else y + v
        y *= x.dtype.type(1.0 / (kh * kw))  # (4)
        ctx.save(x_shape=x.shape, kernel=kernel, stride=stride, pads=pads, out_hw=out_hw)
        return y

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("AvgPool2D")
        xp = get_array_module(dy)
        N, C, H, W = ctx.x_shape
        pt, pb, pl, pr = ctx.pads
        kh, kw = ctx.kernel
        g = dy * dy.dtype.type(1.0 / (kh * kw))
        dxpad = xp.zeros((N, C, H + pt + pb, W + pl + pr), dtype=dy.dtype)
        for i in range(kh):
            for j in range(kw):
                dxpad[_window_slice(i, j, ctx.stride, ctx.out_hw)] += g  # (5)
        return (dxpad[:, :, pt:pt + H, pl:pl + W],)


def _one_d(value, name):
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        (v,) = value
        return int(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int, got {value!r}") from None


class MaxPool1D(Function):
    """Max pooling over (N, C, L): MaxPool2D's (1)-(3) on (N, C, 1, L) with a (1, k) window."""

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        if x.ndim != 3:
            raise ValueError(f"MaxPool1D: expected x of shape (N, C, L), got {tuple(x.shape)}")
        k = _one_d(kernel_size, "kernel_size")
        s = k if stride is None else _one_d(stride, "stride")
        p = _one_d(padding, "padding")
        y = MaxPool2D.forward(ctx, x[:, :, None, :], (1, k), (1, s), (0, p))
        return y[:, :, 0, :]

    @staticmethod
    def backward(ctx, dy):
        (dx,) = MaxPool2D.backward(ctx, dy[:, :, None, :])
        return (dx[:, :, 0, :],)


class AvgPool1D(Function):
    """Average pooling over (N, C, L): AvgPool2D's (4)-(5) on (N, C, 1, L)."""

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        if x.ndim != 3:
            raise ValueError(f"AvgPool1D: expected x of shape (N, C, L), got {tuple(x.shape)}")
        k = _one_d(kernel_size, "kernel_size")
        s = k if stride is None else _one_d(stride, "stride")
        p = _one_d(padding, "padding")
        y = AvgPool2D.forward(ctx, x[:, :, None, :], (1, k), (1, s), (0, p))
        return y[:, :, 0, :]

    @staticmethod
    def backward(ctx, dy):
        (dx,) = AvgPool2D.backward(ctx, dy[:, :, None, :])
        return (dx[:, :, 0, :],)


class GlobalMaxPool(Function):
    """The maximum over the last axis, which it removes: x (..., T) -> y (...), for any T >= 1
    (a head that pools a variable number of frames). Ties go to the first maximum, PyTorch's
    rule. (6)-(8) in docs/derivations/pool.md."""

    @staticmethod
    def forward(ctx, x):
        if x.ndim < 2 or x.shape[-1] < 1:
            raise ValueError(f"GlobalMaxPool: expected x of shape (..., T) with T >= 1, got "
                             f"{tuple(x.shape)}")
        xp = get_array_module(x)
        a = xp.argmax(x, axis=-1)                                          # (7)
        y = xp.take_along_axis(x, a[..., None], axis=-1)[..., 0]           # (6)
        ctx.save(a=a, T=x.shape[-1])
        return y

    @staticmethod
    def backward(ctx, dy):
        ctx.consume("GlobalMaxPool")
        xp = get_array_module(dy)
        winner = xp.arange(ctx.T) == ctx.a[..., None]                      # (8)
        return (xp.where(winner, dy[..., None], dy.dtype.type(0)),)


__all__ = ["MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalMaxPool", "pool_geometry"]
