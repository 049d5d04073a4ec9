"""Gradient checks and forward references for every function, driven by one registry.

Each entry: (name, Function, reference forward in plain NumPy/SciPy, strategy drawing the inputs
and options). The same entry feeds the forward test (against the reference) and the gradient check
(float64 five-point central differences, worst relative error <= 1e-6).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given
from hypothesis import strategies as st

from nnscratch.functions import (
    MSE,
    BCEWithLogits,
    Identity,
    KLStandardNormal,
    LeakyReLU,
    LeastSquares,
    Linear,
    ReLU,
    Reparameterize,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
)
from nnscratch.functions.base import Context
from nnscratch.testing import check_backward
from strategies import arrays, away_from_zero, leading_shape_and_width, shapes


@dataclass
class Entry:
    name: str
    fn: type
    reference: Callable
    inputs: st.SearchStrategy  # draws (list of inputs, options dict)
    check: list | None = None   # which inputs to check (default: all float64)
    tol: float = 1e-6
    marks: list = field(default_factory=list)


def _one(strategy=None, **options):
    strategy = strategy if strategy is not None else arrays()
    return strategy.map(lambda x: ([x], dict(options)))


@st.composite
def _linear_inputs(draw, bias=True):
    lead, n_in = draw(leading_shape_and_width())
    n_out = draw(st.integers(1, 6))
    x = draw(arrays(lead + (n_in,)))
    W = draw(arrays((n_out, n_in)))
    b = draw(arrays((n_out,))) if bias else None
    return [x, W, b], {}


@st.composite
def _pair(draw, target=None, reduction=None):
    shape = draw(shapes())
    y = draw(arrays(shape))
    t = draw(arrays(shape, elements=target)) if target is not None else draw(arrays(shape))
    opts = {} if reduction is None else {"reduction": draw(st.sampled_from(reduction))}
    return [y, t], opts


@st.composite
def _bce_inputs(draw):
    shape = draw(shapes())
    x = draw(arrays(shape))
    t = draw(arrays(shape, elements=st.floats(0, 1)))
    opts = {"reduction": draw(st.sampled_from(["mean", "sum"]))}
    if draw(st.booleans()):
        opts["pos_weight"] = draw(arrays(shape[-1:], elements=st.floats(0.2, 5)))
    if draw(st.booleans()):
        opts["weight"] = draw(arrays(shape, elements=st.floats(0.1, 2)))
    return [x, t], opts


@st.composite
def _xent_inputs(draw):
    lead = draw(shapes(max_dims=3))
    C = draw(st.integers(1, 6))
    x = draw(arrays(lead + (C,)))
    t = np.asarray(draw(arrays(lead, elements=st.integers(0, C - 1).map(float)))).astype(np.int64)
    opts = {"reduction": draw(st.sampled_from(["mean", "sum"]))}
    if draw(st.booleans()):
        opts["weight"] = draw(arrays((C,), elements=st.floats(0.1, 3)))
    if draw(st.booleans()) and C > 1:
        ignore = draw(st.integers(0, C - 1))
        opts["ignore_index"] = ignore
        if (t == ignore).all():  # keep at least one counted row so 'mean' is defined
            t.reshape(-1)[0] = (ignore + 1) % C
    return [x, t], opts


@st.composite
def _kl_inputs(draw):
    b = draw(st.integers(1, 6))
    k = draw(st.integers(1, 6))
    return ([draw(arrays((b, k))), draw(arrays((b, k)))],
            {"reduction": draw(st.sampled_from(["mean", "sum"]))})


@st.composite
def _reparam_inputs(draw):
    shape = draw(shapes(min_dims=2, max_dims=2))
    return [draw(arrays(shape)), draw(arrays(shape)), draw(arrays(shape))], {}


# -- references: independent formulas, not the engine's code ------------------------------------
def _ref_linear(x, W, b):
    y = np.einsum("...i,oi->...o", x, W)
    return y if b is None else y + b


def _ref_bce(x, t, pos_weight=None, weight=None, reduction="mean"):
    pw = 1.0 if pos_weight is None else pos_weight
    l = -(pw * t * np.log(sp.expit(x)) + (1 - t) * np.log(sp.expit(-x)))
    if weight is not None:
        l = l * weight
    return l.mean() if reduction == "mean" else l.sum()


def _ref_xent(x, t, weight=None, ignore_index=None, reduction="mean"):
    C = x.shape[-1]
    x2, t2 = x.reshape(-1, C), t.reshape(-1)
    logp = x2 - sp.logsumexp(x2, axis=1, keepdims=True)
    w = np.ones(C) if weight is None else weight
    total, denom = 0.0, 0.0
    for n in range(len(t2)):
        if ignore_index is not None and t2[n] == ignore_index:
            continue
        total -= w[t2[n]] * logp[n, t2[n]]
        denom += w[t2[n]]
    return total / denom if reduction == "mean" else total


def _ref_kl(mu, log_var, reduction="mean"):
    # KL(N(mu, s^2) || N(0, 1)) = -log s + (s^2 + mu^2) / 2 - 1/2, per latent dimension
    s = np.sqrt(np.exp(log_var))
    per = (-np.log(s) + (s ** 2 + mu ** 2) / 2 - 0.5).sum(axis=-1)
    return per.mean() if reduction == "mean" else per.sum()


REGISTRY = [
    Entry("sigmoid", Sigmoid, lambda x: 0.5 * (1 + np.tanh(x / 2)), _one()),
    Entry("tanh", Tanh, lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1), _one()),
    Entry("relu", ReLU, lambda x: x * (x > 0), _one(arrays().map(away_from_zero))),
    Entry("leaky_relu", LeakyReLU, lambda x, alpha: np.where(x > 0, x, alpha * x),
          st.tuples(arrays().map(away_from_zero), st.floats(0.0, 0.5)).map(
              lambda a: ([a[0]], {"alpha": a[1]}))),
    Entry("identity", Identity, lambda x: x, _one()),
    Entry("softmax", Softmax, lambda x, axis=-1: sp.softmax(x, axis=axis),
          st.tuples(arrays(), st.integers(-1, 0)).map(lambda a: ([a[0]], {"axis": a[1]}))),
    Entry("linear", Linear, _ref_linear, _linear_inputs()),
    Entry("linear_nobias", Linear, _ref_linear, _linear_inputs(bias=False), check=[0, 1]),
    Entry("least_squares", LeastSquares, lambda y, t: 0.5 * ((y - t) ** 2).sum(), _pair(),
          check=[0]),
    Entry("mse", MSE, lambda y, t, reduction="mean": ((y - t) ** 2).mean() if reduction == "mean"
          else ((y - t) ** 2).sum(), _pair(reduction=["mean", "sum"]), check=[0]),
    Entry("bce_with_logits", BCEWithLogits, _ref_bce, _bce_inputs(), check=[0]),
    Entry("softmax_cross_entropy", SoftmaxCrossEntropy, _ref_xent, _xent_inputs(), check=[0]),
    Entry("kl_standard_normal", KLStandardNormal, _ref_kl, _kl_inputs()),
    Entry("reparameterize", Reparameterize,
          lambda mu, lv, eps: mu + np.sqrt(np.exp(lv)) * eps, _reparam_inputs()),
]


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
@given(data=st.data())
def test_forward_matches_reference(entry, data):
    inputs, options = data.draw(entry.inputs)
    y = entry.fn.forward(Context(), *inputs, **options)
    np.testing.assert_allclose(y, entry.reference(*inputs, **options), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
@given(data=st.data())
def test_backward_matches_numerical_gradient(entry, data):
    inputs, options = data.draw(entry.inputs)
    check_backward(entry.fn, inputs, options, check=entry.check, tol=entry.tol)


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
def test_backward_twice_raises(entry):
    inputs, options = _example(entry)
    ctx = Context()
    y = entry.fn.forward(ctx, *inputs, **options)
    dy = np.ones_like(y)
    entry.fn.backward(ctx, dy)
    with pytest.raises(RuntimeError, match="twice"):
        entry.fn.backward(ctx, dy)


def _example(entry):
    from hypothesis import find

    return find(entry.inputs, lambda _: True)


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.name in ("sigmoid", "tanh", "softmax",
                                                                        "linear", "relu")],
                         ids=lambda e: e.name)
def test_float32_matches_float64(entry, xp):
    """The float32 path (the default) agrees with the float64 one within float32 precision."""
    inputs, options = _example(entry)
    inputs64 = [None if a is None else xp.asarray(a) for a in inputs]
    inputs32 = [None if a is None else a.astype(np.float32) for a in inputs64]
    y64 = entry.fn.forward(Context(), *inputs64, **options)
    y32 = entry.fn.forward(Context(), *inputs32, **options)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(np.asarray(y32.get() if hasattr(y32, "get") else y32),
                               np.asarray(y64.get() if hasattr(y64, "get") else y64),
                               rtol=1e-5, atol=1e-6)


def test_sigmoid_is_stable_for_large_inputs():
    """The seed report warns that exp(-x) overflows for large |x|: no overflow, exact limits.

    (exp(-|x|) may underflow to 0, which is harmless: the branch then returns 0 or 1 exactly.)"""
    x = np.array([-1e4, -800.0, -40.0, 0.0, 40.0, 800.0, 1e4], dtype=np.float64)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = Sigmoid.forward(Context(), x)
    assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5
    assert np.all(np.isfinite(y)) and np.all(np.diff(y) >= 0)
    x32 = np.array([-200.0, 200.0], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y32 = Sigmoid.forward(Context(), x32)
    assert y32.dtype == np.float32 and y32[0] >= 0.0 and y32[1] == 1.0
