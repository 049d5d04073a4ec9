"""Gradient checks of the sequence ops: Embedding, Dropout, LSTMCell and LSTM.

float64 five-point central differences (nnscratch.testing), worst relative error <= 1e-6, with
respect to the inputs, the initial states and every parameter. Hypothesis draws tiny sizes
(batch, time, features, hidden in 1-3 or 1-4) so each example costs a few hundred forwards.
The LSTM checks run on both the plain NumPy path and the fused numba path (NNSCRATCH_FUSED).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import nnscratch as nn
from nnscratch.functions.base import Context
from nnscratch.functions.dropout import Dropout as DropoutFn
from nnscratch.functions.embedding import Embedding as EmbeddingFn
from nnscratch.functions.lstm import LSTMCell as LSTMCellFn
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.embedding import Embedding
from nnscratch.layers.lstm import LSTM, LSTMCell
from nnscratch.testing import check_backward, check_layer
from strategies import arrays, shapes

PATHS = [pytest.param("0", id="plain"), pytest.param("1", id="fused")]


@contextlib.contextmanager
def fused_env(flag: str):
    """NNSCRATCH_FUSED=flag inside the block (a context manager, not monkeypatch: hypothesis
    rejects function-scoped fixtures under @given)."""
    old = os.environ.get("NNSCRATCH_FUSED")
    os.environ["NNSCRATCH_FUSED"] = flag
    try:
        yield
    finally:
        if old is None:
            del os.environ["NNSCRATCH_FUSED"]
        else:
            os.environ["NNSCRATCH_FUSED"] = old


# ==============================================================================================
# Function registry (house style of test_grad_functions.py): name, Function, reference, inputs
# ==============================================================================================
@dataclass
class Entry:
    name: str
    fn: type
    reference: Callable
    inputs: st.SearchStrategy  # draws (inputs, options)
    check: list


@st.composite
def _embedding_inputs(draw):
    V = draw(st.integers(1, 6))
    D = draw(st.integers(1, 4))
    idx_shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    idx = np.asarray(draw(arrays(idx_shape,
                                 elements=st.integers(0, V - 1).map(float)))).astype(np.int64)
    W = draw(arrays((V, D)))
    return [idx, W], {}


@st.composite
def _dropout_inputs(draw):
    shape = draw(shapes(max_dims=3))
    x = draw(arrays(shape))
    p = draw(st.sampled_from([0.1, 0.3, 0.5, 0.9]))
    # the same shape, or broadcast along the leading axes (e.g. one mask for every time step)
    mshape = tuple(1 if (k < len(shape) - 1 and draw(st.booleans())) else s
                   for k, s in enumerate(shape))
    keep = np.asarray(draw(arrays(mshape, elements=st.booleans().map(float))))
    return [x, keep / (1 - p)], {}


def _ref_embedding(idx, W, padding_idx=None):
    return np.eye(W.shape[0])[idx] @ W          # one-hot rows times the table


REGISTRY = [
    Entry("embedding", EmbeddingFn, _ref_embedding, _embedding_inputs(), check=[1]),
    Entry("dropout", DropoutFn, lambda x, mask: x * mask, _dropout_inputs(), check=[0]),
]


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
@given(data=st.data())
def test_function_forward_matches_reference(entry, data):
    inputs, options = data.draw(entry.inputs)
    y = entry.fn.forward(Context(), *inputs, **options)
    np.testing.assert_allclose(y, entry.reference(*inputs, **options), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda e: e.name)
@given(data=st.data())
def test_function_backward_matches_numerical_gradient(entry, data):
    inputs, options = data.draw(entry.inputs)
    check_backward(entry.fn, inputs, options, check=entry.check)


@pytest.mark.parametrize("path", ["plain", "numba"])
@given(case=_embedding_inputs())
def test_embedding_function_paths(case, path):
    """Both backward paths (add.at and the numba scatter-add) pass the gradient check."""
    inputs, _ = case
    check_backward(EmbeddingFn, inputs, {"path": path}, check=[1])


# ==============================================================================================
# Layers
# ==============================================================================================
@given(data=st.data(), V=st.integers(2, 6), D=st.integers(1, 4), use_pad=st.booleans())
def test_embedding_layer_gradients(data, V, D, use_pad):
    """Repeated ids add up; the padding row gets no gradient (its positions get dy = 0 here,
    since the numerical derivative of that row would see them; test_lstm_behaviour checks the
    row stays at zero gradient with a non-zero dy)."""
    pad = data.draw(st.integers(0, V - 1)) if use_pad else None
    idx = np.asarray(data.draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4),
                                      elements=st.integers(0, V - 1).map(float)))).astype(np.int64)
    layer = Embedding(V, D, padding_idx=pad).to(dtype=np.float64)
    dy = np.random.default_rng(0).standard_normal(idx.shape + (D,))
    if pad is not None:
        dy[idx == pad] = 0.0
    check_layer(layer, [idx], dys=[dy])


@given(x=arrays(shapes(max_dims=3)), p=st.sampled_from([0.2, 0.5]), data=st.data())
def test_dropout_layer_gradients_with_mask(x, p, data):
    keep = np.asarray(data.draw(arrays(x.shape, elements=st.booleans().map(float))))
    check_layer(Dropout(p), [x], forward_kwargs={"mask": keep / (1 - p)})


@st.composite
def _cell_case(draw):
    B, I, H = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = draw(arrays((B, I)))
    state = (draw(arrays((B, H))), draw(arrays((B, H)))) if draw(st.booleans()) else None
    forget_bias = draw(st.sampled_from([0.0, 1.0]))
    return x, state, I, H, forget_bias


def _ref_cell(x, h, c, W_ih, W_hh, b):
    """An independent LSTM step (scipy's expit, explicit gate blocks [i, f, g, o])."""
    H = h.shape[1]
    a = x @ W_ih.T + h @ W_hh.T + b
    i, f = sp.expit(a[:, :H]), sp.expit(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), sp.expit(a[:, 3 * H:])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


@pytest.mark.parametrize("path", ["plain", "numba"])
@given(data=st.data(), B=st.integers(1, 4), I=st.integers(1, 4), H=st.integers(1, 4))
def test_lstm_cell_function_forward_matches_reference(path, data, B, I, H):
    x, h, c = data.draw(arrays((B, I))), data.draw(arrays((B, H))), data.draw(arrays((B, H)))
    W_ih, W_hh, b = (data.draw(arrays((4 * H, I))), data.draw(arrays((4 * H, H))),
                     data.draw(arrays((4 * H,))))
    h_new, c_new = LSTMCellFn.forward(Context(), x, h, c, W_ih, W_hh, b, path=path)
    h_ref, c_ref = _ref_cell(x, h, c, W_ih, W_hh, b)
    np.testing.assert_allclose(h_new, h_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_new, c_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fused", PATHS)
@settings(max_examples=25)
@given(case=_cell_case())
def test_lstm_cell_gradients(fused, case):
    x, state, I, H, forget_bias = case
    nn.manual_seed(3)
    cell = LSTMCell(I, H, forget_bias=forget_bias).to(dtype=np.float64)
    inputs = [x] if state is None else [x, state]
    with fused_env(fused):
        check_layer(cell, inputs)


@pytest.mark.parametrize("fused", PATHS)
@settings(max_examples=10)
@given(steps=st.integers(1, 3), B=st.integers(1, 2), I=st.integers(1, 3), H=st.integers(1, 2),
       data=st.data())
def test_lstm_cell_unrolled_gradients(fused, steps, B, I, H, data):
    """The context stack: T forwards, then T backwards in reverse (BPTT through the cell).

    Wrapped as a layer whose forward runs the cell over a (T, B, I) input and returns all h."""
    nn.manual_seed(4)
    cell = LSTMCell(I, H).to(dtype=np.float64)
    xs = data.draw(arrays((steps, B, I)))

    class Unrolled(nn.Layer):
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, xs):
            state, hs = None, []
            for t in range(len(xs)):
                state = self.cell(xs[t], state)
                hs.append(state[0])
            return np.stack(hs)

        def backward(self, dhs):
            dh, dc = np.zeros_like(dhs[0]), None
            dxs = np.empty((len(dhs), B, I))
            for t in reversed(range(len(dhs))):
                dxs[t], (dh, dc) = self.cell.backward(dh + dhs[t], dc)
            return dxs

    with fused_env(fused):
        check_layer(Unrolled(), [xs])


@st.composite
def _lstm_case(draw, layers=None):
    L = draw(st.integers(1, 2)) if layers is None else layers
    D = draw(st.sampled_from([1, 2]))
    B, T = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    I, H = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = draw(arrays((B, T, I)))
    state = None
    if draw(st.booleans()):
        state = (draw(arrays((L * D, B, H))), draw(arrays((L * D, B, H))))
    mask = None
    if draw(st.booleans()):  # any pattern: padding at the end, in the middle, whole rows
        mask = np.asarray(draw(arrays((B, T), elements=st.booleans().map(float)))).astype(bool)
    return L, D, B, T, I, H, x, state, mask


@pytest.mark.parametrize("fused", PATHS)
@settings(max_examples=20)
@given(case=_lstm_case())
def test_lstm_gradients(fused, case):
    """1-2 layers, 1-2 directions, with and without an initial state and a mask."""
    L, D, B, T, I, H, x, state, mask = case
    nn.manual_seed(5)
    lstm = LSTM(I, H, num_layers=L, bidirectional=D == 2).to(dtype=np.float64)
    inputs = [x] if state is None else [x, state]
    with fused_env(fused):
        check_layer(lstm, inputs, forward_kwargs={"mask": mask})


@pytest.mark.parametrize("fused", PATHS)
def test_lstm_gradients_two_layers_bidirectional_state_and_mask(fused):
    """The fullest case, fixed: 2 layers, both directions, initial state, a ragged mask."""
    rng = np.random.default_rng(11)
    B, T, I, H = 3, 4, 2, 2
    x = rng.uniform(-2, 2, (B, T, I))
    state = (rng.uniform(-2, 2, (4, B, H)), rng.uniform(-2, 2, (4, B, H)))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1]], dtype=bool)
    nn.manual_seed(6)
    lstm = LSTM(I, H, num_layers=2, bidirectional=True, forget_bias=1.0).to(dtype=np.float64)
    with fused_env(fused):
        check_layer(lstm, [x, state], forward_kwargs={"mask": mask})


@settings(max_examples=10)
@given(case=_lstm_case(layers=2))
def test_lstm_gradients_with_dropout_between_layers(case):
    """Training-mode dropout between layers: the generator is reseeded before every forward so
    each evaluation draws the same masks, and backward must route through them."""
    L, D, B, T, I, H, x, state, mask = case
    nn.manual_seed(7)
    lstm = LSTM(I, H, num_layers=2, bidirectional=D == 2, dropout=0.4).to(dtype=np.float64)
    forward = lstm.forward

    def seeded_forward(*args, **kw):
        nn.manual_seed(99)
        return forward(*args, **kw)

    object.__setattr__(lstm, "forward", seeded_forward)
    inputs = [x] if state is None else [x, state]
    check_layer(lstm, inputs, forward_kwargs={"mask": mask})


@pytest.mark.parametrize("fused", PATHS)
@settings(max_examples=10)
@given(case=_lstm_case(), V=st.integers(1, 4))
def test_lstm_with_folded_embedding_gradients(fused, case, V):
    """lstm(ids, embedding=emb): gradients of the table (lstm.md (24)) and of every LSTM weight."""
    L, D, B, T, I, H, _, state, mask = case
    nn.manual_seed(12)
    emb = Embedding(V, I).to(dtype=np.float64)
    lstm = LSTM(I, H, num_layers=L, bidirectional=D == 2).to(dtype=np.float64)
    ids = np.random.default_rng(V).integers(0, V, size=(B, T))

    class Folded(nn.Layer):
        def __init__(self):
            super().__init__()
            self.emb, self.lstm = emb, lstm

        def forward(self, state=None):
            return self.lstm(ids, state, mask=mask, embedding=self.emb)

        def backward(self, grads):
            _, dstate = self.lstm.backward(grads)
            return dstate

    with fused_env(fused):
        check_layer(Folded(), [] if state is None else [state])
