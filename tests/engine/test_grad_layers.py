"""Gradient checks of the core layers (inputs and every parameter), shape errors, context guards."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import nnscratch as nn
from nnscratch.testing import check_layer
from strategies import arrays, matrix_and_width


def _f64(layer):
    return layer.to(dtype=np.float64)


@given(case=matrix_and_width(),
       init=st.sampled_from(["glorot_uniform", "he_normal", "uniform_fan_in", "orthogonal"]),
       bias=st.booleans())
def test_dense_gradients(case, init, bias):
    x, n_out = case
    layer = _f64(nn.Dense(x.shape[1], n_out, bias=bias, init=init))
    check_layer(layer, [x])


@given(x=arrays(shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5))))
def test_dense_on_3d_inputs(x):
    check_layer(_f64(nn.Dense(x.shape[-1], 3)), [x])


@given(case=matrix_and_width(),
       act=st.sampled_from(["sigmoid", "tanh", "leaky", "softmax", "identity"]))
def test_sequential_gradients(case, act):
    x, n_out = case
    acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky": lambda: nn.LeakyReLU(0.2),
            "softmax": nn.Softmax, "identity": nn.Identity}
    model = _f64(nn.Sequential(nn.Dense(x.shape[1], 5), acts[act](), nn.Dense(5, n_out)))
    if act == "leaky":  # keep pre-activations at least 0.01 away from the kink at 0
        with nn.no_grad():
            assume(np.abs(model[0](x)).min() > 0.01)
    check_layer(model, [x])


@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=5), rows=st.integers(1, 5),
       data=st.data())
def test_sigmoid_mlp_gradients(sizes, rows, data):
    x = data.draw(arrays((rows, sizes[0])))
    check_layer(_f64(nn.SigmoidMLP(sizes)), [x])


def test_sigmoid_mlp_vectorised_equals_per_neuron_recursion():
    """The vectorised backward and the seed's literal per-neuron loops give the same gradients."""
    mlp = _f64(nn.SigmoidMLP([3, 4, 5, 2]))
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    loss = nn.LeastSquares()
    loss(mlp(x), t)
    mlp.backward(loss.backward())
    Ws = [l.weight.data for l in mlp.layers]
    bs = [l.bias.data for l in mlp.layers]
    sum_W = [np.zeros_like(W) for W in Ws]
    sum_b = [np.zeros_like(b) for b in bs]
    for k in range(len(x)):
        gW, gb = nn.per_neuron_gradients(Ws, bs, x[k], t[k])
        for l in range(len(Ws)):
            sum_W[l] += gW[l]
            sum_b[l] += gb[l]
    for l, layer in enumerate(mlp.layers):
        # dJ/dw = 1/2 * sum_k dPi_k/dw   (mlp.md, (8))
        np.testing.assert_allclose(layer.weight.grad, 0.5 * sum_W[l], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.bias.grad, 0.5 * sum_b[l], rtol=1e-12, atol=1e-14)


@given(mu=arrays((3, 4)), lv=arrays((3, 4)), eps=arrays((3, 4)))
def test_reparameterize_layer_gradients(mu, lv, eps):
    check_layer(nn.Reparameterize(), [mu, lv], forward_kwargs={"eps": eps})


def test_reparameterize_eval_returns_mu():
    layer = nn.Reparameterize().eval()
    mu = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(layer(mu, np.zeros_like(mu)), mu)


def test_wrong_input_width_names_layer_and_shapes():
    model = nn.Sequential(nn.Dense(4, 3), nn.Sigmoid(), nn.Dense(3, 2))
    with pytest.raises(ValueError,
                       match=r"Dense '1': expected input of shape \(\.\.\., 4\), got \(5, 3\)"):
        nn.Sequential(nn.Dense(4, 3), nn.Dense(4, 2))(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError,
                       match=r"Dense '0': expected input of shape \(\.\.\., 4\), got \(7, 5\)"):
        model(np.zeros((7, 5), np.float32))
    with pytest.raises(ValueError, match=r"SigmoidMLP.*\(\.\.\., 2\), got \(3, 5\)"):
        nn.SigmoidMLP([2, 3, 1])(np.zeros((3, 5), np.float32))


def test_backward_without_forward_raises():
    layer = nn.Dense(2, 2)
    with pytest.raises(RuntimeError, match="without a matching forward"):
        layer.backward(np.zeros((1, 2), np.float32))
    layer(np.zeros((1, 2), np.float32))
    layer.backward(np.zeros((1, 2), np.float32))
    with pytest.raises(RuntimeError, match="called twice"):
        layer.backward(np.zeros((1, 2), np.float32))


def test_no_grad_saves_nothing():
    layer = nn.Dense(2, 2)
    with nn.no_grad():
        layer(np.zeros((1, 2), np.float32))
    assert layer._saved == []
    with pytest.raises(RuntimeError):
        layer.backward(np.zeros((1, 2), np.float32))


def test_repeated_forward_then_backward_in_reverse_accumulates():
    """A layer applied twice (weights shared over steps) sums both contributions into grad."""
    layer = _f64(nn.Dense(3, 2))
    x1, x2 = np.ones((1, 3)), 2 * np.ones((1, 3))
    layer(x1)
    layer(x2)
    layer.backward(np.ones((1, 2)))  # pops x2's context
    layer.backward(np.ones((1, 2)))  # then x1's
    np.testing.assert_allclose(layer.weight.grad, np.full((2, 3), 3.0))


def test_train_eval_and_names():
    model = nn.Sequential(nn.Dense(2, 3), nn.Sigmoid())
    assert model.training and model[0].training
    model.eval()
    assert not model.training and not model[0].training
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert model.num_parameters() == 9
    model.freeze()
    assert not any(p.requires_grad for p in model.parameters())


def test_initialisers_statistics():
    nn.manual_seed(0)
    w = nn.init.glorot_uniform((400, 300))
    assert abs(w.std() - np.sqrt(2 / 700)) < 0.003 and w.dtype == np.float32
    w = nn.init.he_normal((400, 300))
    assert abs(w.std() - np.sqrt(2 / 300)) < 0.003
    w = nn.init.uniform_fan_in((50, 100))
    assert np.abs(w).max() <= 0.1
    q = nn.init.orthogonal((64, 32)).astype(np.float64)
    np.testing.assert_allclose(q.T @ q, np.eye(32), atol=1e-5)
    q = nn.init.orthogonal((16, 48)).astype(np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-5)
    with pytest.raises(ValueError, match="unknown initialiser"):
        nn.Dense(2, 2, init="nope")


def test_sequential_stops_when_a_layer_gives_no_input_gradient():
    """Flatten -> Dense(input_grad=False): backward returns None and consumes every context."""
    model = nn.Sequential(nn.Flatten(), nn.Dense(6, 2))
    model[1].input_grad = False
    x = np.ones((3, 2, 3), np.float32)
    model(x)
    model(x)  # applied twice: two contexts per layer
    assert model.backward(np.ones((3, 2), np.float32)) is None
    assert len(model[0]._saved) == 1 and len(model[1]._saved) == 1
    assert model.backward(np.ones((3, 2), np.float32)) is None
    assert model[0]._saved == [] and model[1]._saved == []
