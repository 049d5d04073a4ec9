"""The convolutions' CPU fast path against the plain NumPy path (the reference).

The fast path (nnscratch/functions/conv.py's ``_forward_fast`` / ``_backward_fast`` with the
numba kernels of nnscratch/kernels/cpu/conv.py) must give the plain path's outputs and every
gradient: float32 and float64, with and without bias, strides, asymmetric and 'same' paddings,
odd sizes, non-contiguous inputs and upstream gradients, one worker or two (the chunks of
examples shared among threads), chunks that do not divide the batch, and ``input_grad=False``.
Also: the kernels alone against ``im2col`` / ``col2im``, and the workspace recycling the
columns between steps.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnscratch import threads
from nnscratch.functions import conv as C
from nnscratch.functions.base import Context
from nnscratch.layers.conv import Conv1D, Conv2D, Conv2DTranspose

pytest.importorskip("numba")

F32 = {"rtol": 2e-5, "atol": 2e-5}
F64 = {"rtol": 1e-12, "atol": 1e-12}


#: the fixtures (environment, chunk size) stay the same for every example of a test
FIXTURES_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _tol(dtype):
    return F32 if dtype == np.float32 else F64


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request, monkeypatch):
    """NNSCRATCH_THREADS=1 or 2: the chunks run on the caller alone, or on two threads (even for
    the tests' small convolutions: any size is worth a second thread here)."""
    monkeypatch.setenv(threads.ENV, str(request.param))
    monkeypatch.setattr(threads, "MIN_FLOPS_PER_THREAD", 1.0)
    threads.reset()
    seen = []
    parallel_for = threads.parallel_for

    def spy(body, n_items, n_workers):
        seen.append(min(n_workers, n_items))
        parallel_for(body, n_items, n_workers)

    monkeypatch.setattr(threads, "parallel_for", spy)
    yield request.param
    if request.param == 2:  # the two-worker path did run (wherever there were two chunks)
        assert 2 in seen
    monkeypatch.delenv(threads.ENV)
    threads.reset()


@pytest.fixture
def small_chunks(monkeypatch):
    """A few examples per chunk, so that chunks and workers split the batch unevenly."""
    monkeypatch.setattr(C, "CHUNK_BYTES", 1)  # one example per chunk


def _noncontiguous(a):
    """The same values seen through other strides (a transposed copy, transposed back)."""
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return np.ascontiguousarray(a.transpose(axes)).transpose(axes)


def _both_paths(fn, inputs, opts, dy, monkeypatch, needs=(True, True, True)):
    """[y, *grads] from the fast path and from the plain path."""
    out = []
    for fused in ("1", "0"):
        monkeypatch.setenv("NNSCRATCH_FUSED", fused)
        ctx = Context(needs_input_grad=needs)
        y = fn.forward(ctx, *inputs, **opts)
        assert ctx.fast == (fused == "1")
        grads = fn.backward(ctx, dy(y) if callable(dy) else dy)
        out.append([y, *grads])
    return out


def _compare(fast, plain, dtype):
    for name, a, b in zip(["y", "dx", "dW", "db"], fast, plain):
        if b is None:
            assert a is None, name
            continue
        assert a.shape == b.shape and a.dtype == b.dtype == dtype, name
        np.testing.assert_allclose(a, b, err_msg=name, **_tol(dtype))


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------
@st.composite
def conv2d_cases(draw):
    n, cin, cout = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kinds = ["int", "pair", "four", "valid"] + (["same"] if (sh, sw) == (1, 1) else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        padding = draw(st.integers(0, 2))
    elif kind == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    elif kind == "four":
        padding = tuple(draw(st.integers(0, 3)) for _ in range(4))
    else:
        padding = kind
    pads = C.conv_pads(padding, (kh, kw), (sh, sw))
    H = draw(st.integers(max(1, kh - pads[0] - pads[1]), 9))
    W = draw(st.integers(max(1, kw - pads[2] - pads[3]), 9))
    return (n, cin, H, W), (cout, cin, kh, kw), {"stride": (sh, sw), "padding": padding}


@st.composite
def conv_transpose_cases(draw):
    n, cin, cout = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw, sh, sw = (draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)),
                      draw(st.integers(1, 3)))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    oph, opw = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    if (H - 1) * sh - 2 * ph + kh + oph < 1:
        ph = 0
    if (W - 1) * sw - 2 * pw + kw + opw < 1:
        pw = 0
    return ((n, cin, H, W), (cin, cout, kh, kw),
            {"stride": (sh, sw), "padding": (ph, pw), "output_padding": (oph, opw)})


def _draw_arrays(seed, x_shape, w_shape, n_bias, dtype):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-2, 2, x_shape).astype(dtype), rng.uniform(-2, 2, w_shape).astype(dtype),
            rng.uniform(-2, 2, n_bias).astype(dtype))


def _upstream(seed, dtype, contiguous):
    def dy(y):
        g = np.random.default_rng(seed + 1).uniform(-1, 1, y.shape).astype(dtype)
        return g if contiguous else _noncontiguous(g)
    return dy


# ----------------------------------------------------------------------------------------------
# Functions: fast path == plain path
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@FIXTURES_OK
@given(case=conv2d_cases(), bias=st.booleans(), input_grad=st.booleans(),
       seed=st.integers(0, 2**16))
def test_conv2d_fast_matches_plain(workers, small_chunks, monkeypatch, dtype, contiguous, case,
                                   bias, input_grad, seed):
    x_shape, w_shape, opts = case
    x, w, b = _draw_arrays(seed, x_shape, w_shape, w_shape[0], dtype)
    if not contiguous:
        x, w = _noncontiguous(x), _noncontiguous(w)
    fast, plain = _both_paths(C.Conv2D, [x, w, b if bias else None], opts,
                              _upstream(seed, dtype, contiguous), monkeypatch,
                              needs=(input_grad, True, True))
    _compare(fast, plain, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@FIXTURES_OK
@given(case=conv_transpose_cases(), bias=st.booleans(), input_grad=st.booleans(),
       seed=st.integers(0, 2**16))
def test_conv_transpose_fast_matches_plain(workers, small_chunks, monkeypatch, dtype, contiguous,
                                           case, bias, input_grad, seed):
    x_shape, w_shape, opts = case
    x, w, b = _draw_arrays(seed, x_shape, w_shape, w_shape[1], dtype)
    if not contiguous:
        x, w = _noncontiguous(x), _noncontiguous(w)
    fast, plain = _both_paths(C.Conv2DTranspose, [x, w, b if bias else None], opts,
                              _upstream(seed, dtype, contiguous), monkeypatch,
                              needs=(input_grad, True, True))
    _compare(fast, plain, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("k, stride, padding", [(3, 1, "same"), (4, 1, "same"), (5, 2, 2),
                                                (1, 3, 0), (3, 2, (0, 2))])
def test_conv1d_fast_matches_plain(workers, small_chunks, monkeypatch, dtype, contiguous, k, stride,
                                   padding):
    x, w, b = _draw_arrays(3, (3, 4, 17), (5, 4, k), 5, dtype)
    if not contiguous:
        x = np.ascontiguousarray(x[:, :, ::-1])[:, :, ::-1]  # negative strides
        w = _noncontiguous(w)
    fast, plain = _both_paths(C.Conv1D, [x, w, b], {"stride": stride, "padding": padding},
                              _upstream(3, dtype, contiguous), monkeypatch)
    _compare(fast, plain, dtype)


def test_big_batch_layers_match_plain_path(workers, monkeypatch):
    """The benchmark's shapes (smaller batch): several chunks per worker, real cache sizes."""
    rng = np.random.default_rng(0)
    for layer, shape in [(Conv2D(16, 32, 3, padding=1), (12, 16, 25, 25)),
                         (Conv2D(1, 16, 3, padding=1), (9, 1, 50, 50)),
                         (Conv1D(8, 16, 5, padding="same"), (7, 8, 200)),
                         (Conv2DTranspose(16, 8, 4, stride=2, padding=1), (6, 16, 12, 12))]:
        x = rng.standard_normal(shape).astype(np.float32)
        results = []
        for fused in ("1", "0"):
            monkeypatch.setenv("NNSCRATCH_FUSED", fused)
            y = layer(x)
            dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
            dx = layer.backward(dy)
            results.append([y, dx, layer.weight.grad, layer.bias.grad])
            layer.zero_grad()
        for name, a, b in zip(["y", "dx", "dW", "db"], *results):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=f"{layer} {name}")


# ----------------------------------------------------------------------------------------------
# The kernels against im2col / col2im
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(case=conv2d_cases(), ones_row=st.booleans(), seed=st.integers(0, 2**16))
def test_kernels_match_im2col_and_col2im(dtype, case, ones_row, seed):
    from nnscratch.kernels.cpu.conv import col2im_chunk, im2col_chunk

    x_shape, (_, cin, kh, kw), opts = case
    (sh, sw), pads = opts["stride"], C.conv_pads(opts["padding"], (kh, kw), opts["stride"])
    out_hw = C._check_geometry("test", x_shape, (kh, kw), (sh, sw), pads)
    N, R, P = x_shape[0], cin * kh * kw, out_hw[0] * out_hw[1]
    x = np.random.default_rng(seed).uniform(-2, 2, x_shape).astype(dtype)
    ref = C.im2col(x, (kh, kw), (sh, sw), pads, out_hw).reshape(R, N, P).transpose(1, 0, 2)
    cols = np.full((N, R + ones_row, P), np.nan, dtype)
    for n in range(N):  # one example per call, and the rest in one call
        im2col_chunk(x, n, kh, kw, sh, sw, pads[0], pads[2], *out_hw, cols[n:n + 1])
    np.testing.assert_array_equal(cols[:, :R], ref)
    if ones_row:
        np.testing.assert_array_equal(cols[:, R], 1)
    dcols = np.random.default_rng(seed + 1).uniform(-1, 1, (N, R, P)).astype(dtype)
    bias = np.random.default_rng(seed + 2).uniform(-1, 1, cin).astype(dtype)
    dx = np.full(x_shape, np.nan, dtype)
    col2im_chunk(dcols, 0, kh, kw, sh, sw, pads[0], pads[2], *out_hw, bias, dx)
    dx_ref = C.col2im(np.ascontiguousarray(dcols.transpose(1, 0, 2)).reshape(R, N * P), x_shape,
                      (kh, kw), (sh, sw), pads, out_hw) + bias[None, :, None, None]
    np.testing.assert_allclose(dx, dx_ref, **_tol(dtype))


# ----------------------------------------------------------------------------------------------
# Workspace, switches and dispatch
# ----------------------------------------------------------------------------------------------
def test_workspace_recycles_the_columns_between_steps(monkeypatch):
    monkeypatch.setattr(C, "workspace", C.Workspace())
    layer = Conv2D(3, 4, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    ids = []
    for _ in range(3):
        y = layer(x)
        ids.append(id(layer._saved[-1].cols))
        layer.backward(np.ones_like(y))
        assert layer._saved == []
    assert ids[0] == ids[1] == ids[2]  # the same buffer served every step
    assert C.workspace._bytes > 0


def test_no_grad_forward_keeps_no_columns(monkeypatch, small_chunks):
    import nnscratch as nn

    monkeypatch.setattr(C, "workspace", C.Workspace())
    layer = Conv2D(3, 4, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    y_grad = layer(x)
    layer.discard_context()
    with nn.no_grad():
        y = layer(x)
    np.testing.assert_allclose(y, y_grad, rtol=1e-6)
    # one example per chunk: under no_grad only chunk-sized buffers were taken, and given back
    assert list(C.workspace._free) == [((1, 28, 64), np.dtype(np.float32).str)]


def test_fused_off_and_other_dtypes_take_the_plain_path(monkeypatch):
    x = np.ones((2, 3, 5, 5), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    ctx = Context()
    C.Conv2D.forward(ctx, x, w)
    assert ctx.fast
    ctx = Context()
    C.Conv2D.forward(ctx, x, w.astype(np.float64))  # mixed dtypes: the plain path decides
    assert not ctx.fast
    ctx = Context()
    C.Conv2D.forward(ctx, x.astype(np.float16), w.astype(np.float16))
    assert not ctx.fast
    monkeypatch.setenv("NNSCRATCH_FUSED", "0")
    ctx = Context()
    C.Conv2D.forward(ctx, x, w)
    assert not ctx.fast


def test_backward_twice_raises_on_the_fast_path():
    ctx = Context()
    y = C.Conv2D.forward(ctx, np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)), np.ones(4))
    assert ctx.fast
    C.Conv2D.backward(ctx, np.ones_like(y))
    with pytest.raises(RuntimeError, match="twice"):
        C.Conv2D.backward(ctx, np.ones_like(y))
