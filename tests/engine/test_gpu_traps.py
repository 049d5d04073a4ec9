"""The API traps a GPU user hit at once (issue 14), each caught twice: on the CPU with a stand-in
for CuPy whose arrays refuse to mix with NumPy's as CuPy's do (tests/engine/fake_cupy.py), and,
marked ``gpu``, with CuPy on a real device.

* losses and Dense fed NumPy targets, class weights or inputs while on the GPU;
* ``get_array_module`` answering numpy for a CuPy array made before nnscratch loaded cupy;
* ``Layer.to`` leaving the optimizer's state behind (the fused Adam then failed);
* the LSTM's fused kernels needing the mask in the weights' dtype (bool, float64 raised);
* checkpoints holding only the CPU random state (``backend.rng_state`` / ``set_rng_state``);
* TF32: off by default and switchable, in nnscratch and in every torch comparison.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import fake_cupy
import numpy as np
import pytest

import nnscratch as nn
from nnscratch import backend
from nnscratch.functions.base import Context
from nnscratch.functions.loss import MSE, BCEWithLogits, LeastSquares, SoftmaxCrossEntropy
from nnscratch.functions.lstm import LSTMLayer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def fake_gpu(monkeypatch):
    """nnscratch's GPU backend played by FakeCupy; the GPU selected as the default device."""
    fake = fake_cupy.install(monkeypatch)
    backend.set_device("gpu")
    return fake


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(6, 4)).astype(np.float32),
        "y": rng.normal(size=(6, 3)).astype(np.float32),
        "t": rng.normal(size=(6, 3)).astype(np.float32),
        "bin": (rng.random((6, 3)) < 0.4).astype(np.float32),
        "cls": rng.integers(0, 3, size=6),
        "pos_weight": np.array([1.0, 3.0, 0.5], np.float32),
        "class_weight": np.array([0.2, 1.0, 2.5], np.float32),
    }


# ----------------------------------------------------------------------------------------------
# The fake itself must behave like CuPy where it counts, or the tests below prove nothing
# ----------------------------------------------------------------------------------------------
def test_fake_cupy_refuses_numpy_arrays_as_cupy_does(fake_gpu):
    a = fake_gpu.asarray(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3, np.float32)
    with pytest.raises(TypeError, match="Unsupported type"):
        fake_gpu.exp(np.ones(3))
    with pytest.raises(TypeError, match="Unsupported type"):
        a @ np.ones((3, 2), np.float32)
    assert isinstance(a * 2.0, fake_gpu.ndarray) and isinstance(a.sum(), fake_gpu.ndarray)
    np.testing.assert_array_equal(backend.to_cpu(a + a), 2 * np.ones(3))


# ----------------------------------------------------------------------------------------------
# Losses and Dense move NumPy targets, weights and inputs to the device
# ----------------------------------------------------------------------------------------------
def _loss_cases(d):
    return [
        ("LeastSquares", nn.LeastSquares(), d["y"], d["t"]),
        ("MSELoss", nn.MSELoss(), d["y"], d["t"]),
        ("BCEWithLogitsLoss", nn.BCEWithLogitsLoss(pos_weight=d["pos_weight"],
                                                   weight=d["pos_weight"][None, :]),
         d["y"], d["bin"]),
        ("SoftmaxCrossEntropyLoss", nn.SoftmaxCrossEntropyLoss(weight=d["class_weight"],
                                                               ignore_index=2),
         d["y"], d["cls"]),
        ("SoftmaxCrossEntropyLoss none", nn.SoftmaxCrossEntropyLoss(reduction="none"),
         d["y"], d["cls"]),
    ]


def _loss_values(cases, to_pred):
    out = []
    for _, loss_fn, pred, target in cases:
        value = loss_fn(to_pred(pred), target)  # the target stays a NumPy array
        grad = loss_fn.backward(np.ones(len(target), np.float32) if np.ndim(value) else 1.0)
        out.append((backend.to_cpu(value) if np.ndim(value) else value, backend.to_cpu(grad)))
    return out


def test_losses_take_numpy_targets_and_weights_on_the_gpu(fake_gpu):
    d = _data()
    on_gpu = _loss_values(_loss_cases(d), fake_gpu.asarray)
    backend.set_device("cpu")
    on_cpu = _loss_values(_loss_cases(d), lambda a: a)
    for (name, *_), (vg, gg), (vc, gc) in zip(_loss_cases(d), on_gpu, on_cpu):
        np.testing.assert_allclose(vg, vc, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(gg, gc, rtol=1e-6, err_msg=name)


def test_loss_functions_take_numpy_targets_on_the_gpu(fake_gpu):
    d = _data()
    y = fake_gpu.asarray(d["y"])
    for fn, args in ((LeastSquares, (d["t"],)), (MSE, (d["t"],)),
                     (BCEWithLogits, (d["bin"], d["pos_weight"], d["pos_weight"])),
                     (SoftmaxCrossEntropy, (d["cls"], d["class_weight"]))):
        loss = fn.forward(Context(), y, *args)
        assert isinstance(loss, fake_gpu.ndarray), fn.__name__


def test_loss_weights_follow_the_prediction_back_to_the_cpu(fake_gpu):
    d = _data()
    loss_fn = nn.SoftmaxCrossEntropyLoss(weight=d["class_weight"])
    loss_fn(fake_gpu.asarray(d["y"]), d["cls"])
    assert backend.device_of(loss_fn.weight) == "gpu"  # moved once, kept there
    loss_fn(d["y"], d["cls"])
    assert backend.device_of(loss_fn.weight) == "cpu"


def test_dense_takes_a_numpy_input_on_the_gpu(fake_gpu):
    backend.manual_seed(3)
    layer = nn.Dense(4, 3)
    x = _data()["x"]
    y = layer(x)
    assert isinstance(y, fake_gpu.ndarray)
    expected = x @ backend.to_cpu(layer.weight.data).T + backend.to_cpu(layer.bias.data)
    np.testing.assert_allclose(backend.to_cpu(y), expected, rtol=1e-6)
    layer.backward(fake_gpu.asarray(np.ones((6, 3), np.float32)))


# ----------------------------------------------------------------------------------------------
# get_array_module sees a CuPy array made before nnscratch loaded cupy
# ----------------------------------------------------------------------------------------------
def test_get_array_module_sees_cupy_arrays_before_nnscratch_loaded_cupy(monkeypatch):
    fake = fake_cupy.FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)      # the user's own `import cupy`
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_checked", False)
    monkeypatch.setattr(backend, "_cupy_error", None)
    x = fake.asarray(np.ones(3))
    assert backend.get_array_module(x) is fake
    assert backend.is_gpu_array(x) and backend.device_of(x) == "gpu"
    np.testing.assert_array_equal(backend.to_cpu(x), np.ones(3))


def test_get_array_module_does_not_import_cupy_for_numpy_arrays(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_checked", False)
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    assert backend.get_array_module(np.ones(2)) is np
    assert "cupy" not in sys.modules and not backend._cupy_checked


# ----------------------------------------------------------------------------------------------
# Layer.to moves the optimizer's state with the parameters (on the next step)
# ----------------------------------------------------------------------------------------------
def _train(model, opt, x, t, steps, to_x=lambda a: a):
    loss_fn = nn.MSELoss()
    for _ in range(steps):
        loss_fn(model(to_x(x)), to_x(t))
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("opt_name", ["adam", "adamw", "rmsprop", "momentum"])
def test_optimizer_state_follows_layer_to(fake_gpu, monkeypatch, opt_name):
    d = _data()

    def build():
        backend.set_device("cpu")
        backend.manual_seed(5)
        model = nn.Sequential(nn.Dense(4, 5), nn.Tanh(), nn.Dense(5, 3))
        return model, nn.optim.OPTIMIZERS[opt_name](model.parameters(), lr=1e-2)

    model, opt = build()
    _train(model, opt, d["x"], d["y"], 2)
    model.to("gpu")
    _train(model, opt, d["x"], d["y"], 2, to_x=fake_gpu.asarray)
    states = [a for st in opt.state.values() for a in st.values()]
    assert states and all(isinstance(a, fake_gpu.ndarray) for a in states)

    ref, ref_opt = build()  # the same four steps, all on the CPU
    _train(ref, ref_opt, d["x"], d["y"], 4)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(backend.to_cpu(p.data), q.data, rtol=1e-5, atol=1e-7)


def test_optimizer_state_follows_a_dtype_change():
    d = _data()
    model = nn.Sequential(nn.Dense(4, 3))
    opt = nn.optim.Adam(model.parameters(), lr=1e-2)
    _train(model, opt, d["x"], d["y"], 1)
    model.to(dtype=np.float64)
    _train(model, opt, d["x"].astype(np.float64), d["y"].astype(np.float64), 1)
    assert all(a.dtype == np.float64 for st in opt.state.values() for a in st.values())


# ----------------------------------------------------------------------------------------------
# LSTM masks of any dtype
# ----------------------------------------------------------------------------------------------
def _lstm_inputs(dtype=np.float32, T=5, B=3, I=4, H=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, I)).astype(dtype)
    W_ih = (0.4 * rng.normal(size=(4 * H, I))).astype(dtype)
    W_hh = (0.4 * rng.normal(size=(4 * H, H))).astype(dtype)
    b = (0.1 * rng.normal(size=4 * H)).astype(dtype)
    h0 = rng.normal(size=(B, H)).astype(dtype)
    c0 = rng.normal(size=(B, H)).astype(dtype)
    mask = np.ones((T, B), bool)
    mask[3:, 0] = False
    mask[4:, 2] = False
    return x, h0, c0, W_ih, W_hh, b, mask


@pytest.mark.parametrize("path", ["plain", "numba"])
@pytest.mark.parametrize("mask_dtype", [bool, np.float64, np.int64, np.float32])
def test_lstm_mask_of_any_dtype(path, mask_dtype):
    x, h0, c0, W_ih, W_hh, b, mask = _lstm_inputs()
    ref_ctx, ctx = Context(), Context()
    y_ref, h_ref, c_ref = LSTMLayer.forward(ref_ctx, x, h0, c0, W_ih, W_hh, b,
                                            mask=mask.astype(np.float32), path="plain")
    y, h, c = LSTMLayer.forward(ctx, x, h0, c0, W_ih, W_hh, b, mask=mask.astype(mask_dtype),
                                path=path)
    for a, r in ((y, y_ref), (h, h_ref), (c, c_ref)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    for g, r in zip(LSTMLayer.backward(ctx, dy), LSTMLayer.backward(ref_ctx, dy)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Random state of every backend, for checkpoints
# ----------------------------------------------------------------------------------------------
def _draws():
    return [backend.to_cpu(backend.get_rng(d).normal((3,))) for d in sorted(backend._rngs)]


def test_rng_state_restores_the_cpu_generator_exactly():
    backend.manual_seed(11)
    backend.get_rng("cpu").normal((4,))
    state = backend.rng_state()
    import json

    state = json.loads(json.dumps(state))  # as a checkpoint stores it
    after = _draws()
    backend.manual_seed(999)
    backend.get_rng("cpu").normal((7,))
    backend.set_rng_state(state)
    np.testing.assert_array_equal(np.concatenate(_draws()), np.concatenate(after))


def test_rng_state_restores_the_gpu_generator_exactly(fake_gpu):
    backend.manual_seed(11)
    backend.get_rng("cpu").normal((4,))
    backend.get_rng("gpu").normal((5,))
    state = backend.rng_state()
    assert set(state["generators"]) == {"cpu", "gpu"}
    after = _draws()                       # the saving run goes on
    backend.manual_seed(3)                 # a new process: other seed, other history
    backend.get_rng("gpu").normal((2,))
    backend.set_rng_state(state)           # ... resumed from the checkpoint
    np.testing.assert_array_equal(np.concatenate(_draws()), np.concatenate(after))


def test_set_rng_state_resets_generators_the_save_did_not_have(fake_gpu):
    backend.manual_seed(4)
    state = backend.rng_state()            # no generator created yet
    first = backend.to_cpu(backend.get_rng("gpu").normal((3,)))
    backend.set_rng_state(state)
    np.testing.assert_array_equal(backend.to_cpu(backend.get_rng("gpu").normal((3,))), first)


def test_set_rng_state_accepts_the_older_cpu_only_state():
    backend.manual_seed(8)
    old = backend.get_rng("cpu").get_state()  # what checkpoints stored before rng_state
    a = backend.get_rng("cpu").normal((3,))
    backend.set_rng_state(old)
    np.testing.assert_array_equal(backend.get_rng("cpu").normal((3,)), a)
    with pytest.raises(ValueError, match="rng_state"):
        backend.set_rng_state({"nonsense": 1})


# ----------------------------------------------------------------------------------------------
# TF32: a switch in nnscratch, off in every torch comparison
# ----------------------------------------------------------------------------------------------
def test_tf32_switch_sets_cublas_compute_type(fake_gpu, monkeypatch):
    linalg = fake_gpu._core._routines_linalg
    assert not backend.tf32_enabled()
    backend.set_tf32(True)
    assert backend.tf32_enabled() and linalg.calls[-1] == ("float32", linalg.COMPUTE_TYPE_TF32)
    backend.set_tf32(False)
    assert not backend.tf32_enabled()
    assert linalg.calls[-1] == ("float32", linalg.COMPUTE_TYPE_DEFAULT)


def test_tf32_env_variable_applies_when_the_gpu_backend_loads(monkeypatch):
    fake = fake_cupy.FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_checked", False)
    monkeypatch.setenv("NNSCRATCH_TF32", "1")
    assert backend.gpu_available()
    assert fake._core._routines_linalg.calls == [("float32", 7)] and backend.tf32_enabled()
    backend.set_tf32(False)


def test_torch_precision_turns_tf32_off():
    torch = pytest.importorskip("torch")
    from benchmarks._common import torch_precision

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        info = torch_precision()
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
        assert info == {"torch_tf32": False}
        torch_precision(tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch_precision()


@pytest.mark.parametrize("script", ["mlp.py", "lstm.py", "conv.py", "abc_reference_torch.py"])
def test_benchmarks_compare_with_torch_through_torch_precision(script):
    with open(os.path.join(ROOT, "benchmarks", script)) as f:
        src = f.read()
    assert "torch_precision(" in src, f"benchmarks/{script} must call _common.torch_precision"
    assert "allow_tf32" not in src, f"benchmarks/{script} sets TF32 by hand"


def test_lstm_benchmark_phases_are_synchronised(monkeypatch):
    pytest.importorskip("torch")
    from benchmarks import lstm as bench

    calls = []
    monkeypatch.setattr(bench, "_sync", lambda: calls.append(1))
    ref = bench.build_torch("cpu", hidden=8)
    ours = bench.Ours(ref)
    rng = np.random.default_rng(0)
    ours.train_step(rng.integers(0, bench.VOCAB, (2, 3)), rng.integers(0, bench.VOCAB, (2, 3)))
    assert len(calls) == 4  # before the step and after each of its three phases


# ----------------------------------------------------------------------------------------------
# On a GPU: the same traps with CuPy
# ----------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_losses_take_numpy_targets_and_weights():
    cp = backend.cupy_module()
    d = _data()
    on_gpu = _loss_values(_loss_cases(d), cp.asarray)
    backend.set_device("cpu")
    on_cpu = _loss_values(_loss_cases(d), lambda a: a)
    for (name, *_), (vg, gg), (vc, gc) in zip(_loss_cases(d), on_gpu, on_cpu):
        np.testing.assert_allclose(vg, vc, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(gg, gc, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.gpu
def test_gpu_dense_takes_a_numpy_input():
    cp = backend.cupy_module()
    layer = nn.Dense(4, 3)
    x = _data()["x"]
    y = layer(x)
    assert isinstance(y, cp.ndarray)
    expected = x @ backend.to_cpu(layer.weight.data).T + backend.to_cpu(layer.bias.data)
    np.testing.assert_allclose(backend.to_cpu(y), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_gpu_get_array_module_before_nnscratch_loads_cupy():
    code = textwrap.dedent("""
        import cupy
        x = cupy.ones(3)
        from nnscratch import backend
        assert backend._cupy is None and not backend._cupy_checked
        assert backend.get_array_module(x) is cupy, backend.get_array_module(x)
        import nnscratch as nn
        print(float(nn.MSELoss()(x, x)))
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "0.0"


@pytest.mark.gpu
@pytest.mark.parametrize("opt_name", ["adam", "adamw", "rmsprop", "momentum"])
def test_gpu_optimizer_state_follows_layer_to(opt_name):
    cp = backend.cupy_module()
    d = _data()

    def build():
        backend.set_device("cpu")
        backend.manual_seed(5)
        model = nn.Sequential(nn.Dense(4, 5), nn.Tanh(), nn.Dense(5, 3))
        return model, nn.optim.OPTIMIZERS[opt_name](model.parameters(), lr=1e-2)

    model, opt = build()
    _train(model, opt, d["x"], d["y"], 2)
    model.to("gpu")
    _train(model, opt, d["x"], d["y"], 2, to_x=cp.asarray)  # the fused Adam kernel runs here
    assert all(isinstance(a, cp.ndarray) for st in opt.state.values() for a in st.values())
    ref, ref_opt = build()
    _train(ref, ref_opt, d["x"], d["y"], 4)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(backend.to_cpu(p.data), q.data, rtol=1e-4, atol=1e-6)
    model.to("cpu")                                          # and back
    _train(model, opt, d["x"], d["y"], 1)


@pytest.mark.gpu
@pytest.mark.parametrize("mask_dtype", [bool, np.float64, np.int64, np.float32])
def test_gpu_lstm_mask_of_any_dtype(mask_dtype):
    cp = backend.cupy_module()
    x, h0, c0, W_ih, W_hh, b, mask = _lstm_inputs()
    ref_ctx, ctx = Context(), Context()
    y_ref, _, _ = LSTMLayer.forward(ref_ctx, x, h0, c0, W_ih, W_hh, b,
                                    mask=mask.astype(np.float32), path="plain")
    g = [cp.asarray(a) for a in (x, h0, c0, W_ih, W_hh, b)]
    y, _, _ = LSTMLayer.forward(ctx, *g, mask=cp.asarray(mask.astype(mask_dtype)), path="cuda")
    np.testing.assert_allclose(backend.to_cpu(y), y_ref, rtol=1e-5, atol=1e-6)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    for got, want in zip(LSTMLayer.backward(ctx, cp.asarray(dy)), LSTMLayer.backward(ref_ctx, dy)):
        np.testing.assert_allclose(backend.to_cpu(got), want, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_gpu_rng_state_resumes_gpu_draws_exactly():
    backend.manual_seed(11)
    backend.get_rng("gpu").normal((5,))
    backend.get_rng("cpu").normal((2,))
    state = backend.rng_state()
    after = _draws()
    backend.manual_seed(3)
    backend.get_rng("gpu").normal((9,))
    backend.set_rng_state(state)
    np.testing.assert_array_equal(np.concatenate(_draws()), np.concatenate(after))


@pytest.mark.gpu
def test_gpu_tf32_switch_changes_float32_gemms_only_within_tf32_error():
    cp = backend.cupy_module()
    rng = np.random.default_rng(0)
    a = cp.asarray(rng.normal(size=(256, 256)).astype(np.float32))
    b = cp.asarray(rng.normal(size=(256, 256)).astype(np.float32))
    exact = backend.to_cpu(a.astype(cp.float64) @ b.astype(cp.float64))
    try:
        backend.set_tf32(True)
        fast = backend.to_cpu(a @ b)
    finally:
        backend.set_tf32(False)
    plain = backend.to_cpu(a @ b)
    scale = np.abs(exact).max()
    assert np.abs(plain - exact).max() < 1e-4 * scale
    assert np.abs(fast - exact).max() < 2e-2 * scale
