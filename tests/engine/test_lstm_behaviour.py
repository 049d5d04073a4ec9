"""Behaviour of the sequence layers: masks, truncated BPTT, stateful stepping, the cell against the
layer (teacher forcing, free running), dropout modes, and clear errors on bad input."""
from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.embedding import Embedding
from nnscratch.layers.lstm import LSTM, LSTMCell
from nnscratch.testing import check_layer

RTOL = {"rtol": 1e-10, "atol": 1e-12}


def _f64(layer):
    return layer.to(dtype=np.float64)


def _lstm(I=3, H=4, seed=0, **kw):
    nn.manual_seed(seed)
    return _f64(LSTM(I, H, **kw))


# ==============================================================================================
# Masks: padded steps change neither the loss nor the final state
# ==============================================================================================
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_rows_equal_unpadded_runs(bidirectional):
    """Each row of a right-padded batch gives what it gives alone, cut to its length."""
    rng = np.random.default_rng(0)
    B, T, I, H = 3, 6, 3, 4
    lengths = [6, 2, 4]
    x = rng.normal(size=(B, T, I))
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 1e3                                 # garbage at padded steps must not leak
    lstm = _lstm(I, H, num_layers=2, bidirectional=bidirectional)
    state = tuple(rng.normal(size=(2 * (1 + bidirectional), B, H)) for _ in range(2))
    y, (h_n, c_n) = lstm(x, state, mask=mask)
    for r, n in enumerate(lengths):
        y_r, (h_r, c_r) = lstm(x[r:r + 1, :n], (state[0][:, r:r + 1], state[1][:, r:r + 1]))
        np.testing.assert_allclose(y[r:r + 1, :n], y_r, **RTOL)
        np.testing.assert_allclose(h_n[:, r:r + 1], h_r, **RTOL)
        np.testing.assert_allclose(c_n[:, r:r + 1], c_r, **RTOL)
        assert (y[r, n:] == 0).all()               # outputs at padded steps are 0


def test_padded_steps_change_neither_loss_nor_gradients():
    rng = np.random.default_rng(1)
    B, T, I, H = 2, 5, 3, 4
    mask = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 1]], dtype=bool)  # also holes in the middle
    x = rng.normal(size=(B, T, I))
    dy = rng.normal(size=(B, T, 2 * H))
    results = []
    for garbage in (0.0, 5.0):
        x2 = x.copy()
        x2[~mask] = garbage
        lstm = _lstm(I, H, num_layers=2, bidirectional=True)
        y, (h_n, c_n) = lstm(x2, mask=mask)
        dx, (dh0, dc0) = lstm.backward(dy)
        results.append((y, h_n, c_n, dx, dh0, dc0, *[p.grad for p in lstm.parameters()]))
        assert (dx[~mask] == 0).all()              # no gradient flows into padded inputs
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **RTOL)


def test_all_padding_row_keeps_initial_state():
    lstm = _lstm(2, 3)
    state = (np.ones((1, 2, 3)), 2 * np.ones((1, 2, 3)))
    mask = np.array([[True, True, True], [False, False, False]])
    y, (h_n, c_n) = lstm(np.random.default_rng(2).normal(size=(2, 3, 2)), state, mask=mask)
    np.testing.assert_array_equal(h_n[0, 1], 1.0)
    np.testing.assert_array_equal(c_n[0, 1], 2.0)
    assert (y[1] == 0).all()


# ==============================================================================================
# Truncated backprop through time
# ==============================================================================================
def test_tbptt_carried_state_equals_one_long_forward():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 12, 3))
    lstm = _lstm(3, 4, num_layers=2)
    with nn.no_grad():
        y_full, (h_full, c_full) = lstm(x)
        state, ys = None, []
        for w in range(3):                          # windows of 4 steps
            y, state = lstm(x[:, 4 * w:4 * w + 4], state)
            ys.append(y)
    np.testing.assert_allclose(np.concatenate(ys, axis=1), y_full, **RTOL)
    np.testing.assert_allclose(state[0], h_full, **RTOL)
    np.testing.assert_allclose(state[1], c_full, **RTOL)


def test_tbptt_cuts_the_gradient_at_the_window_start():
    """Window 2 after window 1 (state carried, dh0/dc0 ignored) gives the gradients of window 2
    run alone from that state as a constant; full BPTT over both windows gives others."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 8, 3))
    dy2 = rng.normal(size=(2, 4, 4))
    lstm = _lstm(3, 4, num_layers=2)
    # the training loop: forward/backward window 1, then window 2 from its final state
    y1, state = lstm(x[:, :4])
    lstm.backward(np.zeros_like(y1))
    lstm.zero_grad()
    y2, _ = lstm(x[:, 4:], state)
    dx2, (dh0, dc0) = lstm.backward(dy2)           # dh0, dc0 are dropped: the cut
    tbptt = [p.grad.copy() for p in lstm.parameters()]
    assert np.abs(dh0).max() > 0                   # there was a gradient to cut
    # window 2 alone from the same state, given as plain arrays
    ref = _lstm(3, 4, num_layers=2)
    ref(x[:, 4:], (state[0].copy(), state[1].copy()))
    ref.backward(dy2)
    for a, b in zip(tbptt, ref.parameters()):
        np.testing.assert_allclose(a, b.grad, **RTOL)
    # full BPTT over the 8 steps with the same loss differs (it reaches window 1's steps)
    full = _lstm(3, 4, num_layers=2)
    y, _ = full(x)
    dy = np.concatenate([np.zeros_like(dy2), dy2], axis=1)
    dx, _ = full.backward(dy)
    assert np.abs(dx[:, :4]).max() > 0
    assert not np.allclose(full.weight_hh_l0.grad, tbptt[1])


# ==============================================================================================
# Stateful stepping
# ==============================================================================================
def test_step_continues_a_forward_and_saves_nothing():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 7, 2))
    lstm = _lstm(2, 5, num_layers=2, dropout=0.5).eval()
    y_full, (h_full, c_full) = lstm(x)
    lstm.clear_contexts()
    with nn.no_grad():
        _, state = lstm(x[:, :3])                   # warm up on a prefix, then step
        ys = []
        for t in range(3, 7):
            given = (state[0].copy(), state[1].copy())
            y_t, new_state = lstm.step(x[:, t], state)
            np.testing.assert_array_equal(state[0], given[0])  # the given state is not modified
            state = new_state
            ys.append(y_t)
    np.testing.assert_allclose(np.stack(ys, axis=1), y_full[:, 3:], **RTOL)
    np.testing.assert_allclose(state[0], h_full, **RTOL)
    assert lstm._saved == []


def test_step_reuses_its_buffers(monkeypatch):
    monkeypatch.setenv("NNSCRATCH_FUSED", "1")
    nn.manual_seed(0)
    lstm = LSTM(4, 8, num_layers=2)
    state = None
    with nn.no_grad():
        lstm.step(np.zeros((1, 4), np.float32), state)
        bufs = {k: id(v) for sub in lstm._scratch.values() for b in sub.values()
                for k, v in b.items()}
        for _ in range(5):
            y, state = lstm.step(np.ones((1, 4), np.float32), state)
        after = {k: id(v) for sub in lstm._scratch.values() for b in sub.values()
                 for k, v in b.items()}
    assert bufs == after and y.shape == (1, 8) and y.dtype == np.float32


def test_step_is_unidirectional_only():
    with pytest.raises(ValueError, match=r"LSTM: step\(\) runs a unidirectional LSTM only"):
        LSTM(2, 3, bidirectional=True).step(np.zeros((1, 2), np.float32))


# ==============================================================================================
# The cell: teacher forcing and free running against the layer
# ==============================================================================================
def _cell_from_layer(lstm):
    cell = _f64(LSTMCell(lstm.input_size, lstm.hidden_size))
    cell.weight_ih.data = lstm.weight_ih_l0.data.copy()
    cell.weight_hh.data = lstm.weight_hh_l0.data.copy()
    cell.bias.data = lstm.bias_l0.data.copy()
    return cell


def test_cell_unrolled_equals_layer_forward_and_backward():
    """Teacher forcing with the cell (T forwards, T backwards in reverse) = the LSTM layer."""
    rng = np.random.default_rng(6)
    B, T, I, H = 2, 5, 3, 4
    x = rng.normal(size=(B, T, I))
    dy = rng.normal(size=(B, T, H))
    h0, c0 = rng.normal(size=(1, B, H)), rng.normal(size=(1, B, H))
    lstm = _lstm(I, H, forget_bias=1.0)
    y, (h_n, c_n) = lstm(x, (h0, c0))
    dx, (dh0, dc0) = lstm.backward(dy)
    cell = _cell_from_layer(lstm)
    state, hs = (h0[0], c0[0]), []
    for t in range(T):
        state = cell(x[:, t], state)
        hs.append(state[0])
    np.testing.assert_allclose(np.stack(hs, axis=1), y, **RTOL)
    dh, dc = np.zeros((B, H)), None
    dxs = np.empty_like(x)
    for t in reversed(range(T)):
        dxs[:, t], (dh, dc) = cell.backward(dh + dy[:, t], dc)
    np.testing.assert_allclose(dxs, dx, **RTOL)
    np.testing.assert_allclose(dh, dh0[0], **RTOL)
    np.testing.assert_allclose(dc, dc0[0], **RTOL)
    np.testing.assert_allclose(cell.weight_ih.grad, lstm.weight_ih_l0.grad, **RTOL)
    np.testing.assert_allclose(cell.weight_hh.grad, lstm.weight_hh_l0.grad, **RTOL)
    np.testing.assert_allclose(cell.bias.grad, lstm.bias_l0.grad, **RTOL)


def test_cell_free_running_gradients():
    """Free running: the output of step t is the input of step t+1; BPTT adds both paths."""
    rng = np.random.default_rng(7)
    B, H, T = 2, 3, 4
    nn.manual_seed(8)
    cell = _f64(LSTMCell(H, H))

    class FreeRunning(nn.Layer):
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x0):
            x, state, hs = x0, None, []
            for _ in range(T):
                state = self.cell(x, state)
                x = state[0]
                hs.append(x)
            return np.stack(hs)

        def backward(self, dhs):
            g_h, dc = dhs[T - 1], None
            for t in reversed(range(T)):
                dx, (dh, dc) = self.cell.backward(g_h, dc)
                # h_{t-1} fed the output, step t's input (dx) and step t's state (dh)
                g_h = dhs[t - 1] + dx + dh
            return dx  # the gradient of x0, step 0's input (dh is the zero initial state's)

    check_layer(FreeRunning(), [rng.normal(size=(B, H))])


def test_conductor_hierarchy_gradients():
    """A conductor LSTMCell emits one vector per bar; a decoder LSTM reads it beside the bar's
    notes. Both context stacks (U cell steps, U decoder sequences) unwind in reverse, and the
    gradient of each conductor output is the sum over the bar's steps (the broadcast)."""
    B, Z, Hc, U, S, I, Hd = 2, 2, 2, 2, 3, 2, 2
    nn.manual_seed(10)
    conductor = _f64(LSTMCell(Z, Hc))
    decoder = _f64(LSTM(Hc + I, Hd))

    class Hierarchical(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conductor, self.decoder = conductor, decoder

        def forward(self, z, x):                     # z (B, Z), x (B, U, S, I)
            state, ys = None, []
            for u in range(U):
                state = self.conductor(z, state)
                c_u = np.broadcast_to(state[0][:, None, :], (B, S, Hc))
                y_u, _ = self.decoder(np.concatenate([c_u, x[:, u]], axis=-1))
                ys.append(y_u)
            return np.stack(ys, axis=1)              # (B, U, S, Hd)

        def backward(self, dy):
            dz, dx = np.zeros((B, Z)), np.zeros((B, U, S, I))
            dh, dc = np.zeros((B, Hc)), None
            for u in reversed(range(U)):
                dinp, _ = self.decoder.backward(dy[:, u])
                dx[:, u] = dinp[..., Hc:]
                dz_u, (dh, dc) = self.conductor.backward(dh + dinp[..., :Hc].sum(axis=1), dc)
                dz += dz_u
            return dz, dx

    rng = np.random.default_rng(11)
    check_layer(Hierarchical(), [rng.normal(size=(B, Z)), rng.normal(size=(B, U, S, I))])


def test_cell_backward_order_and_guards():
    cell = LSTMCell(2, 3)
    with pytest.raises(RuntimeError, match="without a matching forward"):
        cell.backward(np.zeros((1, 3), np.float32))
    cell(np.zeros((1, 2), np.float32))
    dx, (dh, dc) = cell.backward(np.ones((1, 3), np.float32))
    assert dx.shape == (1, 2) and dh.shape == dc.shape == (1, 3)
    with pytest.raises(RuntimeError, match="without a matching forward"):
        cell.backward(np.ones((1, 3), np.float32))


# ==============================================================================================
# Dropout: modes, masks, and between stacked LSTM layers
# ==============================================================================================
def test_dropout_modes_and_mask_values():
    x = np.ones((200, 100), np.float32)
    drop = Dropout(0.3)
    y = drop(x)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), y)   # dx = dy * mask
    drop.eval()
    assert drop(x) is x and drop.backward(x) is x
    assert Dropout(0.0)(x) is x
    nn.manual_seed(1)
    a = Dropout(0.5)(x)
    nn.manual_seed(1)
    np.testing.assert_array_equal(Dropout(0.5)(x), a)                  # seeded


def test_dropout_given_mask_is_applied_and_broadcast():
    x = np.arange(12.0).reshape(2, 3, 2)
    mask = np.array([[[2.0, 0.0]]])                                    # (1, 1, 2): every step
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer(x, mask=mask), x * mask)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.broadcast_to(mask, x.shape))
    with pytest.raises(ValueError, match=r"Dropout: mask of shape \(3,\) does not broadcast"):
        layer(x, mask=np.ones(3))
    with pytest.raises(ValueError, match=r"Dropout: p must lie in \[0, 1\], got 1.5"):
        Dropout(1.5)


def test_lstm_dropout_between_layers_only_in_training():
    x = np.random.default_rng(9).normal(size=(2, 5, 3))
    lstm = _lstm(3, 4, num_layers=2, dropout=0.5)
    with nn.no_grad():
        y_train = lstm(x)[0]
        lstm.eval()
        y_eval, y_eval2 = lstm(x)[0], lstm(x)[0]
        assert not np.allclose(y_train, y_eval)
        np.testing.assert_array_equal(y_eval, y_eval2)
        one = _lstm(3, 4, num_layers=1, dropout=0.5)  # a single layer has nothing in between
        np.testing.assert_array_equal(one(x)[0], one.eval()(x)[0])


# ==============================================================================================
# Embedding
# ==============================================================================================
def test_embedding_repeats_add_up_and_padding_row_gets_nothing():
    emb = _f64(Embedding(5, 2, padding_idx=-1))         # -1: the last row, like PyTorch
    assert emb.padding_idx == 4 and (emb.weight.data[4] == 0).all()
    idx = np.array([[1, 1, 4], [1, 3, 4]])
    y = emb(idx)
    assert y.shape == (2, 3, 2)
    assert emb.backward(np.ones((2, 3, 2))) is None
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [0, 3, 0, 1, 0])


@pytest.mark.parametrize("fused", ["0", "1"], ids=["plain", "fused"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_folded_embedding_equals_embedding_then_lstm(fused, bidirectional, monkeypatch):
    """lstm(ids, embedding=emb) = lstm(emb(ids)): outputs, states and every gradient, the padding
    row of the table included (it gets none)."""
    monkeypatch.setenv("NNSCRATCH_FUSED", fused)
    rng = np.random.default_rng(12)
    B, T, V, I, H = 3, 6, 7, 4, 5
    D = 2 if bidirectional else 1
    ids = rng.integers(0, V, size=(B, T))
    ids[0, :2] = 2                                   # the padding token occurs
    mask = rng.uniform(size=(B, T)) > 0.3
    state = tuple(rng.normal(size=(2 * D, B, H)) for _ in range(2))
    dy, dh = rng.normal(size=(B, T, D * H)), rng.normal(size=(2 * D, B, H))
    results = []
    for fold in (True, False):
        nn.manual_seed(13)
        emb = _f64(Embedding(V, I, padding_idx=2))
        lstm = _f64(LSTM(I, H, num_layers=2, bidirectional=bidirectional, dropout=0.3)).eval()
        if fold:
            y, (h_n, c_n) = lstm(ids, state, mask=mask, embedding=emb)
            dx, (dh0, dc0) = lstm.backward(dy, (dh, None))
            assert dx is None and emb._saved == []
        else:
            y, (h_n, c_n) = lstm(emb(ids), state, mask=mask)
            dx, (dh0, dc0) = lstm.backward(dy, (dh, None))
            emb.backward(dx)
        results.append([y, h_n, c_n, dh0, dc0, emb.weight.grad]
                       + [p.grad for p in lstm.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **RTOL)
    assert (results[0][5][2] == 0).all()


def test_folded_embedding_errors():
    lstm, emb = LSTM(4, 3), Embedding(10, 5)
    with pytest.raises(ValueError, match=r"LSTM: the embedding's vectors have 5 features, the "
                                         r"LSTM's input_size is 4"):
        lstm(np.zeros((2, 3), np.int64), embedding=emb)
    emb = Embedding(10, 4)
    with pytest.raises(ValueError, match=r"LSTM \(Embedding\): token ids must lie in \[0, 10\), "
                                         r"got values from 0 to 12"):
        lstm(np.array([[0, 12]]), embedding=emb)
    with pytest.raises(ValueError, match=r"LSTM: with an embedding, expected token ids of shape "
                                         r"\(batch, time\), got \(2, 3, 4\)"):
        lstm(np.zeros((2, 3, 4), np.int64), embedding=emb)


def test_embedding_accepts_python_lists():
    emb = Embedding(4, 3)
    assert emb([[0, 3]]).shape == (1, 2, 3)


# ==============================================================================================
# Initialisation, names, flags
# ==============================================================================================
def test_parameter_names_follow_pytorch_and_forget_bias():
    nn.manual_seed(0)
    lstm = LSTM(3, 50, num_layers=2, bidirectional=True, forget_bias=1.0)
    names = [n for n, _ in lstm.named_parameters()]
    assert names[:6] == ["weight_ih_l0", "weight_hh_l0", "bias_l0", "weight_ih_l0_reverse",
                         "weight_hh_l0_reverse", "bias_l0_reverse"]
    assert lstm.weight_ih_l1.shape == (200, 100) and lstm.weight_hh_l1.shape == (200, 50)
    b = lstm.bias_l0.data
    assert abs(b[50:100].mean() - 1.0) < 0.05 and abs(b[:50].mean()) < 0.05
    assert np.abs(lstm.weight_hh_l0.data).max() <= 1 / np.sqrt(50)
    assert lstm.weight_ih_l0.dtype == np.float32
    with nn.default_dtype(np.float64):
        assert LSTM(2, 2).weight_ih_l0.dtype == np.float64


def test_input_grad_false_skips_dx():
    lstm = _lstm(3, 4, num_layers=2)
    lstm.input_grad = False
    lstm(np.ones((1, 2, 3)))
    dx, (dh0, dc0) = lstm.backward(np.ones((1, 2, 4)))
    assert dx is None and dh0.shape == (2, 1, 4)
    assert lstm.weight_ih_l0.grad is not None


def test_backward_with_only_a_state_gradient():
    """An encoder whose outputs are unused: backward(None, (dh_n, dc_n))."""
    lstm = _lstm(3, 4, num_layers=2, bidirectional=True)
    lstm(np.ones((2, 3, 3)))
    dx, _ = lstm.backward(None, (np.ones((4, 2, 4)), None))
    assert dx.shape == (2, 3, 3) and np.abs(dx).max() > 0


# ==============================================================================================
# Errors name the layer and the shapes
# ==============================================================================================
def test_lstm_errors_name_layer_and_shapes():
    model = nn.Sequential(LSTM(3, 4, num_layers=2))
    lstm = model[0]
    with pytest.raises(ValueError, match=r"LSTM '0': expected input \(batch, time, features\) of "
                                         r"shape \(\.\.\., 3\), got \(2, 5, 7\)"):
        lstm(np.zeros((2, 5, 7), np.float32))
    with pytest.raises(ValueError, match=r"LSTM '0': expected a 3-D input \(batch, time, "
                                         r"features\), got shape \(5, 3\)"):
        lstm(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"LSTM '0': expected state h of shape \(num_layers \* "
                                         r"num_directions, batch, hidden\) = \(2, 2, 4\), "
                                         r"got \(1, 2, 4\)"):
        lstm(np.zeros((2, 5, 3), np.float32), (np.zeros((1, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match=r"state c of shape .* = \(2, 2, 4\), got \(2, 4\)"):
        lstm(np.zeros((2, 5, 3), np.float32), (np.zeros((2, 2, 4)), np.zeros((2, 4))))
    with pytest.raises(ValueError, match=r"LSTM '0': state must be a pair \(h, c\)"):
        lstm(np.zeros((2, 5, 3), np.float32), np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=r"LSTM '0': expected a mask of shape \(batch, time\) = "
                                         r"\(2, 5\), got \(5, 2\)"):
        lstm(np.zeros((2, 5, 3), np.float32), mask=np.ones((5, 2), bool))
    lstm(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError,
                       match=r"LSTM '0': expected dy of shape .* = \(2, 5, 4\), got \(2, 5, 8\)"):
        lstm.backward(np.zeros((2, 5, 8), np.float32))
    with pytest.raises(ValueError, match=r"LSTM '0': expected input \(batch, features\) of shape "
                                         r"\(\.\.\., 3\), got \(1, 4\)"):
        lstm.step(np.zeros((1, 4), np.float32))


def test_lstm_backward_twice_raises():
    lstm = LSTM(2, 3)
    lstm(np.zeros((1, 2, 2), np.float32))
    lstm.backward(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(RuntimeError, match="without a matching forward"):
        lstm.backward(np.zeros((1, 2, 3), np.float32))


def test_cell_errors_name_layer_and_shapes():
    cell = LSTMCell(3, 4)
    with pytest.raises(ValueError,
                       match=r"LSTMCell: expected input of shape \(\.\.\., 3\), got \(2, 5\)"):
        cell(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"LSTMCell: expected state c of shape \(batch, hidden\) = "
                                         r"\(2, 4\), got \(2, 3\)"):
        cell(np.zeros((2, 3), np.float32), (np.zeros((2, 4)), np.zeros((2, 3))))
    with pytest.raises(ValueError, match="LSTM needs positive sizes"):
        LSTM(0, 3)
    with pytest.raises(ValueError, match=r"LSTM: dropout must lie in \[0, 1\)"):
        LSTM(2, 3, dropout=1.0)


def test_embedding_errors_name_layer_and_values():
    model = nn.Sequential(Embedding(10, 4))
    with pytest.raises(ValueError, match=r"Embedding '0': token ids must lie in \[0, 10\), got "
                                         r"values from 2 to 10 \(input shape \(2, 2\)\)"):
        model(np.array([[2, 10], [3, 4]]))
    with pytest.raises(ValueError, match=r"Embedding '0': token ids must lie in \[0, 10\), got "
                                         r"values from -1 to 3"):
        model(np.array([-1, 3]))
    with pytest.raises(ValueError,
                       match=r"Embedding '0': token ids must be integers, got dtype float32"):
        model(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"padding_idx 10 is outside"):
        Embedding(10, 4, padding_idx=10)
