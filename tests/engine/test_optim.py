"""Optimizers: fused kernels equal the plain path, freezing, clipping, schedules, early stopping."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import optim


def _params(rng, dtype=np.float32, shapes=((5, 7), (7,), (3, 2, 4))):
    ps = []
    for s in shapes:
        p = nn.Parameter(rng.normal(size=s).astype(dtype))
        ps.append(p)
    return ps


def _set_grads(ps, rng):
    for p in ps:
        p.grad = rng.normal(size=p.shape).astype(p.dtype)


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_fused_adam_equals_plain_path(cls, wd, monkeypatch, xp):
    rng = np.random.default_rng(0)
    a = _params(rng)
    b = [nn.Parameter(p.data.copy()) for p in a]
    for ps in (a, b):
        for p in ps:
            p.data = xp.asarray(p.data)
    oa = cls(a, lr=1e-2, weight_decay=wd)
    ob = cls(b, lr=1e-2, weight_decay=wd)
    for _step in range(5):
        g = [xp.asarray(rng.normal(size=p.shape).astype(np.float32)) for p in a]
        for p, q, gg in zip(a, b, g):
            p.grad, q.grad = gg.copy(), gg.copy()
        monkeypatch.setenv("NNSCRATCH_FUSED", "1")
        oa.step()
        monkeypatch.setenv("NNSCRATCH_FUSED", "0")
        ob.step()
    for p, q in zip(a, b):
        np.testing.assert_allclose(nn.to_cpu(p.data), nn.to_cpu(q.data), rtol=1e-5, atol=1e-6)
    for i in oa.state:
        for k in ("m", "v"):
            np.testing.assert_allclose(nn.to_cpu(oa.state[i][k]), nn.to_cpu(ob.state[i][k]),
                                       rtol=1e-5, atol=1e-7)


def test_fused_adam_noncontiguous_gradient():
    rng = np.random.default_rng(0)
    p = nn.Parameter(rng.normal(size=(4, 6)).astype(np.float32))
    q = nn.Parameter(p.data.copy())
    g = np.asfortranarray(rng.normal(size=(4, 6)).astype(np.float32))
    p.grad, q.grad = g, np.ascontiguousarray(g)
    optim.Adam([p], lr=0.1).step()
    optim.Adam([q], lr=0.1).step()
    np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.Momentum(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), lambda ps: optim.RMSprop(ps),
    lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps),
], ids=["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_frozen_and_gradless_parameters_are_skipped(make):
    rng = np.random.default_rng(0)
    ps = _params(rng)
    _set_grads(ps, rng)
    ps[0].requires_grad = False
    ps[1].grad = None
    before = [p.data.copy() for p in ps]
    make(ps).step()
    np.testing.assert_array_equal(ps[0].data, before[0])
    np.testing.assert_array_equal(ps[1].data, before[1])
    assert not np.array_equal(ps[2].data, before[2])


def test_optimizers_minimise_a_quadratic():
    for make in (lambda p: optim.SGD(p, lr=0.1), lambda p: optim.Momentum(p, lr=0.05),
                 lambda p: optim.RMSprop(p, lr=0.01), lambda p: optim.Adam(p, lr=0.05),
                 lambda p: optim.AdamW(p, lr=0.05, weight_decay=0.0)):
        p = nn.Parameter(np.array([3.0, -2.0]))
        opt = make([p])
        for _ in range(500):
            p.grad = 2 * (p.data - np.array([1.0, 0.5]))
            opt.step()
        np.testing.assert_allclose(p.data, [1.0, 0.5], atol=1e-2)


def test_clip_grad_norm():
    ps = [nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(4))]
    ps[0].grad = np.array([3.0, 0.0, 0.0])
    ps[1].grad = np.array([0.0, 4.0, 0.0, 0.0])
    total = optim.clip_grad_norm(ps, max_norm=1.0)
    assert float(total) == pytest.approx(5.0)
    assert float(optim.grad_norm(ps)) == pytest.approx(1.0, rel=1e-5)
    ps[0].grad = np.array([0.3, 0.0, 0.0])
    ps[1].grad = np.array([0.0, 0.4, 0.0, 0.0])
    optim.clip_grad_norm(ps, max_norm=1.0)  # below the limit: unchanged
    np.testing.assert_allclose(ps[0].grad, [0.3, 0, 0])


def test_step_and_exponential_schedules():
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = [sched.step() for _ in range(5)]
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = optim.ExponentialLR(opt, gamma=0.9)
    assert [round(sched.step(), 6) for _ in range(3)] == [0.9, 0.81, 0.729]


def test_reduce_lr_on_plateau_follows_torch_rule():
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    lrs = [sched.step(m) for m in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]]
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    assert sched.step(0.95) == 0.25 and sched.step(0.95) == 0.2  # clamped at min_lr


def test_early_stopping():
    es = optim.EarlyStopping(patience=2, min_delta=0.01)
    assert es.step(1.0) is False and es.improved
    assert es.step(0.995) is False and not es.improved
    assert es.step(0.5) is False and es.improved
    assert es.step(0.6) is False
    assert es.step(0.7) is True
    assert es.best == 0.5


def test_optimizer_state_roundtrip_continues_identically():
    rng = np.random.default_rng(0)
    ps = _params(rng, dtype=np.float64)
    ps2 = [nn.Parameter(p.data.copy()) for p in ps]
    o1, o2 = optim.AdamW(ps, lr=0.1), optim.AdamW(ps2, lr=0.1)
    g = [rng.normal(size=p.shape) for p in ps]
    for p, gg in zip(ps, g):
        p.grad = gg.copy()
    o1.step()
    o2.load_state_dict(o1.state_dict())
    for p, q in zip(ps, ps2):
        q.data = p.data.copy()
    for p, q, gg in zip(ps, ps2, g):
        p.grad, q.grad = gg.copy(), gg.copy()
    o1.step()
    o2.step()
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, q.data)


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([nn.Parameter(np.zeros(1))], lr=-1)
    with pytest.raises(TypeError, match="expected Parameters"):
        optim.Adam([np.zeros(1)])
    assert math.isclose(optim.AdamW([nn.Parameter(np.zeros(1))]).weight_decay, 1e-2)


def test_warmup_cosine_follows_progress_and_never_goes_back():
    p = nn.Parameter(np.zeros(3, np.float32))
    opt = nn.optim.Adam([p], lr=1e-2)
    sched = nn.optim.WarmupCosine(opt, warmup=10, final_ratio=0.1)
    assert sched.step(0.0, 0) == pytest.approx(1e-3)           # first warm-up step: 1/10
    assert sched.step(0.0, 9) == pytest.approx(1e-2)           # warm-up done
    assert sched.step(0.5, 50) == pytest.approx(1e-3 + 0.5 * 9e-3)
    assert sched.step(0.25, 60) == pytest.approx(1e-3 + 0.5 * 9e-3)  # progress never decreases
    assert sched.step(1.0, 100) == pytest.approx(1e-3)
    assert sched.step(7.0, 200) == pytest.approx(1e-3)         # clipped at the end
    state = sched.state_dict()
    other = nn.optim.WarmupCosine(nn.optim.Adam([p], lr=1e-2), warmup=10, final_ratio=0.1)
    other.load_state_dict(state)
    assert other.progress == 1.0
    with pytest.raises(ValueError, match="WarmupCosine"):
        nn.optim.WarmupCosine(opt, final_ratio=2.0)


def test_warmup_linear_falls_in_a_straight_line_to_its_floor():
    p = nn.Parameter(np.zeros(3, np.float32))
    sched = nn.optim.WarmupCosine(nn.optim.Adam([p], lr=1e-2), warmup=4, final_ratio=0.0,
                                  shape="linear")
    assert sched.step(0.0, 1) == pytest.approx(5e-3)           # warm-up: 2/4
    lrs = [sched.lr_at(q, 100) for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert lrs == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3, 0.0])
    floor = nn.optim.WarmupCosine(nn.optim.Adam([p], lr=1e-2), final_ratio=0.1, shape="linear")
    assert floor.lr_at(0.5, 100) == pytest.approx(1e-3 + 0.5 * 9e-3)
    with pytest.raises(ValueError, match="shape"):
        nn.optim.WarmupCosine(nn.optim.Adam([p], lr=1e-2), shape="step")
