"""The GPU speed work of issue 14, each behind a switch, against the plain path.

* NNSCRATCH_CUDA_GRAPH=1: the fused LSTM's time loops captured as CUDA graphs, one per shape
  (nnscratch/kernels/cuda/lstm_graph.py);
* NNSCRATCH_FUSED_XENT=1: softmax cross-entropy as two fused kernels
  (nnscratch/kernels/cuda/loss.py);
* NNSCRATCH_TF32=1 / backend.set_tf32: TF32 GEMMs (also tests/engine/test_gpu_traps.py).

On the CPU: the graphs' buffer logic (copy in, replay, copy out, one capture per shape) with the
numba kernels and a "capture" that replays a Python function; the Python side of both switches
end to end on a stand-in for CuPy (tests/engine/fake_cupy.py) with NumPy stand-ins for the
kernels; the log-sum-exp form the xent kernels compute. Marked ``gpu``: the real kernels and
graphs against the plain CuPy path. The kernels' CUDA source compiles in test_cuda_compile.py.
"""
from __future__ import annotations

import types

import fake_cupy
import numpy as np
import pytest

import nnscratch as nn
from nnscratch import backend
from nnscratch.functions.base import Context
from nnscratch.functions.loss import SoftmaxCrossEntropy
from nnscratch.functions.lstm import LSTMLayer
from nnscratch.kernels.cuda import lstm_graph

numba_kernels = pytest.importorskip("nnscratch.kernels.cpu.lstm")


# ----------------------------------------------------------------------------------------------
# Switches
# ----------------------------------------------------------------------------------------------
def test_switches_are_off_by_default_and_read_from_the_environment(monkeypatch):
    for name in ("NNSCRATCH_CUDA_GRAPH", "NNSCRATCH_FUSED_XENT", "NNSCRATCH_FUSED"):
        monkeypatch.delenv(name, raising=False)
    assert not backend.cuda_graph_enabled() and not backend.fused_xent_enabled()
    monkeypatch.setenv("NNSCRATCH_CUDA_GRAPH", "1")
    monkeypatch.setenv("NNSCRATCH_FUSED_XENT", "yes")
    assert backend.cuda_graph_enabled() and backend.fused_xent_enabled()
    monkeypatch.setenv("NNSCRATCH_FUSED", "0")  # the master switch turns both off
    assert not backend.cuda_graph_enabled() and not backend.fused_xent_enabled()


# ----------------------------------------------------------------------------------------------
# CUDA graphs of the LSTM loops: the buffer logic on the CPU
# ----------------------------------------------------------------------------------------------
class _Replay:
    """A 'capture' that keeps the Python body and runs it again at each launch."""

    def __init__(self):
        self.captures = 0
        self.launches = 0

    def __call__(self, body):
        self.captures += 1

        def launch():
            self.launches += 1
            body()
        return types.SimpleNamespace(launch=launch)


def _layer_inputs(T, B, I, H, seed, dtype=np.float32, masked=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, I)).astype(dtype)
    W_ih = (0.4 * rng.normal(size=(4 * H, I))).astype(dtype)
    W_hh = (0.4 * rng.normal(size=(4 * H, H))).astype(dtype)
    b = (0.1 * rng.normal(size=4 * H)).astype(dtype)
    h0 = rng.normal(size=(B, H)).astype(dtype)
    c0 = rng.normal(size=(B, H)).astype(dtype)
    mask = None
    if masked:
        mask = np.ones((T, B), dtype)
        mask[T // 2:, 0] = 0
    return x, h0, c0, W_ih, W_hh, b, mask


def _graph_forward(graphs, x, h0, c0, W_ih, W_hh, b, mask, reverse):
    """What LSTMLayer._forward_fused does around the loop, with the loop as a graph."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    A = x @ W_ih.T
    hs = np.empty((T + 1, B, H), x.dtype)
    cs = np.empty((T + 1, B, H), x.dtype)
    first = T if reverse else 0
    hs[first], cs[first] = h0, c0
    gates = np.empty((T, B, 4 * H), x.dtype)
    tc = np.empty((T, B, H), x.dtype)
    m_all = np.ones((T, B), x.dtype) if mask is None else mask
    graphs.forward(A, hs, cs, gates, tc, np.ascontiguousarray(W_hh.T), b, m_all, reverse)
    return hs, cs, gates, tc


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_graph_loops_equal_the_eager_loops_call_after_call(reverse, masked):
    capture = _Replay()
    graphs = lstm_graph.LoopGraphs(np, numba_kernels, capture)
    outputs = []
    for call, (T, seed) in enumerate([(6, 0), (6, 1), (4, 2), (6, 3), (4, 4)]):
        inp = _layer_inputs(T, 3, 5, 4, seed, masked=masked)
        x, h0, c0, W_ih, W_hh, b, mask = inp
        ctx = Context()
        LSTMLayer.forward(ctx, *inp[:6], mask=mask, reverse=reverse, path="numba")
        want = [a.copy() for a in (ctx.hs, ctx.cs, ctx.gates, ctx.tc)]
        got = _graph_forward(graphs, *inp, reverse)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        outputs.append((got, want))

        # backward: dh0, dc0 and the gate gradients (through dx = dA W_ih)
        rng = np.random.default_rng(10 + call)
        dy = rng.normal(size=(T, 3, 8)).astype(np.float32)[:, :, ::2]   # a strided view
        dh_n = rng.normal(size=(3, 4)).astype(np.float32)
        dx_w, dh_w, dc_w, *_ = LSTMLayer.backward(ctx, dy, dh_n, None)
        dh, dc = dh_n.copy(), np.zeros((3, 4), np.float32)
        dA = np.empty((T, 3, 16), np.float32)
        graphs.backward(dh, dc, dy, want[2], want[1], want[3],
                        np.ones((T, 3), np.float32) if mask is None else mask, W_hh, dA,
                        np.empty((3, 4), np.float32), reverse, mask is not None)
        np.testing.assert_allclose(dh, dh_w, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dc, dc_w, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dA.reshape(-1, 16) @ W_ih, dx_w.reshape(-1, 5),
                                   rtol=1e-5, atol=1e-6)
    # one capture per shape and direction (T = 6 and T = 4), forward and backward
    assert capture.captures == 4 and capture.launches == 2 * 3
    for got, want in outputs:  # a later call never overwrote an earlier call's outputs
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_graph_backward_without_dy():
    graphs = lstm_graph.LoopGraphs(np, numba_kernels, _Replay())
    x, h0, c0, W_ih, W_hh, b, _ = _layer_inputs(5, 2, 3, 4, 0)
    for _ in range(2):  # eager first call, then the replay
        ctx = Context()
        LSTMLayer.forward(ctx, x, h0, c0, W_ih, W_hh, b, path="numba")
        G, cs, tc = ctx.gates.copy(), ctx.cs.copy(), ctx.tc.copy()
        dh_n = np.full((2, 4), 0.3, np.float32)
        _, dh_w, dc_w, *_ = LSTMLayer.backward(ctx, None, dh_n, None)
        dh, dc = dh_n.copy(), np.zeros((2, 4), np.float32)
        graphs.backward(dh, dc, None, G, cs, tc, np.ones((5, 2), np.float32), W_hh,
                        np.empty((5, 2, 16), np.float32), np.empty((2, 4), np.float32), False,
                        False)
        np.testing.assert_allclose(dh, dh_w, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dc, dc_w, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# The Python side of both switches, end to end on the stand-in for CuPy
# ----------------------------------------------------------------------------------------------
def _plain(a):
    return a.view(np.ndarray) if isinstance(a, fake_cupy.FakeDeviceArray) else a


def _lse_forward(x, t, w):
    """What the forward kernel computes, in NumPy: lse_n and w_n (lse_n - x_n[t_n])."""
    m = x.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]
    return lse, w * (lse - x[np.arange(len(t)), t])


def _lse_backward(x, lse, t, coef):
    """What the backward kernel computes: coef_n (exp(x_nj - lse_n) - [j == t_n])."""
    dx = np.exp(x - lse[:, None])
    dx[np.arange(len(t)), t] -= 1
    return dx * coef[:, None]


@pytest.fixture
def fake_gpu_with_kernels(monkeypatch):
    """FakeCupy as the GPU, fused paths on, the CUDA kernels replaced by NumPy stand-ins."""
    from nnscratch.kernels.cuda import loss as cuda_loss
    from nnscratch.kernels.cuda import lstm as cuda_lstm

    fake = fake_cupy.install(monkeypatch)
    monkeypatch.setenv("NNSCRATCH_FUSED", "1")
    calls = {"xent_forward": 0, "xent_backward": 0}

    def xent_forward(x, t, w):
        calls["xent_forward"] += 1
        assert x.flags.c_contiguous and t.dtype == np.int64 and w.dtype == x.dtype
        return tuple(fake.asarray(a) for a in _lse_forward(_plain(x), _plain(t), _plain(w)))

    def xent_backward(x, lse, t, coef):
        calls["xent_backward"] += 1
        assert coef.dtype == x.dtype and coef.shape == (x.shape[0],)
        return fake.asarray(_lse_backward(*(_plain(a) for a in (x, lse, t, coef))))

    def on_plain(kernel):
        return lambda *args: kernel(*(_plain(a) for a in args))

    monkeypatch.setattr(cuda_loss, "softmax_xent_forward", xent_forward)
    monkeypatch.setattr(cuda_loss, "softmax_xent_backward", xent_backward)
    monkeypatch.setattr(cuda_lstm, "lstm_forward_step", on_plain(numba_kernels.lstm_forward_step))
    monkeypatch.setattr(cuda_lstm, "lstm_backward_step",
                        on_plain(numba_kernels.lstm_backward_step))
    capture = _Replay()
    monkeypatch.setattr(lstm_graph, "_graphs", lstm_graph.LoopGraphs(fake, cuda_lstm, capture))
    backend.set_device("gpu")
    return types.SimpleNamespace(fake=fake, calls=calls, capture=capture)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_xent_dispatch_and_scaling(fake_gpu_with_kernels, monkeypatch, reduction,
                                         weighted):
    env = fake_gpu_with_kernels
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 7))
    t = rng.integers(0, 7, size=(2, 5))
    t[0, 1] = -1
    weight = rng.random(7) + 0.5 if weighted else None
    dloss = rng.normal(size=(2, 5)) if reduction == "none" else 0.7
    results = {}
    for fused in ("1", "0"):
        monkeypatch.setenv("NNSCRATCH_FUSED_XENT", fused)
        ctx = Context()
        loss = SoftmaxCrossEntropy.forward(ctx, env.fake.asarray(x), t, weight=weight,
                                           ignore_index=-1, reduction=reduction)
        dx, _ = SoftmaxCrossEntropy.backward(ctx, dloss)
        results[fused] = (backend.to_cpu(loss), backend.to_cpu(dx))
    assert env.calls == {"xent_forward": 1, "xent_backward": 1}
    np.testing.assert_allclose(results["1"][0], results["0"][0], rtol=1e-12)
    np.testing.assert_allclose(results["1"][1], results["0"][1], rtol=1e-12, atol=1e-15)


def test_graph_switch_runs_the_lstm_layer_through_the_graphs(fake_gpu_with_kernels, monkeypatch):
    env = fake_gpu_with_kernels
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 5)).astype(np.float32)
    mask = np.ones((3, 6), bool)
    mask[1, 4:] = False
    dy = rng.normal(size=(3, 6, 8)).astype(np.float32)
    results = {}
    for graph in ("0", "1", "1"):  # eager, then the graphs' first (eager) and replayed calls
        monkeypatch.setenv("NNSCRATCH_CUDA_GRAPH", graph)
        backend.manual_seed(2)
        lstm = nn.LSTM(5, 4, num_layers=2, bidirectional=True)
        y, (h, c) = lstm(env.fake.asarray(x), mask=mask)
        dx, (dh0, dc0) = lstm.backward(env.fake.asarray(dy))
        out = [backend.to_cpu(a) for a in (y, h, c, dx, dh0, dc0)]
        out += [backend.to_cpu(p.grad) for p in lstm.parameters()]
        results.setdefault(graph, []).append(out)
    # one capture per key: forward and backward, each direction (both layers have one shape);
    # 2 runs x 2 layers x 2 directions x (forward + backward) loops, the 4 first ones eager
    assert env.capture.captures == 4 and env.capture.launches == 2 * 8 - 4
    eager = results["0"][0]
    for out in results["1"]:
        for a, b in zip(out, eager):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_xent_log_sum_exp_form_equals_the_plain_path():
    rng = np.random.default_rng(3)
    x = 5 * rng.normal(size=(9, 11))
    t = rng.integers(0, 11, size=9)
    w = rng.random(9)
    ctx = Context()
    per = SoftmaxCrossEntropy.forward(ctx, x, t, weight=None, reduction="none")
    dx, _ = SoftmaxCrossEntropy.backward(ctx, w)
    lse, per_lse = _lse_forward(x, t, np.ones(9))
    np.testing.assert_allclose(per_lse, per, rtol=1e-12)
    np.testing.assert_allclose(_lse_backward(x, lse, t, w), dx, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# On a GPU: the real graphs and kernels against the plain CuPy path
# ----------------------------------------------------------------------------------------------
def _run_lstm(cp, x, mask, dy, dtype, seed=2):
    backend.manual_seed(seed)
    with nn.default_dtype(dtype):
        lstm = nn.LSTM(x.shape[-1], 32, num_layers=2, bidirectional=True)
    y, (h, c) = lstm(cp.asarray(x.astype(dtype)), mask=mask)
    dx, (dh0, dc0) = lstm.backward(cp.asarray(dy.astype(dtype)))
    out = [backend.to_cpu(a) for a in (y, h, c, dx, dh0, dc0)]
    return out + [backend.to_cpu(p.grad) for p in lstm.parameters()]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_cuda_graph_loops_equal_the_launch_per_step_loops(monkeypatch, dtype):
    cp = backend.cupy_module()
    lstm_graph.graphs().clear()
    rng = np.random.default_rng(0)
    cases = []
    for T in (7, 7, 3, 7):
        x = rng.normal(size=(4, T, 6))
        mask = np.ones((4, T), bool)
        mask[2, T - 2:] = False
        cases.append((x, mask, rng.normal(size=(4, T, 64))))
    monkeypatch.setenv("NNSCRATCH_CUDA_GRAPH", "0")
    eager = [_run_lstm(cp, *c, dtype) for c in cases]
    monkeypatch.setenv("NNSCRATCH_CUDA_GRAPH", "1")
    graphed = []
    for c in cases:
        graphed.append(_run_lstm(cp, *c, dtype))
        junk = cp.random.random((1 << 20,))    # reuse the memory pool between calls
        junk += 1
    cp.cuda.get_current_stream().synchronize()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for g_out, e_out in zip(graphed, eager):
        for a, b in zip(g_out, e_out):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    assert len(lstm_graph.graphs().forward_graphs) == 4  # T = 7 and 3, two directions


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("C", [1, 7, 95, 1000])
def test_gpu_fused_xent_equals_the_plain_cupy_path(monkeypatch, dtype, reduction, C):
    cp = backend.cupy_module()
    rng = np.random.default_rng(C)
    x_full = cp.asarray((4 * rng.normal(size=(3, 37, C + 2))).astype(dtype))
    x = x_full[:, :, 1:C + 1]                       # non-contiguous logits
    t = cp.asarray(rng.integers(0, C, size=(3, 37)))
    t[0, :5] = -100
    weight = cp.asarray((rng.random(C) + 0.5).astype(dtype))
    dloss = cp.asarray(rng.normal(size=(3, 37)).astype(dtype)) if reduction == "none" else 1.3
    results = {}
    for fused in ("1", "0"):
        monkeypatch.setenv("NNSCRATCH_FUSED_XENT", fused)
        ctx = Context()
        loss = SoftmaxCrossEntropy.forward(ctx, x, t, weight=weight, ignore_index=-100,
                                           reduction=reduction)
        dx, _ = SoftmaxCrossEntropy.backward(ctx, dloss)
        assert ctx.fused == (fused == "1")
        results[fused] = (backend.to_cpu(loss), backend.to_cpu(dx))
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results["1"][0], results["0"][0], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(results["1"][1], results["0"][1], rtol=rtol, atol=rtol)


@pytest.mark.gpu
def test_gpu_fused_xent_gradient_check_float64(monkeypatch):
    cp = backend.cupy_module()
    monkeypatch.setenv("NNSCRATCH_FUSED_XENT", "1")
    rng = np.random.default_rng(1)
    x = cp.asarray(rng.normal(size=(6, 5)))
    t = cp.asarray(rng.integers(0, 5, size=6))
    nn.testing.check_backward(SoftmaxCrossEntropy, [x, t], options={"reduction": "sum"})


@pytest.mark.gpu
def test_gpu_training_step_with_every_switch_on_matches_plain(monkeypatch):
    """The LSTM language model's step with graphs, fused xent and FP32 against all off."""
    cp = backend.cupy_module()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, size=(4, 9))
    targets = cp.asarray(rng.integers(0, 20, size=(4 * 9,)))
    losses = {}
    for on in ("0", "1"):
        monkeypatch.setenv("NNSCRATCH_CUDA_GRAPH", on)
        monkeypatch.setenv("NNSCRATCH_FUSED_XENT", on)
        backend.manual_seed(0)
        emb, lstm, fc = nn.Embedding(20, 8), nn.LSTM(8, 16, num_layers=2), nn.Dense(16, 20)
        params = emb.parameters() + lstm.parameters() + fc.parameters()
        opt = nn.optim.Adam(params, lr=1e-2)
        loss_fn = nn.SoftmaxCrossEntropyLoss()
        seq = []
        for _ in range(3):
            y, _ = lstm(emb(cp.asarray(ids)))
            seq.append(loss_fn(fc(y.reshape(-1, 16)), targets))
            dy = fc.backward(loss_fn.backward()).reshape(4, 9, 16)
            emb.backward(lstm.backward(dy)[0])
            opt.step()
            opt.zero_grad()
        losses[on] = seq
    np.testing.assert_allclose(losses["1"], losses["0"], rtol=1e-5)
