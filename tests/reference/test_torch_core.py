"""Parity with PyTorch (CPU, float64): Linear, activations, losses, optimizers, clipping, schedules.

Weights are copied across; forward values and every gradient must match to rtol 1e-6.
Skipped only when torch is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nnscratch as nn  # noqa: E402
from nnscratch import optim  # noqa: E402

RTOL = 1e-6
torch.set_default_dtype(torch.float64)


def T(a, grad=True):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def _close(ours, theirs, name):
    nn.testing.check_parity(ours, theirs.detach().numpy(), rtol=RTOL, atol=1e-12, name=name)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_dense_matches_torch_linear(rng):
    layer = nn.Dense(5, 3).to(dtype=np.float64)
    ref = torch.nn.Linear(5, 3)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.data))
        ref.bias.copy_(torch.from_numpy(layer.bias.data))
    x = rng.normal(size=(2, 4, 5))
    dy = rng.normal(size=(2, 4, 3))
    y = layer(x)
    dx = layer.backward(dy)
    xt = T(x)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    _close(y, yt, "y")
    _close(dx, xt.grad, "dx")
    _close(layer.weight.grad, ref.weight.grad, "dW")
    _close(layer.bias.grad, ref.bias.grad, "db")


@pytest.mark.parametrize("ours,theirs", [
    (nn.Sigmoid, torch.sigmoid), (nn.Tanh, torch.tanh), (nn.ReLU, torch.relu),
    (lambda: nn.LeakyReLU(0.2), lambda t: torch.nn.functional.leaky_relu(t, 0.2)),
    (nn.Identity, lambda t: t * 1), (nn.Softmax, lambda t: torch.softmax(t, -1)),
    (lambda: nn.Softmax(axis=0), lambda t: torch.softmax(t, 0)),
], ids=["sigmoid", "tanh", "relu", "leaky_relu", "identity", "softmax", "softmax_axis0"])
def test_activations_match_torch(ours, theirs, rng):
    x = rng.normal(scale=3, size=(4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # away from ReLU's kink
    dy = rng.normal(size=x.shape)
    layer = ours()
    y = layer(x)
    dx = layer.backward(dy)
    xt = T(x)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    _close(y, yt, "y")
    _close(dx, xt.grad, "dx")


def _loss_case(rng, name):
    F = torch.nn.functional
    if name == "mse":
        y, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
        return nn.MSELoss(), y, t, lambda a, b: F.mse_loss(a, b)
    if name == "mse_sum":
        y, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
        return nn.MSELoss(reduction="sum"), y, t, lambda a, b: F.mse_loss(a, b, reduction="sum")
    if name == "least_squares":
        y, t = rng.normal(size=(6, 1)), rng.normal(size=(6, 1))
        return nn.LeastSquares(), y, t, lambda a, b: 0.5 * F.mse_loss(a, b, reduction="sum")
    if name == "bce":
        x, t = rng.normal(scale=3, size=(5, 4)), rng.integers(0, 2, size=(5, 4)).astype(float)
        return nn.BCEWithLogitsLoss(), x, t, lambda a, b: F.binary_cross_entropy_with_logits(a, b)
    if name == "bce_pos_weight":
        x, t = rng.normal(scale=3, size=(5, 4)), rng.integers(0, 2, size=(5, 4)).astype(float)
        pw = rng.uniform(0.5, 5, size=4)
        return (nn.BCEWithLogitsLoss(pos_weight=pw), x, t,
                lambda a, b: F.binary_cross_entropy_with_logits(a, b,
                                                                pos_weight=torch.from_numpy(pw)))
    if name == "xent":
        x, t = rng.normal(size=(2, 7, 5)), rng.integers(0, 5, size=(2, 7))
        return (nn.SoftmaxCrossEntropyLoss(), x, t,
                lambda a, b: F.cross_entropy(a.reshape(-1, 5), torch.from_numpy(b).reshape(-1)))
    if name == "xent_weight_ignore":
        x, t = rng.normal(size=(9, 5)), rng.integers(0, 5, size=9)
        t[[2, 5]] = -100
        w = rng.uniform(0.2, 3, size=5)
        return (nn.SoftmaxCrossEntropyLoss(weight=w, ignore_index=-100), x, t,
                lambda a, b: F.cross_entropy(a, torch.from_numpy(b), weight=torch.from_numpy(w),
                                             ignore_index=-100))
    raise KeyError(name)


@pytest.mark.parametrize("name", ["mse", "mse_sum", "least_squares", "bce", "bce_pos_weight",
                                  "xent", "xent_weight_ignore"])
def test_losses_match_torch(name, rng):
    loss, pred, target, ref = _loss_case(rng, name)
    value = loss(pred, target)
    dpred = loss.backward()
    pt = T(pred)
    tt = target if target.dtype.kind == "i" else T(target, grad=False)
    vt = ref(pt, tt)
    vt.backward()
    assert value == pytest.approx(vt.item(), rel=RTOL)
    _close(dpred, pt.grad, "dpred")


def test_kl_matches_torch_distributions(rng):
    mu, lv = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    loss = nn.KLDivergence()
    value = loss(mu, lv)
    dmu, dlv = loss.backward()
    mt, lt = T(mu), T(lv)
    q = torch.distributions.Normal(mt, torch.exp(0.5 * lt))
    p = torch.distributions.Normal(torch.zeros_like(mt), torch.ones_like(mt))
    kt = torch.distributions.kl_divergence(q, p).sum(-1).mean()
    kt.backward()
    assert value == pytest.approx(kt.item(), rel=RTOL)
    _close(dmu, mt.grad, "dmu")
    _close(dlv, lt.grad, "dlog_var")


OPTIMIZERS = {
    "sgd": (lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_wd": (lambda p: optim.SGD(p, lr=0.1, weight_decay=0.01),
               lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)),
    "momentum": (lambda p: optim.Momentum(p, lr=0.1, momentum=0.9),
                 lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "nesterov": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                 lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    "rmsprop": (lambda p: optim.RMSprop(p, lr=0.01, weight_decay=0.01),
                lambda p: torch.optim.RMSprop(p, lr=0.01, weight_decay=0.01)),
    "adam": (lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam_l2": (lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
                lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1)),
    "adamw": (lambda p: optim.AdamW(p, lr=0.01, weight_decay=0.1),
              lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("fused", ["1", "0"], ids=["fused", "plain"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_match_torch(name, fused, rng, monkeypatch):
    """One step (and three, so momentum and bias corrections are exercised) match torch.optim."""
    monkeypatch.setenv("NNSCRATCH_FUSED", fused)
    ours_make, theirs_make = OPTIMIZERS[name]
    shapes = [(4, 3), (3,), (2, 2, 2)]
    data = [rng.normal(size=s) for s in shapes]
    ps = [nn.Parameter(d.copy()) for d in data]
    ts = [T(d) for d in data]
    o, ot = ours_make(ps), theirs_make(ts)
    for step in range(3):
        grads = [rng.normal(size=s) for s in shapes]
        for p, t, g in zip(ps, ts, grads):
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        o.step()
        ot.step()
        for i, (p, t) in enumerate(zip(ps, ts)):
            _close(p.data, t, f"{name} step {step + 1} param {i}")


def test_clip_grad_norm_matches_torch(rng):
    shapes = [(4, 3), (5,)]
    grads = [rng.normal(size=s) * 3 for s in shapes]
    ps = [nn.Parameter(np.zeros(s)) for s in shapes]
    ts = [T(np.zeros(s)) for s in shapes]
    for p, t, g in zip(ps, ts, grads):
        p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
    total = optim.clip_grad_norm(ps, 1.0)
    total_t = torch.nn.utils.clip_grad_norm_(ts, 1.0)
    assert float(total) == pytest.approx(total_t.item(), rel=RTOL)
    for p, t in zip(ps, ts):
        _close(p.grad, t.grad, "clipped grad")


def test_reduce_lr_on_plateau_matches_torch(rng):
    metrics = list(rng.uniform(0.5, 1.5, size=8)) + [0.4] + [0.45] * 12
    o = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    s = optim.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1, min_lr=0.01)
    ot = torch.optim.SGD([T(np.zeros(1))], lr=1.0)
    st = torch.optim.lr_scheduler.ReduceLROnPlateau(ot, factor=0.5, patience=2, cooldown=1,
                                                    min_lr=0.01)
    for m in metrics:
        s.step(m)
        st.step(m)
        assert o.lr == pytest.approx(ot.param_groups[0]["lr"])
