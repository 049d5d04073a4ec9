"""Loss objects: bad input errors (NaN/inf, shapes, targets), weighting, ignore_index, KL."""
from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.functions.base import Context
from nnscratch.functions.loss import KLStandardNormal


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make", [
    lambda: (nn.MSELoss(), (3, 4), lambda: np.zeros((3, 4), np.float32)),
    lambda: (nn.LeastSquares(), (3, 4), lambda: np.zeros((3, 4), np.float32)),
    lambda: (nn.BCEWithLogitsLoss(), (3, 4), lambda: np.zeros((3, 4), np.float32)),
    lambda: (nn.SoftmaxCrossEntropyLoss(), (3, 4), lambda: np.zeros(3, np.int64)),
], ids=["mse", "least_squares", "bce", "xent"])
def test_non_finite_prediction_raises_clear_error(make, bad):
    loss, shape, target = make()
    pred = np.zeros(shape, np.float32)
    pred[1, 2] = bad
    with pytest.raises(nn.NonFiniteError,
                       match=r"(prediction|logits) of shape \(3, 4\).*first at index \(1, 2\)"):
        loss(pred, target())


def test_non_finite_target_is_named():
    with pytest.raises(nn.NonFiniteError, match="target"):
        nn.MSELoss()(np.zeros(3, np.float32), np.array([0, np.nan, 0], np.float32))


def test_kl_non_finite_is_named():
    with pytest.raises(nn.NonFiniteError, match="log_var"):
        nn.KLDivergence()(np.zeros((2, 3)), np.full((2, 3), np.inf))


def test_shape_mismatch_errors():
    with pytest.raises(ValueError, match=r"prediction shape \(3, 4\) and target shape \(3,\)"):
        nn.MSELoss()(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"need targets of shape \(3,\)"):
        nn.SoftmaxCrossEntropyLoss()(np.zeros((3, 4)), np.zeros((3, 4), np.int64))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        nn.SoftmaxCrossEntropyLoss()(np.zeros((3, 4)), np.array([0, 4, 1]))


def test_ignore_index_rows_change_nothing():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7))
    t = np.array([1, 3, 6, 0, 2])
    full = nn.SoftmaxCrossEntropyLoss()
    ref = full(x[:3], t[:3])
    padded = nn.SoftmaxCrossEntropyLoss(ignore_index=-100)
    t_pad = t.copy()
    t_pad[3:] = -100
    assert padded(x, t_pad) == pytest.approx(ref, rel=1e-12)
    dx = padded.backward()
    assert np.all(dx[3:] == 0)


def test_class_weights_mean_is_weighted_average():
    x = np.zeros((2, 3))  # uniform predictions: each row's NLL is log 3
    w = np.array([1.0, 4.0, 1.0])
    loss = nn.SoftmaxCrossEntropyLoss(weight=w)(x, np.array([0, 1]))
    assert loss == pytest.approx(np.log(3))


def test_pos_weight_scales_positive_term():
    x = np.array([[0.3, -1.2]])
    t = np.array([[1.0, 1.0]])
    plain = nn.BCEWithLogitsLoss(reduction="sum")(x, t)
    weighted = nn.BCEWithLogitsLoss(pos_weight=np.array([3.0, 3.0]), reduction="sum")(x, t)
    assert weighted == pytest.approx(3 * plain)


def test_bce_stable_for_extreme_logits():
    x = np.array([-1000.0, 1000.0])
    t = np.array([1.0, 0.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = nn.BCEWithLogitsLoss(reduction="sum")(x, t)
    assert loss == pytest.approx(2000.0)


def test_kl_matches_closed_form_and_monte_carlo():
    """KL(N(mu, var) || N(0, 1)) against the closed form and a Monte-Carlo estimate."""
    rng = np.random.default_rng(1)
    mu, log_var = rng.normal(size=(4, 3)), rng.normal(scale=0.5, size=(4, 3))
    kl = KLStandardNormal.forward(Context(), mu, log_var, reduction="none")
    var = np.exp(log_var)
    closed = 0.5 * (var + mu ** 2 - 1 - log_var).sum(axis=1)
    np.testing.assert_allclose(kl, closed, rtol=1e-12)
    # Monte Carlo: E_q[log q(z) - log p(z)]
    z = mu[None] + np.sqrt(var)[None] * rng.normal(size=(200_000, 4, 3))
    log_q = -0.5 * (np.log(2 * np.pi * var) + (z - mu) ** 2 / var)
    log_p = -0.5 * (np.log(2 * np.pi) + z ** 2)
    mc = (log_q - log_p).sum(axis=2).mean(axis=0)
    np.testing.assert_allclose(kl, mc, rtol=0.03, atol=0.01)


def test_kl_is_zero_at_prior():
    assert nn.KLDivergence()(np.zeros((2, 5)), np.zeros((2, 5))) == 0.0
