"""The fused paths against the plain NumPy path (the reference).

CPU: the numba kernels (nnscratch/kernels/cpu/lstm.py, embedding.py). GPU: the CuPy kernels
(nnscratch/kernels/cuda/lstm.py) against the plain path run on CuPy and on NumPy; these cases come
from the ``xp`` fixture's cupy parameter, marked ``gpu`` and skipped without a device.
float32 comparisons use float32 tolerances (the float32 kernels use a rational tanh within a
few ulp); float64 ones are tight, the float64 kernels using the exact tanh.
Inputs are also given as non-contiguous views (every other time step, a feature slice, a
transposed batch), which the layers and kernels must read correctly.
"""
from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.backend import to_cpu
from nnscratch.functions.base import Context
from nnscratch.functions.embedding import Embedding as EmbeddingFn
from nnscratch.functions.lstm import LSTMCell as LSTMCellFn
from nnscratch.functions.lstm import LSTMLayer as LSTMLayerFn
from nnscratch.layers.lstm import LSTM

numba = pytest.importorskip("numba")

F32 = {"rtol": 2e-4, "atol": 2e-5}
F64 = {"rtol": 1e-11, "atol": 1e-12}


def _fused_path(xp):
    return "numba" if xp is np else "cuda"


def _close(a, b, tol, name):
    np.testing.assert_allclose(to_cpu(a), to_cpu(b), err_msg=name, **tol)


# ----------------------------------------------------------------------------------------------
# The kernels' tanh and sigmoid
# ----------------------------------------------------------------------------------------------
def test_kernel_tanh_and_sigmoid_accuracy():
    from nnscratch.kernels.cpu.lstm import sigmoid_array, tanh_array

    x = np.concatenate([np.linspace(-30, 30, 200_001), [-1e30, 1e30, -1e-30, 0.0, 1e-30]])
    x32 = x.astype(np.float32)
    ref = np.tanh(x32.astype(np.float64))
    out = np.empty_like(x32)
    tanh_array(x32, out)
    assert np.abs(out - ref).max() < 5e-7                     # absolute, on all of R
    big = np.abs(ref) > 1e-3
    assert (np.abs(out - ref)[big] / np.abs(ref)[big]).max() < 5e-7  # and relative, a few ulp
    tiny = (np.abs(x32) < 1e-3) & (x32 != 0)
    np.testing.assert_allclose(out[tiny], ref[tiny], rtol=5e-7)  # no cancellation near 0
    sigmoid_array(x32, out)
    sref = 0.5 * (1 + np.tanh(x32.astype(np.float64) / 2))
    assert np.isfinite(out).all() and np.abs(out - sref).max() < 5e-7
    assert out.min() >= 0.0 and out.max() <= 1.0
    special = np.array([np.nan, np.inf, -np.inf], np.float32)   # NaN must propagate, not clamp
    out3 = np.empty_like(special)
    tanh_array(special, out3)
    assert np.isnan(out3[0]) and out3[1] == 1.0 and out3[2] == -1.0
    sigmoid_array(special, out3)
    assert np.isnan(out3[0]) and out3[1] == 1.0 and out3[2] == 0.0
    out64 = np.empty_like(x)
    tanh_array(x, out64)
    np.testing.assert_allclose(out64, np.tanh(x), rtol=1e-15, atol=1e-300)


# ----------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------
def _cell_inputs(xp, dtype, contiguous, B=5, I=7, H=13, seed=0):
    rng = np.random.default_rng(seed)

    def arr(*shape):
        a = rng.uniform(-2, 2, shape).astype(dtype)
        if not contiguous:  # the same values seen through a strided view
            wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
            wide[..., ::2] = a
            return xp.asarray(wide)[..., ::2]
        return xp.asarray(a)

    W_ih = xp.asarray(rng.uniform(-0.5, 0.5, (4 * H, I)).astype(dtype))
    W_hh = xp.asarray(rng.uniform(-0.5, 0.5, (4 * H, H)).astype(dtype))
    b = xp.asarray(rng.uniform(-0.5, 0.5, 4 * H).astype(dtype))
    return arr(B, I), arr(B, H), arr(B, H), W_ih, W_hh, b, arr(B, H), arr(B, H)


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_cell_matches_plain(xp, dtype, contiguous):
    x, h, c, W_ih, W_hh, b, dh, dc = _cell_inputs(xp, dtype, contiguous)
    tol = F32 if dtype == np.float32 else F64
    outs = {}
    for path in ("plain", _fused_path(xp)):
        ctx = Context()
        h_new, c_new = LSTMCellFn.forward(ctx, x, h, c, W_ih, W_hh, b, path=path)
        grads = LSTMCellFn.backward(ctx, dh, dc)
        outs[path] = (h_new, c_new) + tuple(grads)
        assert h_new.dtype == dtype and grads[3].dtype == dtype
    names = ["h", "c", "dx", "dh_prev", "dc_prev", "dW_ih", "dW_hh", "db"]
    for name, a, b_ in zip(names, outs["plain"], outs[_fused_path(xp)]):
        _close(b_, a, tol, name)


# ----------------------------------------------------------------------------------------------
# One layer over a sequence
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_layer_matches_plain(xp, dtype, masked, reverse):
    rng = np.random.default_rng(1)
    T, B, I, H = 6, 4, 5, 9
    x = xp.asarray(rng.uniform(-2, 2, (T, B, I)).astype(dtype))
    h0, c0 = (xp.asarray(rng.uniform(-1, 1, (B, H)).astype(dtype)) for _ in range(2))
    W_ih = xp.asarray(rng.uniform(-0.6, 0.6, (4 * H, I)).astype(dtype))
    W_hh = xp.asarray(rng.uniform(-0.6, 0.6, (4 * H, H)).astype(dtype))
    b = xp.asarray(rng.uniform(-0.6, 0.6, 4 * H).astype(dtype))
    mask = None
    if masked:
        m = (rng.uniform(size=(T, B)) > 0.3).astype(dtype)
        m[:, 0] = 0  # a row that is all padding keeps its initial state
        mask = xp.asarray(m)
    # dy as a strided view: one direction's half of a bidirectional output gradient
    dy = xp.asarray(rng.normal(size=(T, B, 2 * H)).astype(dtype))[:, :, H:]
    dh_n, dc_n = (xp.asarray(rng.normal(size=(B, H)).astype(dtype)) for _ in range(2))
    tol = F32 if dtype == np.float32 else F64
    outs = {}
    for path in ("plain", _fused_path(xp)):
        ctx = Context()
        y, h_n, c_n = LSTMLayerFn.forward(ctx, x, h0, c0, W_ih, W_hh, b, mask=mask,
                                          reverse=reverse, path=path)
        y = y.copy()
        grads = LSTMLayerFn.backward(ctx, dy, dh_n, dc_n)
        outs[path] = (y, h_n, c_n) + tuple(grads)
    names = ["y", "h_n", "c_n", "dx", "dh0", "dc0", "dW_ih", "dW_hh", "db"]
    for name, a, b_ in zip(names, outs["plain"], outs[_fused_path(xp)]):
        _close(b_, a, tol, name)
    if masked:  # the all-padding row: state carried through, zero outputs
        _close(outs["plain"][1][0], h0[0], F64, "h_n of an empty row")
        assert float(abs(outs[_fused_path(xp)][0][:, 0]).max()) == 0.0


def test_layer_without_output_gradient_matches(xp):
    """dy = None (only the final state feeds the loss, an encoder): both paths agree."""
    rng = np.random.default_rng(2)
    T, B, I, H = 5, 3, 4, 6
    args = [xp.asarray(rng.uniform(-1, 1, s).astype(np.float32)) for s in
            [(T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,)]]
    dh_n = xp.asarray(rng.normal(size=(B, H)).astype(np.float32))
    res = []
    for path in ("plain", _fused_path(xp)):
        ctx = Context()
        LSTMLayerFn.forward(ctx, *args, path=path)
        res.append(LSTMLayerFn.backward(ctx, None, dh_n, None))
    for a, b_ in zip(*res):
        _close(b_, a, F32, "grad")


# ----------------------------------------------------------------------------------------------
# The whole layer: stacked, bidirectional, masked, non-contiguous inputs
# ----------------------------------------------------------------------------------------------
def _run_lstm(x, state, mask, dy, dstate, seed, fused, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_FUSED", "1" if fused else "0")
    nn.manual_seed(seed)
    lstm = LSTM(x.shape[-1], 11, num_layers=2, bidirectional=True, forget_bias=1.0)
    y, (h_n, c_n) = lstm(x, state, mask=mask)
    dx, (dh0, dc0) = lstm.backward(dy, dstate)
    grads = {n: p.grad for n, p in lstm.named_parameters()}
    return dict(y=y, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0, **grads)


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
def test_fused_lstm_matches_plain_float32(device, xp, contiguous, monkeypatch):
    rng = np.random.default_rng(3)
    B, T, I, H = 4, 9, 6, 11
    x = rng.uniform(-2, 2, (T, B, 2 * I)).astype(np.float32)
    if contiguous:
        x = np.ascontiguousarray(x.transpose(1, 0, 2)[:, :, :I])
    else:
        x = x.transpose(1, 0, 2)[:, :, ::2]       # (B, T, I): transposed and strided
        assert not x.flags.c_contiguous
    mask = np.arange(T)[None, :] < np.array([9, 5, 1, 7])[:, None]
    state = tuple(rng.uniform(-1, 1, (4, B, H)).astype(np.float32) for _ in range(2))
    dy = rng.normal(size=(B, T, 2 * H)).astype(np.float32)
    dstate = tuple(rng.normal(size=(4, B, H)).astype(np.float32) for _ in range(2))
    x, dy = xp.asarray(x), xp.asarray(dy)
    if not contiguous:
        dy = xp.asarray(np.asfortranarray(to_cpu(dy)))
    plain = _run_lstm(x, state, mask, dy, dstate, 8, False, monkeypatch)
    fused = _run_lstm(x, state, mask, dy, dstate, 8, True, monkeypatch)
    for name in plain:
        _close(fused[name], plain[name], F32, name)


def test_fused_folded_embedding_matches_plain_float32(device, xp, monkeypatch):
    """The embedding folded into the first layer (gather of the projected table, scatter-add of
    dA: lstm.md (22)-(24)) on the fused path against the plain one."""
    from nnscratch.layers.embedding import Embedding

    rng = np.random.default_rng(9)
    B, T, V, I, H = 5, 8, 11, 6, 9
    ids = rng.integers(0, V, size=(B, T))
    dy = xp.asarray(rng.normal(size=(B, T, 2 * H)).astype(np.float32))
    res = []
    for flag in ("0", "1"):
        monkeypatch.setenv("NNSCRATCH_FUSED", flag)
        nn.manual_seed(10)
        emb = Embedding(V, I, padding_idx=1)
        lstm = LSTM(I, H, num_layers=2, bidirectional=True)
        y, (h_n, _) = lstm(ids, embedding=emb)
        lstm.backward(dy)
        res.append([y, h_n, emb.weight.grad] + [p.grad for p in lstm.parameters()])
    for k, (a, b_) in enumerate(zip(*res)):
        _close(b_, a, F32, f"output {k}")


def test_step_matches_forward_on_both_paths(device, xp, monkeypatch):
    """Stateful stepping (fused or plain) gives the outputs of one forward over the sequence."""
    rng = np.random.default_rng(4)
    B, T, I, H = 2, 6, 3, 7
    x = xp.asarray(rng.uniform(-1, 1, (B, T, I)).astype(np.float32))
    results = []
    for flag in ("0", "1"):
        monkeypatch.setenv("NNSCRATCH_FUSED", flag)
        nn.manual_seed(5)
        lstm = LSTM(I, H, num_layers=2)
        with nn.no_grad():
            y, (h_n, c_n) = lstm(x)
            state, ys = None, []
            for t in range(T):
                y_t, state = lstm.step(x[:, t], state)
                ys.append(y_t)
        _close(xp.stack(ys, axis=1), y, F32, "step outputs")
        _close(state[0], h_n, F32, "h_n")
        _close(state[1], c_n, F32, "c_n")
        results.append(y)
    _close(results[1], results[0], F32, "fused vs plain")


# ----------------------------------------------------------------------------------------------
# Embedding: numba scatter-add against add.at
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pad", [None, 3])
def test_embedding_fused_backward_matches_plain(pad):
    rng = np.random.default_rng(6)
    idx = rng.integers(0, 10, size=(7, 33))
    W = rng.normal(size=(10, 5)).astype(np.float32)
    dy = rng.normal(size=(7, 33, 5)).astype(np.float32)
    res = []
    for path in ("plain", "numba"):
        ctx = Context()
        EmbeddingFn.forward(ctx, idx, W, padding_idx=pad, path=path)
        res.append(EmbeddingFn.backward(ctx, dy)[1])
    np.testing.assert_allclose(res[1], res[0], rtol=1e-5, atol=1e-5)
    if pad is not None:
        assert (res[1][pad] == 0).all()


def test_embedding_on_device_matches_numpy(device, xp):
    from nnscratch.layers.embedding import Embedding

    rng = np.random.default_rng(7)
    idx = rng.integers(0, 12, size=(4, 9))
    dy = rng.normal(size=(4, 9, 6)).astype(np.float32)
    nn.manual_seed(1)
    emb = Embedding(12, 6, padding_idx=0)
    w = to_cpu(emb.weight.data).copy()
    y = emb(idx)                      # NumPy ids are moved to the layer's device
    emb.backward(xp.asarray(dy))
    ref = np.zeros_like(w)
    np.add.at(ref, idx.reshape(-1), dy.reshape(-1, 6))
    ref[0] = 0
    _close(y, w[idx], F64, "y")
    _close(emb.weight.grad, ref, {"rtol": 1e-5, "atol": 1e-5}, "dW")


# ----------------------------------------------------------------------------------------------
# The CPU workspace that recycles the fused path's buffers
# ----------------------------------------------------------------------------------------------
def test_workspace_is_bounded_and_recycles():
    from nnscratch.functions.lstm import Workspace

    w = Workspace(max_bytes=1000)
    a, b = np.empty(100, np.float32), np.empty(100, np.float32)      # 400 bytes each
    w.give(a, b, np.empty(10, np.float32)[::2])                        # views are never kept
    assert w.take((100,), np.float32) is b and w.take((100,), np.float32) is a
    assert w.take((100,), np.float32) is not a                         # empty: a fresh array
    w.give(a, b, np.empty(50, np.float64))                             # 1200 > 1000: oldest dropped
    assert w._bytes <= 1000
    w.give(np.empty(1000, np.float32))                                 # larger than the cap
    assert w._bytes <= 1000
    w.clear()
    assert w._bytes == 0


def test_outstanding_forwards_with_recycled_buffers(monkeypatch):
    """Two forwards, then two backwards in reverse (the context stack), while the fused path
    recycles buffers between them: gradients equal the plain path's."""
    rng = np.random.default_rng(11)
    x1, x2 = rng.normal(size=(2, 2, 5, 3)).astype(np.float32)
    dy1, dy2 = rng.normal(size=(2, 2, 5, 4)).astype(np.float32)
    grads = []
    for flag in ("0", "1"):
        monkeypatch.setenv("NNSCRATCH_FUSED", flag)
        nn.manual_seed(2)
        lstm = LSTM(3, 4, num_layers=2)
        y1, _ = lstm(x1)
        y2, _ = lstm(x2)
        dx2, _ = lstm.backward(dy2)
        y3, _ = lstm(x1)                      # a third forward reuses the recycled buffers
        dx3, _ = lstm.backward(dy1)
        dx1, _ = lstm.backward(dy1)
        _close(y3, y1, F32, "y3 = y1")
        grads.append([y1, y2, dx1, dx2, dx3] + [p.grad for p in lstm.parameters()])
    for k, (a, b_) in enumerate(zip(*grads)):
        _close(b_, a, F32, f"output {k}")
