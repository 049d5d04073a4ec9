"""Gradient checks of the convolution, pooling, upsampling and reshape functions and layers.

float64 five-point central differences (nnscratch.testing), worst relative error <= 1e-6, on
shapes, strides, paddings and kernel sizes drawn by hypothesis (odd sizes included); the
convolutions on both their paths (the CPU fast path and the plain one; the fast path is also
compared with the plain one directly in test_conv_fast_paths.py). Also: numba max pooling
against the plain NumPy path (float32, non-contiguous inputs), shape errors that name the layer,
the input_grad switch, and the double-backward guard.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import nnscratch as nn
from nnscratch.functions import conv as C
from nnscratch.functions import pool as P
from nnscratch.functions.base import Context
from nnscratch.functions.reshape import Flatten as FlattenFn
from nnscratch.functions.reshape import Reshape as ReshapeFn
from nnscratch.functions.upsampling import UpSampling2D as UpFn
from nnscratch.layers.conv import Conv1D, Conv2D, Conv2DTranspose, conv_output_shape
from nnscratch.layers.pool import AvgPool1D, AvgPool2D, GlobalMaxPool, MaxPool1D, MaxPool2D
from nnscratch.layers.reshape import Flatten, Reshape
from nnscratch.layers.upsampling import UpSampling2D
from nnscratch.testing import check_backward, check_layer
from strategies import arrays

small = st.integers(1, 3)


def _f64(layer):
    return layer.to(dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------------------------
@st.composite
def conv2d_cases(draw, max_side=6):
    """(x, W, b, options): strides 1-3, paddings int/pair/'same'/'valid', kernels 1-3, odd sizes."""
    n, cin, cout = draw(st.integers(1, 2)), draw(small), draw(small)
    kh, kw = draw(small), draw(small)
    sh, sw = draw(small), draw(small)
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"] if (sh, sw) == (1, 1)
                                else ["int", "pair", "valid"]))
    if kind == "int":
        padding = draw(st.integers(0, 2))
        ph = pw = padding
    elif kind == "pair":
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        padding = (ph, pw)
    else:
        padding = kind
        ph = pw = (kh // 2 if kind == "same" else 0)
    H = draw(st.integers(max(1, kh - 2 * ph), max_side))
    W = draw(st.integers(max(1, kw - 2 * pw), max_side))
    x = draw(arrays((n, cin, H, W)))
    w = draw(arrays((cout, cin, kh, kw)))
    b = draw(st.one_of(st.none(), arrays((cout,))))
    return x, w, b, {"stride": (sh, sw), "padding": padding}


@st.composite
def conv1d_cases(draw):
    n, cin, cout, k, s = (draw(st.integers(1, 2)), draw(small), draw(small),
                          draw(st.integers(1, 4)), draw(small))
    padding = draw(st.sampled_from(["same", 0, 1, 2]) if s == 1 else st.integers(0, 2))
    p = (k - 1) // 2 if padding == "same" else padding
    L = draw(st.integers(max(1, k - 2 * p), 9))
    return (draw(arrays((n, cin, L))), draw(arrays((cout, cin, k))),
            draw(st.one_of(st.none(), arrays((cout,)))), {"stride": s, "padding": padding})


@st.composite
def conv_transpose_cases(draw):
    n, cin, cout = draw(st.integers(1, 2)), draw(small), draw(small)
    kh, kw, sh, sw = draw(small), draw(small), draw(small), draw(small)
    ph, pw = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    oph, opw = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # keep the output non-empty: (H - 1) sh - 2 ph + kh + oph >= 1
    if (H - 1) * sh - 2 * ph + kh + oph < 1:
        ph = 0
    if (W - 1) * sw - 2 * pw + kw + opw < 1:
        pw = 0
    return (draw(arrays((n, cin, H, W))), draw(arrays((cin, cout, kh, kw))),
            draw(st.one_of(st.none(), arrays((cout,)))),
            {"stride": (sh, sw), "padding": (ph, pw), "output_padding": (oph, opw)})


@st.composite
def distinct_values(draw, shape):
    """float64 values 0.05 apart in random order: no ties, so max pooling is differentiable
    (every stencil step of 2e-3 keeps the same winner)."""
    size = int(np.prod(shape))
    perm = draw(st.permutations(range(size)))
    return (np.array(perm, dtype=np.float64).reshape(shape) - size / 2) * 0.05


@st.composite
def pool_cases(draw, ndim=2):
    n, c = draw(st.integers(1, 2)), draw(small)
    if ndim == 1:
        k = draw(st.integers(1, 4))
        s = draw(st.one_of(st.none(), st.integers(1, 3)))
        p = draw(st.integers(0, k // 2))
        L = draw(st.integers(max(1, k - 2 * p), 9))
        return (n, c, L), {"kernel_size": k, "stride": s, "padding": p}
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(small, small)))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 7))
    W = draw(st.integers(max(1, kw - 2 * pw), 7))
    return (n, c, H, W), {"kernel_size": (kh, kw), "stride": stride, "padding": (ph, pw)}


# ----------------------------------------------------------------------------------------------
# Functions
# ----------------------------------------------------------------------------------------------
CONV_PATHS = pytest.mark.parametrize("fused", ["1", "0"], ids=["fast-path", "plain-path"])


def _check_conv(fn, inputs, opts, fused):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNSCRATCH_FUSED", fused)
        check_backward(fn, inputs, opts)


@CONV_PATHS
@given(case=conv2d_cases())
def test_conv2d_function_gradients(fused, case):
    x, w, b, opts = case
    _check_conv(C.Conv2D, [x, w, b], opts, fused)


@CONV_PATHS
@given(case=conv1d_cases())
def test_conv1d_function_gradients(fused, case):
    x, w, b, opts = case
    _check_conv(C.Conv1D, [x, w, b], opts, fused)


@CONV_PATHS
@given(case=conv_transpose_cases())
def test_conv2d_transpose_function_gradients(fused, case):
    x, w, b, opts = case
    _check_conv(C.Conv2DTranspose, [x, w, b], opts, fused)


@given(case=pool_cases(), data=st.data())
def test_maxpool2d_function_gradients(case, data):
    shape, opts = case
    check_backward(P.MaxPool2D, [data.draw(distinct_values(shape))], opts)


@given(case=pool_cases())
def test_avgpool2d_function_gradients(case):
    shape, opts = case
    x = np.random.default_rng(0).uniform(-2, 2, shape)
    check_backward(P.AvgPool2D, [x], opts)


@given(case=pool_cases(ndim=1), data=st.data())
def test_pool1d_function_gradients(case, data):
    shape, opts = case
    x = data.draw(distinct_values(shape))
    check_backward(P.MaxPool1D, [x], opts)
    check_backward(P.AvgPool1D, [x], opts)


@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple), data=st.data())
def test_global_max_pool_gradients(shape, data):
    """(6)-(8): any number of leading axes, any T >= 1 (T = 1: the identity)."""
    x = data.draw(distinct_values(shape))
    check_backward(P.GlobalMaxPool, [x], {})
    check_layer(GlobalMaxPool(), [x])
    np.testing.assert_array_equal(GlobalMaxPool()(x), x.max(-1))


def test_global_max_pool_takes_any_number_of_frames_and_refuses_a_scalar_row():
    layer = GlobalMaxPool()
    for T in (1, 5, 13):
        assert layer(np.zeros((2, 3, 4, T), np.float32)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="GlobalMaxPool.*T >= 1"):
        layer(np.zeros((2, 3, 0), np.float32))
    with pytest.raises(ValueError, match="GlobalMaxPool"):
        layer(np.zeros(4, np.float32))


@given(x=arrays(shape=st.tuples(st.integers(1, 2), small, st.integers(1, 4), st.integers(1, 4))),
       scale=st.one_of(small, st.tuples(small, small)))
def test_upsampling_function_gradients(x, scale):
    check_backward(UpFn, [x], {"scale": scale})
    y = UpFn.forward(Context(), x, scale=scale)
    sh, sw = (scale, scale) if isinstance(scale, int) else scale
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, sh, axis=2), sw, axis=3))


@given(x=arrays(min_dims=2, max_dims=4))
def test_flatten_and_reshape_function_gradients(x):
    check_backward(FlattenFn, [x])
    check_backward(ReshapeFn, [x], {"shape": (int(np.prod(x.shape[1:])), 1)})


# ----------------------------------------------------------------------------------------------
# Forward references: the im2col products against direct sums
# ----------------------------------------------------------------------------------------------
def _direct_conv2d(x, w, b, stride, pads):
    """y[n,o,oh,ow] = sum_{c,i,j} W[o,c,i,j] xpad[n,c,oh*sh+i,ow*sw+j] + b[o], by loops."""
    xpad = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    N, _, Hp, Wp = xpad.shape
    O, _, kh, kw = w.shape
    sh, sw = stride
    OH, OW = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    y = np.zeros((N, O, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            patch = xpad[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw]
            y[:, :, oh, ow] = np.einsum("ncij,ocij->no", patch, w)
    return y if b is None else y + b[None, :, None, None]


@given(case=conv2d_cases())
def test_conv2d_forward_matches_direct_sum(case):
    x, w, b, opts = case
    pads = C.conv_pads(opts["padding"], w.shape[2:], opts["stride"])
    y = C.Conv2D.forward(Context(), x, w, b, **opts)
    np.testing.assert_allclose(y, _direct_conv2d(x, w, b, opts["stride"], pads), rtol=1e-12,
                               atol=1e-12)


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), y> = <x, conv_transpose(y)> for the same weight: the defining property."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3, 3, 2))  # Conv2D: (out 4, in 3); transposed: (in 4, out 3)
    x = rng.normal(size=(2, 3, 7, 6))
    y = C.Conv2D.forward(Context(), x, w, None, stride=2, padding=1)
    v = rng.normal(size=y.shape)
    # y is (4, 4); back to x's size: (4 - 1) * 2 - 2 + 3 = 7 rows, (4 - 1) * 2 - 2 + 2 = 6 columns
    xt = C.Conv2DTranspose.forward(Context(), v, w, None, stride=2, padding=1)
    assert xt.shape == x.shape
    np.testing.assert_allclose((y * v).sum(), (x * xt).sum(), rtol=1e-12)
    # with x one row taller, the same y: output_padding picks the taller size
    x8 = rng.normal(size=(2, 3, 8, 6))
    assert C.Conv2D.forward(Context(), x8, w, None, stride=2, padding=1).shape == y.shape
    xt8 = C.Conv2DTranspose.forward(Context(), v, w, None, stride=2, padding=1,
                                    output_padding=(1, 0))
    assert xt8.shape == x8.shape
    y8 = C.Conv2D.forward(Context(), x8, w, None, stride=2, padding=1)
    np.testing.assert_allclose((y8 * v).sum(), (x8 * xt8).sum(), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Fast (numba) max pooling against the plain NumPy path
# ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not nn.backend.numba_available(), reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False])
@given(case=pool_cases(), data=st.data())
def test_numba_maxpool_matches_plain_path(case, dtype, contiguous, data):
    shape, opts = case
    x = data.draw(distinct_values(shape)).astype(dtype)
    if not contiguous:  # a transposed view: same values, other strides
        x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    dy = np.random.default_rng(0).normal(
        size=P.MaxPool2D.forward(Context(), x, **opts).shape).astype(dtype)
    results = []
    for fused in ("1", "0"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NNSCRATCH_FUSED", fused)
            ctx = Context()
            y = P.MaxPool2D.forward(ctx, x, **opts)
            (dx,) = P.MaxPool2D.backward(ctx, dy)
        assert y.dtype == dx.dtype == dtype
        results.append((y, dx))
    (y_fast, dx_fast), (y_plain, dx_plain) = results
    np.testing.assert_array_equal(y_fast, y_plain)
    np.testing.assert_allclose(dx_fast, dx_plain, rtol=1e-6, atol=1e-6)


def test_numba_maxpool_ties_go_to_the_first_element(monkeypatch):
    x = np.zeros((1, 1, 4, 4), np.float32)  # every window a tie
    dy = np.arange(1.0, 5.0, dtype=np.float32).reshape(1, 1, 2, 2)
    for fused in ("1", "0"):
        monkeypatch.setenv("NNSCRATCH_FUSED", fused)
        ctx = Context()
        P.MaxPool2D.forward(ctx, x, kernel_size=2)
        (dx,) = P.MaxPool2D.backward(ctx, dy)
        np.testing.assert_array_equal(dx[0, 0, ::2, ::2], dy[0, 0])
        assert dx.sum() == dy.sum()


def test_im2col_col2im_are_adjoint():
    """<im2col(x), c> = <x, col2im(c)>: col2im is the transpose of im2col, equation (6)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 7, 6))
    kernel, stride, pads = (3, 2), (2, 1), (1, 2, 0, 1)
    out_hw = (C.conv_output_size(7, 3, 2, 1, 2), C.conv_output_size(6, 2, 1, 0, 1))
    cols = C.im2col(x, kernel, stride, pads, out_hw)
    c = rng.normal(size=cols.shape)
    np.testing.assert_allclose((cols * c).sum(),
                               (x * C.col2im(c, x.shape, kernel, stride, pads, out_hw)).sum(),
                               rtol=1e-12)


def test_float32_conv_matches_float64():
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=(3, 4, 9, 8)), rng.normal(size=(5, 4, 3, 3)), rng.normal(size=5)
    y64 = C.Conv2D.forward(Context(), x, w, b, padding="same")
    y32 = C.Conv2D.forward(Context(), x.astype(np.float32), w.astype(np.float32),
                           b.astype(np.float32), padding="same")
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Layers: inputs and every parameter
# ----------------------------------------------------------------------------------------------
@given(case=conv2d_cases(), init=st.sampled_from(["glorot_uniform", "he_normal", "uniform_fan_in"]))
def test_conv2d_layer_gradients(case, init):
    x, w, b, opts = case
    layer = _f64(Conv2D(w.shape[1], w.shape[0], w.shape[2:], bias=b is not None, init=init, **opts))
    check_layer(layer, [x])
    assert layer(x).shape[2:] == conv_output_shape(layer, *x.shape[2:])


@given(case=conv1d_cases())
def test_conv1d_layer_gradients(case):
    x, w, b, opts = case
    check_layer(_f64(Conv1D(w.shape[1], w.shape[0], w.shape[2], bias=b is not None, **opts)), [x])


@given(case=conv_transpose_cases())
def test_conv2d_transpose_layer_gradients(case):
    x, w, b, opts = case
    layer = _f64(Conv2DTranspose(w.shape[0], w.shape[1], w.shape[2:], bias=b is not None, **opts))
    check_layer(layer, [x])
    assert layer(x).shape[2:] == layer.output_shape(*x.shape[2:])


@given(case=pool_cases(), data=st.data())
def test_pool2d_layer_gradients(case, data):
    shape, opts = case
    x = data.draw(distinct_values(shape))
    check_layer(MaxPool2D(**opts), [x])
    check_layer(AvgPool2D(**opts), [x])


@given(case=pool_cases(ndim=1), data=st.data())
def test_pool1d_layer_gradients(case, data):
    shape, opts = case
    x = data.draw(distinct_values(shape))
    check_layer(MaxPool1D(**opts), [x])
    check_layer(AvgPool1D(**opts), [x])


@given(x=arrays(shape=st.tuples(st.integers(1, 2), small, st.integers(1, 4), st.integers(1, 4))),
       scale=st.one_of(small, st.tuples(small, small)))
def test_upsampling_flatten_reshape_layer_gradients(x, scale):
    check_layer(UpSampling2D(scale), [x])
    check_layer(Flatten(), [x])
    check_layer(Reshape((x.shape[1] * x.shape[2], x.shape[3])), [x])


@given(data=st.data())
def test_small_cnn_gradients(data):
    """Conv -> ReLU -> MaxPool -> Conv -> Flatten -> Dense, the shape of the digit CNN."""
    x = data.draw(distinct_values((2, 1, 6, 6)))
    with nn.default_dtype(np.float64):
        model = nn.Sequential(Conv2D(1, 2, 3, padding=1), nn.Tanh(), MaxPool2D(2),
                              Conv2D(2, 3, 2, stride=1), nn.Tanh(), Flatten(),
                              nn.Dense(3 * 2 * 2, 4))
    with nn.no_grad():  # keep max pooling away from ties: the top two of each window 0.01 apart
        a = (model[1](model[0](x)).reshape(2, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5)
             .reshape(2, 2, 3, 3, 4))
    top2 = np.sort(a, axis=-1)[..., -2:]
    assume(float((top2[..., 1] - top2[..., 0]).min()) > 0.01)
    check_layer(model, [x])


@given(data=st.data())
def test_small_decoder_gradients(data):
    """Dense -> Reshape -> Conv2DTranspose (x2) -> UpSampling -> Conv2D: an auto-encoder's
    decoder."""
    z = data.draw(arrays((2, 3)))
    with nn.default_dtype(np.float64):
        model = nn.Sequential(nn.Dense(3, 2 * 2 * 2), Reshape((2, 2, 2)), nn.Tanh(),
                              Conv2DTranspose(2, 2, 3, stride=2, padding=1, output_padding=1),
                              nn.Tanh(), UpSampling2D(2), Conv2D(2, 1, 3, padding="same"))
    assert model(z).shape == (2, 1, 8, 8)
    check_layer(model, [z])


# ----------------------------------------------------------------------------------------------
# Errors, guards and switches
# ----------------------------------------------------------------------------------------------
def test_conv_layer_shape_errors_name_the_layer():
    model = nn.Sequential(Conv2D(1, 4, 3), MaxPool2D(2))
    with pytest.raises(ValueError, match=r"Conv2D '0'.*\(N, 1, H, W\).*\(2, 3, 8, 8\)"):
        model(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D '0'.*smaller than the kernel"):
        model(np.zeros((2, 1, 2, 8), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2D.*4-D"):
        MaxPool2D(2)(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv1D.*\(N, 2, L\)"):
        Conv1D(2, 3, 3)(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match="output_padding"):
        Conv2DTranspose(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="same"):
        Conv2D(1, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding"):
        MaxPool2D(2, padding=2)(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="Reshape"):
        Reshape((5, 5))(np.zeros((2, 3, 8), np.float32))


@pytest.mark.parametrize("make", [lambda: Conv2D(2, 3, 3), lambda: Conv2DTranspose(2, 3, 3),
                                  lambda: MaxPool2D(2), lambda: AvgPool2D(2),
                                  lambda: UpSampling2D(2), lambda: Flatten()],
                         ids=["conv2d", "conv_transpose", "maxpool", "avgpool", "upsampling",
                              "flatten"])
def test_backward_twice_raises(make):
    layer = make()
    y = layer(np.ones((1, 2, 4, 4), np.float32))
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError):
        layer.backward(np.ones_like(y))


def test_input_grad_false_skips_dx_but_keeps_parameter_gradients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1, 6, 6)).astype(np.float32)
    a, b = Conv2D(1, 3, 3, padding=1), Conv2D(1, 3, 3, padding=1)
    b.load_state_dict(a.state_dict())
    b.input_grad = False
    dy = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    a(x)
    b(x)
    assert a.backward(dy) is not None and b.backward(dy) is None
    np.testing.assert_allclose(a.weight.grad, b.weight.grad, rtol=1e-6)


def test_layers_default_to_float32_and_keep_it():
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    model = nn.Sequential(Conv2D(1, 2, 3, padding="same"), nn.ReLU(), MaxPool2D(2), Flatten(),
                          nn.Dense(2 * 4 * 4, 3))
    y = model(x)
    assert y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and model[0].weight.grad.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# Every backend: the same numbers on NumPy and (when a GPU is present) CuPy
# ----------------------------------------------------------------------------------------------
def test_ops_on_each_backend_match_the_plain_numpy_reference(xp, monkeypatch):
    """Forward and backward of every op on ``xp`` arrays against the plain float64 NumPy path."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 9, 8))
    w, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    wt = rng.normal(size=(3, 2, 3, 3))
    cases = [
        (C.Conv2D, [x, w, b], {"stride": 2, "padding": 1}),
        (C.Conv2DTranspose, [x, wt, b[:2]], {"stride": 2, "padding": 1, "output_padding": 1}),
        (C.Conv1D, [x[:, :, 0], w[:, :, 0], b], {"padding": "same"}),
        (P.MaxPool2D, [x], {"kernel_size": 2}),
        (P.AvgPool2D, [x], {"kernel_size": 3, "stride": 2, "padding": 1}),
        (UpFn, [x], {"scale": 2}),
    ]

    def run(fn, inputs, opts, mod):
        ctx = Context()
        arrays = [mod.asarray(a) for a in inputs]
        y = fn.forward(ctx, *arrays, **opts)
        dy = mod.asarray(np.linspace(-1, 1, int(np.prod(y.shape))).reshape(y.shape))
        grads = fn.backward(ctx, dy)
        to_np = (lambda a: a.get()) if mod is not np else np.asarray
        return [to_np(y)] + [to_np(g) for g in grads if g is not None]

    for fn, inputs, opts in cases:
        monkeypatch.setenv("NNSCRATCH_FUSED", "0")
        ref = run(fn, inputs, opts, np)
        monkeypatch.setenv("NNSCRATCH_FUSED", "1")
        got = run(fn, inputs, opts, xp)
        for a, r in zip(got, ref):
            np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10, err_msg=fn.__name__)
