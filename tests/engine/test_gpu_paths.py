"""GPU cases for the paths that no test had run on a GPU (issue 14), each against NumPy.

Every loss (forward and gradient), dropout and the GPU random generator, the initialisers,
Reparameterize, SGD, RMSprop, Adam and clipping, ``Layer.to``, checkpoints, and gradient checks
in float64 on CuPy. All marked ``gpu``: skipped (and reported as skipped) without a device,
failed with NNSCRATCH_DEVICE=gpu and no device (benchmarks/gpu_pass.sh runs them on a lent GPU).
The CPU side of the same code is covered by the other engine tests; the device traps by
test_gpu_traps.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import backend, init
from nnscratch.functions.base import Context
from nnscratch.functions.dropout import Dropout as DropoutFn
from nnscratch.functions.dropout import dropout_mask
from nnscratch.functions.loss import (
    MSE,
    BCEWithLogits,
    KLStandardNormal,
    LeastSquares,
    SoftmaxCrossEntropy,
)
from nnscratch.functions.sampling import Reparameterize as ReparameterizeFn
from nnscratch.testing import check_backward, check_layer

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp():
    return backend.cupy_module()


def _rng(seed=0):
    return np.random.default_rng(seed)


def _close(gpu, cpu, rtol=1e-5, atol=1e-6, what=""):
    np.testing.assert_allclose(backend.to_cpu(gpu), cpu, rtol=rtol, atol=atol, err_msg=what)


# ----------------------------------------------------------------------------------------------
# Every loss: value and gradient, GPU against NumPy; float64 gradient checks on CuPy
# ----------------------------------------------------------------------------------------------
def _loss_inputs(dtype=np.float64):
    r = _rng(1)
    y = r.normal(size=(5, 4)).astype(dtype)
    return {
        "LeastSquares": (LeastSquares, [y, r.normal(size=(5, 4)).astype(dtype)], {}),
        "MSE": (MSE, [y, r.normal(size=(5, 4)).astype(dtype)], {"reduction": "sum"}),
        "BCEWithLogits": (BCEWithLogits, [y, (r.random((5, 4)) < 0.3).astype(dtype)],
                          {"pos_weight": np.array([1.0, 2.0, 0.5, 4.0], dtype),
                           "weight": r.random((5, 4)).astype(dtype)}),
        "SoftmaxCrossEntropy": (SoftmaxCrossEntropy, [y, r.integers(0, 4, size=5)],
                                {"weight": np.array([0.5, 1.0, 2.0, 1.5], dtype),
                                 "ignore_index": 3}),
        "KLStandardNormal": (KLStandardNormal, [y, 0.5 * r.normal(size=(5, 4)).astype(dtype)],
                             {"reduction": "sum"}),
    }


@pytest.mark.parametrize("name", list(_loss_inputs()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_forward_and_backward_match_numpy(cp, name, dtype):
    fn, inputs, options = _loss_inputs(dtype)[name]
    on_gpu = [cp.asarray(a) for a in inputs]
    gpu_options = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v
                   for k, v in options.items()}
    c_cpu, c_gpu = Context(), Context()
    v_cpu = fn.forward(c_cpu, *inputs, **options)
    v_gpu = fn.forward(c_gpu, *on_gpu, **gpu_options)
    assert isinstance(v_gpu, cp.ndarray)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    _close(v_gpu, v_cpu, rtol=rtol, atol=rtol, what=name)
    for g_gpu, g_cpu in zip(fn.backward(c_gpu, 0.7), fn.backward(c_cpu, 0.7)):
        if g_cpu is None:
            assert g_gpu is None
            continue
        _close(g_gpu, g_cpu, rtol=rtol, atol=rtol, what=name)


@pytest.mark.parametrize("name", list(_loss_inputs()))
def test_loss_gradient_checks_in_float64_on_cupy(cp, name):
    fn, inputs, options = _loss_inputs(np.float64)[name]
    on_gpu = [cp.asarray(a) for a in inputs]
    gpu_options = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v
                   for k, v in options.items()}
    check = [0, 1] if name == "KLStandardNormal" else [0]
    check_backward(fn, on_gpu, options=gpu_options, check=check)


@pytest.mark.parametrize("layer", ["MSELoss", "LeastSquares", "BCEWithLogitsLoss",
                                   "SoftmaxCrossEntropyLoss", "KLDivergence"])
def test_loss_layers_on_the_gpu_return_floats_and_check_finiteness(cp, layer):
    loss_fn = getattr(nn, layer)()
    r = _rng(2)
    a = cp.asarray(r.normal(size=(3, 4)).astype(np.float32))
    if layer == "SoftmaxCrossEntropyLoss":
        b = cp.asarray(r.integers(0, 4, size=3))
    elif layer == "BCEWithLogitsLoss":
        b = cp.asarray((r.random((3, 4)) < 0.5).astype(np.float32))
    else:
        b = cp.asarray(r.normal(size=(3, 4)).astype(np.float32))
    assert isinstance(loss_fn(a, b), float)
    loss_fn.backward()
    bad = a.copy()
    bad[1, 2] = cp.nan
    with pytest.raises(nn.NonFiniteError, match=r"\(1, 2\)"):
        loss_fn(bad, b)


# ----------------------------------------------------------------------------------------------
# Dropout and the GPU random generator
# ----------------------------------------------------------------------------------------------
def test_gpu_generator_draws_on_the_device_reproducibly(cp):
    backend.manual_seed(5)
    rng = backend.get_rng("gpu")
    draws = {"normal": rng.normal((4000,)), "uniform": rng.uniform(-2.0, 3.0, (4000,)),
             "random": rng.random((4000,)), "integers": rng.integers(0, 7, (4000,))}
    for name, a in draws.items():
        assert isinstance(a, cp.ndarray), name
    assert draws["normal"].dtype == np.float32 and draws["random"].dtype == np.float32
    n = backend.to_cpu(draws["normal"])
    assert abs(n.mean()) < 0.1 and abs(n.std() - 1) < 0.1
    u = backend.to_cpu(draws["uniform"])
    assert u.min() >= -2.0 and u.max() < 3.0 and abs(u.mean() - 0.5) < 0.1
    i = backend.to_cpu(draws["integers"])
    assert set(np.unique(i)) == set(range(7))
    assert sorted(backend.to_cpu(rng.permutation(10)).tolist()) == list(range(10))
    backend.manual_seed(5)
    np.testing.assert_array_equal(backend.to_cpu(backend.get_rng("gpu").normal((4000,))), n)
    # the GPU stream is not the CPU stream
    backend.manual_seed(5)
    assert not np.allclose(backend.get_rng("cpu").normal((4000,)), n)


def test_dropout_mask_and_function_on_the_gpu(cp):
    mask = dropout_mask((200, 50), 0.3, np.float32, device="gpu")
    assert isinstance(mask, cp.ndarray) and mask.dtype == np.float32
    m = backend.to_cpu(mask)
    assert set(np.unique(m)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((m == 0).mean() - 0.3) < 0.03
    x = _rng(3).normal(size=(200, 50)).astype(np.float32)
    ctx_g, ctx_c = Context(), Context()
    _close(DropoutFn.forward(ctx_g, cp.asarray(x), mask), x * m)
    dy = _rng(4).normal(size=x.shape).astype(np.float32)
    DropoutFn.forward(ctx_c, x, m)
    _close(DropoutFn.backward(ctx_g, cp.asarray(dy))[0], DropoutFn.backward(ctx_c, dy)[0])


def test_dropout_layer_on_the_gpu(cp):
    layer = nn.Dropout(0.5)
    x = cp.ones((64, 32), cp.float32)
    y = layer(x)
    assert isinstance(y, cp.ndarray)
    kept = backend.to_cpu(y) != 0
    np.testing.assert_array_equal(backend.to_cpu(layer.backward(cp.ones_like(x))) != 0, kept)
    layer.eval()
    _close(layer(x), np.ones((64, 32)))


# ----------------------------------------------------------------------------------------------
# Initialisers and Reparameterize
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
def test_initialisers_on_the_gpu(cp, name):
    backend.manual_seed(1)
    shape = (64, 48)
    w = init.get_initializer(name)(shape)
    assert isinstance(w, cp.ndarray) and w.shape == shape and w.dtype == np.float32
    a = backend.to_cpu(w)
    fan_in, fan_out = init.fans(shape)
    if name == "zeros":
        assert not a.any()
    elif name == "orthogonal":
        np.testing.assert_allclose(a.T @ a, np.eye(48), atol=1e-4)
    elif "uniform" in name:
        bound = {"glorot_uniform": np.sqrt(6 / (fan_in + fan_out)),
                 "xavier_uniform": np.sqrt(6 / (fan_in + fan_out)),
                 "he_uniform": np.sqrt(6 / fan_in), "uniform_fan_in": 1 / np.sqrt(fan_in)}[name]
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.9 * bound
    else:
        std = {"glorot_normal": np.sqrt(2 / (fan_in + fan_out)),
               "xavier_normal": np.sqrt(2 / (fan_in + fan_out)),
               "he_normal": np.sqrt(2 / fan_in)}[name]
        assert abs(a.std() / std - 1) < 0.1


def test_reparameterize_on_the_gpu(cp):
    r = _rng(5)
    mu, log_var, eps = (r.normal(size=(6, 3)) for _ in range(3))
    ctx_c, ctx_g = Context(), Context()
    z_c = ReparameterizeFn.forward(ctx_c, mu, log_var, eps)
    z_g = ReparameterizeFn.forward(ctx_g, *(cp.asarray(a) for a in (mu, log_var, eps)))
    _close(z_g, z_c, rtol=1e-12, atol=1e-12)
    dz = r.normal(size=(6, 3))
    for g, c in zip(ReparameterizeFn.backward(ctx_g, cp.asarray(dz)),
                    ReparameterizeFn.backward(ctx_c, dz)):
        if c is not None:
            _close(g, c, rtol=1e-12, atol=1e-12)
    check_backward(ReparameterizeFn, [cp.asarray(mu), cp.asarray(log_var), cp.asarray(eps)],
                   check=[0, 1])
    layer = nn.Reparameterize()
    z = layer(cp.asarray(mu.astype(np.float32)), cp.asarray(log_var.astype(np.float32)))
    assert isinstance(z, cp.ndarray)          # eps drawn by the GPU generator
    layer.backward(cp.ones_like(z))


# ----------------------------------------------------------------------------------------------
# Optimizers and clipping: several steps on the GPU against the same steps on the CPU
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_name, kwargs", [
    ("sgd", {"lr": 0.1}), ("sgd", {"lr": 0.1, "weight_decay": 0.01}),
    ("momentum", {"lr": 0.05}), ("momentum", {"lr": 0.05, "nesterov": True}),
    ("rmsprop", {"lr": 0.01, "weight_decay": 0.01}), ("adam", {"lr": 0.01}),
    ("adamw", {"lr": 0.01}),
])
@pytest.mark.parametrize("fused", ["1", "0"])
def test_optimizers_and_clipping_match_the_cpu(cp, monkeypatch, opt_name, kwargs, fused):
    monkeypatch.setenv("NNSCRATCH_FUSED", fused)
    r = _rng(6)
    x, t = r.normal(size=(16, 5)), r.normal(size=(16, 2))
    params = {}
    for device in ("cpu", "gpu"):
        backend.set_device(device)
        backend.manual_seed(9)
        with nn.default_dtype(np.float64):
            model = nn.Sequential(nn.Dense(5, 7), nn.Tanh(), nn.Dense(7, 2))
        if device == "gpu":  # the same initial weights as the CPU model
            for p, q in zip(model.parameters(), params["cpu_init"]):
                p.data = cp.asarray(q)
        else:
            params["cpu_init"] = [p.data.copy() for p in model.parameters()]
        opt = nn.optim.OPTIMIZERS[opt_name](model.parameters(), **kwargs)
        loss_fn = nn.MSELoss()
        norms = []
        for _ in range(4):
            loss_fn(model(backend.to_device(x, device)), backend.to_device(t, device))
            model.backward(loss_fn.backward())
            norms.append(float(nn.optim.clip_grad_norm(model.parameters(), 0.5)))
            opt.step()
            opt.zero_grad()
        params[device] = ([backend.to_cpu(p.data) for p in model.parameters()], norms)
    for g, c in zip(params["gpu"][0], params["cpu"][0]):
        np.testing.assert_allclose(g, c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(params["gpu"][1], params["cpu"][1], rtol=1e-10)


def test_clip_grad_norm_scales_on_the_device(cp):
    p = nn.Parameter(cp.zeros(4), grad=cp.asarray([3.0, 4.0, 0.0, 0.0]))
    total = nn.optim.clip_grad_norm([p], 1.0)
    assert isinstance(total, cp.ndarray) and float(total) == pytest.approx(5.0)
    _close(p.grad, np.array([0.6, 0.8, 0.0, 0.0]), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Layer.to and checkpoints
# ----------------------------------------------------------------------------------------------
def test_layer_to_moves_parameters_gradients_and_dtype(cp):
    backend.set_device("cpu")
    model = nn.Sequential(nn.Dense(3, 4), nn.ReLU(), nn.Dense(4, 2))
    x = _rng(7).normal(size=(5, 3)).astype(np.float32)
    y_cpu = model(x)
    model.backward(np.ones_like(y_cpu))
    grads = [p.grad.copy() for p in model.parameters()]
    model.to("gpu")
    for p, g in zip(model.parameters(), grads):
        assert isinstance(p.data, cp.ndarray) and isinstance(p.grad, cp.ndarray)
        _close(p.grad, g)
    _close(model(cp.asarray(x)), y_cpu)
    model.to(dtype=np.float64)
    assert all(p.dtype == np.float64 and isinstance(p.data, cp.ndarray)
               for p in model.parameters())
    model.to("cpu", dtype=np.float32)
    assert all(isinstance(p.data, np.ndarray) and p.dtype == np.float32
               for p in model.parameters())
    np.testing.assert_allclose(model(x), y_cpu, rtol=1e-6)


def test_checkpoint_of_a_gpu_model_and_optimizer_resumes_exactly(cp, tmp_path):
    r = _rng(8)
    x, t = cp.asarray(r.normal(size=(8, 3)).astype(np.float32)), cp.asarray(r.normal(size=(8, 2)))

    def build():
        backend.manual_seed(3)
        model = nn.Sequential(nn.Dense(3, 6), nn.Tanh(), nn.Dropout(0.2), nn.Dense(6, 2))
        return model, nn.optim.Adam(model.parameters(), lr=1e-2)

    def train(model, opt, steps):
        loss_fn, losses = nn.MSELoss(), []
        for _ in range(steps):
            losses.append(loss_fn(model(x), t.astype(cp.float32)))
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
        return losses

    model, opt = build()
    train(model, opt, 2)
    path = nn.save_checkpoint(str(tmp_path / "ck.npz"), model, opt,
                              extra={"rng": backend.rng_state()})
    after = train(model, opt, 3)                         # the run goes on

    resumed, ropt = build()
    ck = nn.load_checkpoint(path, resumed, ropt)
    backend.set_rng_state(ck.extra["rng"])               # dropout masks come from the GPU
    assert all(isinstance(p.data, cp.ndarray) for p in resumed.parameters())
    assert train(resumed, ropt, 3) == after              # the same floats, exactly
    on_cpu = nn.Sequential(nn.Dense(3, 6), nn.Tanh(), nn.Dropout(0.2), nn.Dense(6, 2))
    on_cpu.to("cpu")
    nn.load_checkpoint(path, on_cpu)                     # a GPU checkpoint opens on the CPU
    assert all(isinstance(p.data, np.ndarray) for p in on_cpu.parameters())


# ----------------------------------------------------------------------------------------------
# Layers' gradient checks in float64 on CuPy
# ----------------------------------------------------------------------------------------------
def _f64(cp, *shape, seed=0):
    return cp.asarray(_rng(seed).normal(size=shape))


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Dense(4, 3), (5, 4)),
    (lambda: nn.Sequential(nn.Dense(4, 6), nn.Tanh(), nn.Dense(6, 2)), (3, 4)),
    (lambda: nn.Sequential(nn.Dense(4, 6), nn.Sigmoid(), nn.LeakyReLU(0.1)), (3, 4)),
    (lambda: nn.Conv2D(2, 3, 3, padding=1), (2, 2, 5, 5)),
    (lambda: nn.Conv1D(2, 3, 3), (2, 2, 7)),
    (lambda: nn.Sequential(nn.Conv2D(2, 3, 3, padding=1), nn.GlobalMaxPool()), (2, 2, 5, 6)),
    (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True), (2, 5, 3)),
])
def test_layer_gradient_checks_float64_on_cupy(cp, make, shape):
    with nn.default_dtype(np.float64):
        layer = make()
    assert all(isinstance(p.data, cp.ndarray) for p in layer.parameters())
    check_layer(layer, [_f64(cp, *shape)])
