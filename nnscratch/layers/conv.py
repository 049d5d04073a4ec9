"""Convolution layers: Conv1D, Conv2D, Conv2DTranspose (channels first, PyTorch's layout).

Math: nnscratch/functions/conv.py and docs/derivations/conv.md.

    conv = Conv2D(1, 16, kernel_size=3, padding="same")   # x (N, 1, 50, 50) -> (N, 16, 50, 50)
    y = conv(x); dx = conv.backward(dy)                    # adds into conv.weight.grad / bias.grad

Set ``layer.input_grad = False`` on a first layer fed with data: its backward then skips the
input gradient (the col2im and one of the three products), and returns None.
"""
from __future__ import annotations

from .. import init as initializers
from .. import threads
from ..functions.base import Context
from ..functions.conv import Conv1D as Conv1DFn
from ..functions.conv import Conv2D as Conv2DFn
from ..functions.conv import Conv2DTranspose as Conv2DTransposeFn
from ..functions.conv import _pair, conv_output_size, conv_pads, conv_transpose_output_size
from .base import Layer, Parameter, is_grad_enabled


def _init_params(layer, shape, fan_in, bias, init):
    layer.weight = Parameter(initializers.get_initializer(init)(shape))
    if not bias:
        layer.bias = None
        return
    n_out = shape[1] if isinstance(layer, Conv2DTranspose) else shape[0]
    if init == "uniform_fan_in":  # PyTorch's default bias: U(+-1/sqrt(fan_in))
        b = initializers.uniform_fan_in((n_out,), fan_in=fan_in)
    else:
        b = initializers.zeros((n_out,))
    layer.bias = Parameter(b)


class _ConvBase(Layer):
    fn: type = Conv2DFn
    spatial_dims = 2

    def _check(self, x):
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            dims = ", ".join(["H", "W"] if self.spatial_dims == 2 else ["L"])
            raise ValueError(
                f"{self.label}: expected input of shape (N, {self.in_channels}, {dims}), got "
                f"{tuple(x.shape)}"
            )

    def _options(self) -> dict:
        return {"stride": self.stride, "padding": self.padding}

    def forward(self, x):
        self._check(x)
        threads.update()  # the BLAS thread policy: re-checks the load at most every few seconds
        # under no_grad() no gradient is wanted: the function then keeps nothing for backward
        needs = (self.input_grad, True, True) if is_grad_enabled() else (False, False, False)
        ctx = Context(needs_input_grad=needs)
        try:
            y = self.fn.forward(ctx, x, self.weight.data,
                                None if self.bias is None else self.bias.data, **self._options())
        except ValueError as exc:  # geometry errors: name the layer
            raise ValueError(f"{self.label}: {exc}") from None
        self.save_context(ctx)
        return y

    def backward(self, dy):
        ctx = self.pop_context()
        dx, dW, db = self.fn.backward(ctx, dy)
        self.weight.accumulate(dW)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}, bias={self.bias is not None}")


class Conv2D(_ConvBase):
    """2-D convolution (cross-correlation) with stride and zero padding.

    Shapes: x (N, in_channels, H, W) -> y (N, out_channels, OH, OW),
            OH = (H + 2 ph - kh) // sh + 1; weight (out, in, kh, kw), bias (out,).
    ``padding``: int, (ph, pw), (top, bottom, left, right), 'valid' or 'same' (stride 1).
    ``init`` names the weight initialiser (nnscratch.init); fans count the kernel's elements.
    """

    fn = Conv2DFn

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, init: str = "glorot_uniform"):
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size")
        if min(in_channels, out_channels, kh, kw) < 1:
            raise ValueError(f"Conv2D needs positive sizes, got in={in_channels}, "
                             f"out={out_channels}, kernel={(kh, kw)}")
        conv_pads(padding, (kh, kw), _pair(stride, "stride"))  # validate now, not at first call
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), _pair(stride, "stride"), padding
        _init_params(self, (out_channels, in_channels, kh, kw), in_channels * kh * kw, bias, init)


class Conv1D(_ConvBase):
    """1-D convolution over (N, C, L), e.g. over the time axis of a spectrogram's mel bands.

    Shapes: x (N, in_channels, L) -> y (N, out_channels, OL), OL = (L + 2 p - k) // s + 1;
            weight (out, in, k), bias (out,). ``padding``: int, 'valid' or 'same' (stride 1).
    """

    fn = Conv1DFn
    spatial_dims = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding=0, bias: bool = True, init: str = "glorot_uniform"):
        super().__init__()
        if min(in_channels, out_channels, kernel_size, stride) < 1:
            raise ValueError(f"Conv1D needs positive sizes, got in={in_channels}, "
                             f"out={out_channels}, kernel={kernel_size}, stride={stride}")
        if padding == "same" and stride != 1:
            raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), padding
        _init_params(self, (out_channels, in_channels, kernel_size), in_channels * kernel_size,
                     bias, init)


class Conv2DTranspose(_ConvBase):
    """Transposed 2-D convolution, the adjoint of Conv2D (PyTorch's ConvTranspose2d).

    Shapes: x (N, in_channels, H, W) -> y (N, out_channels, H_out, W_out),
            H_out = (H - 1) sh - 2 ph + kh + oph; weight (in, out, kh, kw), bias (out,).
    With stride 2, kernel 4 (or 3 with output_padding 1) and padding 1 it doubles H and W:
    the upsampling half of an auto-encoder.
    """

    fn = Conv2DTransposeFn

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, bias: bool = True, init: str = "glorot_uniform"):
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size")
        sh, sw = _pair(stride, "stride")
        oph, opw = _pair(output_padding, "output_padding")
        if min(in_channels, out_channels, kh, kw, sh, sw) < 1:
            raise ValueError(f"Conv2DTranspose needs positive sizes, got in={in_channels}, "
                             f"out={out_channels}, kernel={(kh, kw)}, stride={(sh, sw)}")
        if not (0 <= oph < sh and 0 <= opw < sw):
            raise ValueError(f"Conv2DTranspose: output_padding {(oph, opw)} must be smaller than "
                             f"the stride {(sh, sw)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = (kh, kw), (sh, sw)
        self.padding, self.output_padding = _pair(padding, "padding"), (oph, opw)
        # PyTorch computes the fans of a transposed weight (in, out, kh, kw) the same way, so
        # fan_in = out * kh * kw here.
        _init_params(self, (in_channels, out_channels, kh, kw), out_channels * kh * kw, bias, init)

    def _options(self) -> dict:
        return {"stride": self.stride, "padding": self.padding,
                "output_padding": self.output_padding}

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """(H_out, W_out) for an input of spatial size (h, w)."""
        return (conv_transpose_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0],
                                             self.output_padding[0]),
                conv_transpose_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1],
                                             self.output_padding[1]))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", output_padding={self.output_padding}"


def conv_output_shape(layer: Conv2D, h: int, w: int) -> tuple[int, int]:
    """(OH, OW) of a Conv2D layer for an input of spatial size (h, w) (for sizing Dense layers)."""
    pt, pb, pl, pr = conv_pads(layer.padding, layer.kernel_size, layer.stride)
    return (conv_output_size(h, layer.kernel_size[0], layer.stride[0], pt, pb),
            conv_output_size(w, layer.kernel_size[1], layer.stride[1], pl, pr))


__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose", "conv_output_shape"]
