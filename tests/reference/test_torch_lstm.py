"""Parity with PyTorch: torch.nn.LSTM (2 layers, bidirectional, batch_first), LSTMCell, Embedding.

Torch's weights are copied into ours (its two biases b_ih + b_hh summed into our one bias);
outputs, final states and every gradient (inputs, initial states, each parameter) must match,
rtol 1e-6 in float64 (1e-4 in float32). Both the plain and the fused CPU path are compared.
Skipped only when torch is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nnscratch as nn  # noqa: E402
from nnscratch.layers.embedding import Embedding  # noqa: E402
from nnscratch.layers.lstm import LSTM, LSTMCell  # noqa: E402
from nnscratch.testing import check_parity  # noqa: E402

RTOL = 1e-6


@pytest.fixture(params=["0", "1"], ids=["plain", "fused"])
def fused(request, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_FUSED", request.param)
    return request.param


def _close(ours, theirs, name, rtol=RTOL, atol=1e-12):
    check_parity(ours, theirs.detach().cpu().numpy(), rtol=rtol, atol=atol, name=name)


def _pair(L, D, I, H, dtype=torch.float64, dropout=0.0):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, num_layers=L, bidirectional=D == 2, batch_first=True,
                        dropout=dropout).to(dtype)
    ours = LSTM(I, H, num_layers=L, bidirectional=D == 2, dropout=dropout).to(
        dtype=np.float64 if dtype == torch.float64 else np.float32)
    for k in range(L):
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            W_ih, W_hh, b = ours.layer_params(k, d)
            W_ih.data[...] = getattr(ref, "weight_ih" + sfx).detach().numpy()
            W_hh.data[...] = getattr(ref, "weight_hh" + sfx).detach().numpy()
            b.data[...] = (getattr(ref, "bias_ih" + sfx)
                           + getattr(ref, "bias_hh" + sfx)).detach().numpy()
    return ours, ref


def _compare_grads(ours, ref, L, D, rtol=RTOL, atol=1e-12):
    for k in range(L):
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            W_ih, W_hh, b = ours.layer_params(k, d)
            _close(W_ih.grad, getattr(ref, "weight_ih" + sfx).grad, "dW_ih" + sfx, rtol, atol)
            _close(W_hh.grad, getattr(ref, "weight_hh" + sfx).grad, "dW_hh" + sfx, rtol, atol)
            _close(b.grad, getattr(ref, "bias_ih" + sfx).grad, "db (b_ih)" + sfx, rtol, atol)
            _close(b.grad, getattr(ref, "bias_hh" + sfx).grad, "db (b_hh)" + sfx, rtol, atol)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_lstm_2_layers_bidirectional_matches_torch(fused, with_state):
    L, D, B, T, I, H = 2, 2, 3, 7, 5, 6
    rng = np.random.default_rng(0)
    ours, ref = _pair(L, D, I, H)
    x = rng.normal(size=(B, T, I))
    state = tuple(rng.normal(size=(L * D, B, H)) for _ in range(2)) if with_state else None
    dy = rng.normal(size=(B, T, D * H))
    dh, dc = rng.normal(size=(L * D, B, H)), rng.normal(size=(L * D, B, H))

    y, (h_n, c_n) = ours(x, state)
    dx, (dh0, dc0) = ours.backward(dy, (dh, dc))

    xt = torch.tensor(x, requires_grad=True)
    if with_state:
        h0t, c0t = (torch.tensor(s, requires_grad=True) for s in state)
        yt, (hnt, cnt) = ref(xt, (h0t, c0t))
    else:
        yt, (hnt, cnt) = ref(xt)
    loss = (yt * torch.from_numpy(dy)).sum() + (hnt * torch.from_numpy(dh)).sum() \
        + (cnt * torch.from_numpy(dc)).sum()
    loss.backward()
    _close(y, yt, "y")
    _close(h_n, hnt, "h_n")
    _close(c_n, cnt, "c_n")
    _close(dx, xt.grad, "dx")
    if with_state:
        _close(dh0, h0t.grad, "dh0")
        _close(dc0, c0t.grad, "dc0")
    _compare_grads(ours, ref, L, D)


def test_mask_matches_torch_packed_sequences(fused):
    """A right-padded batch with a mask = torch's packed sequence, both directions, and the final
    states are those of each row's last real step."""
    L, D, B, T, I, H = 2, 2, 4, 6, 3, 5
    rng = np.random.default_rng(1)
    lengths = np.array([6, 2, 5, 1])
    ours, ref = _pair(L, D, I, H)
    x = rng.normal(size=(B, T, I))
    mask = np.arange(T)[None, :] < lengths[:, None]
    state = tuple(rng.normal(size=(L * D, B, H)) for _ in range(2))
    dy = rng.normal(size=(B, T, D * H)) * mask[:, :, None]
    dh, dc = rng.normal(size=(L * D, B, H)), rng.normal(size=(L * D, B, H))
    y, (h_n, c_n) = ours(x, state, mask=mask)
    dx, (dh0, dc0) = ours.backward(dy, (dh, dc))

    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = (torch.tensor(s, requires_grad=True) for s in state)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out, (hnt, cnt) = ref(packed, (h0t, c0t))
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    ((yt * torch.from_numpy(dy)).sum() + (hnt * torch.from_numpy(dh)).sum()
     + (cnt * torch.from_numpy(dc)).sum()).backward()
    _close(y, yt, "y")
    _close(h_n, hnt, "h_n")
    _close(c_n, cnt, "c_n")
    _close(dx, xt.grad, "dx")
    _close(dh0, h0t.grad, "dh0")
    _close(dc0, c0t.grad, "dc0")
    _compare_grads(ours, ref, L, D)


def test_lstm_float32_matches_torch(fused):
    """The default dtype: float32 within float32 tolerance (the fused path's rational tanh)."""
    L, D, B, T, I, H = 2, 1, 8, 20, 16, 32
    rng = np.random.default_rng(2)
    ours, ref = _pair(L, D, I, H, dtype=torch.float32)
    x = rng.normal(size=(B, T, I)).astype(np.float32)
    dy = rng.normal(size=(B, T, H)).astype(np.float32)
    y, _ = ours(x)
    dx, _ = ours.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt, _ = ref(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    _close(y, yt, "y", rtol=1e-4, atol=1e-5)
    _close(dx, xt.grad, "dx", rtol=1e-4, atol=1e-5)
    _compare_grads(ours, ref, L, D, rtol=1e-4, atol=1e-4)


def test_stateful_step_matches_torch_one_token_at_a_time(fused):
    L, I, H = 2, 4, 6
    rng = np.random.default_rng(3)
    ours, ref = _pair(L, 1, I, H)
    x = rng.normal(size=(1, 5, I))
    state, state_t = None, None
    with nn.no_grad(), torch.no_grad():
        for t in range(5):
            y, state = ours.step(x[:, t], state)
            yt, state_t = ref(torch.from_numpy(x[:, t:t + 1]), state_t)
            _close(y, yt[:, 0], f"y_{t}")
    _close(state[0], state_t[0], "h")
    _close(state[1], state_t[1], "c")


def test_lstm_cell_matches_torch_over_steps(fused):
    """T forwards then T backwards in reverse (the context stack) = autograd through torch's
    cell."""
    B, T, I, H = 3, 4, 5, 6
    rng = np.random.default_rng(4)
    torch.manual_seed(1)
    ref = torch.nn.LSTMCell(I, H).double()
    cell = LSTMCell(I, H).to(dtype=np.float64)
    cell.weight_ih.data[...] = ref.weight_ih.detach().numpy()
    cell.weight_hh.data[...] = ref.weight_hh.detach().numpy()
    cell.bias.data[...] = (ref.bias_ih + ref.bias_hh).detach().numpy()
    x = rng.normal(size=(T, B, I))
    h0, c0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    dhs = rng.normal(size=(T, B, H))
    state, outs = (h0, c0), []
    for t in range(T):
        state = cell(x[t], state)
        outs.append(state[0])
    dh, dc = np.zeros((B, H)), None
    dxs = np.empty_like(x)
    for t in reversed(range(T)):
        dxs[t], (dh, dc) = cell.backward(dh + dhs[t], dc)

    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    st, loss = (h0t, c0t), 0
    for t in range(T):
        st = ref(xt[t], st)
        _close(outs[t], st[0], f"h_{t}")
        loss = loss + (st[0] * torch.from_numpy(dhs[t])).sum()
    loss.backward()
    _close(dxs, xt.grad, "dx")
    _close(dh, h0t.grad, "dh0")
    _close(dc, c0t.grad, "dc0")
    _close(cell.weight_ih.grad, ref.weight_ih.grad, "dW_ih")
    _close(cell.weight_hh.grad, ref.weight_hh.grad, "dW_hh")
    _close(cell.bias.grad, ref.bias_ih.grad, "db")


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_matches_torch(padding_idx):
    rng = np.random.default_rng(5)
    torch.manual_seed(2)
    ref = torch.nn.Embedding(7, 4, padding_idx=padding_idx).double()
    emb = Embedding(7, 4, padding_idx=padding_idx).to(dtype=np.float64)
    emb.weight.data[...] = ref.weight.detach().numpy()
    idx = rng.integers(0, 7, size=(3, 9))
    dy = rng.normal(size=(3, 9, 4))
    y = emb(idx)
    emb.backward(dy)
    yt = ref(torch.from_numpy(idx))
    (yt * torch.from_numpy(dy)).sum().backward()
    _close(y, yt, "y")
    _close(emb.weight.grad, ref.weight.grad, "dW")


def test_folded_embedding_lstm_matches_torch(fused):
    """lstm(ids, embedding=emb) against torch's Embedding -> LSTM (2 layers, bidirectional)."""
    L, D, B, T, V, I, H = 2, 2, 3, 6, 9, 4, 5
    rng = np.random.default_rng(6)
    ours, ref = _pair(L, D, I, H)
    torch.manual_seed(3)
    ref_emb = torch.nn.Embedding(V, I, padding_idx=0).double()
    emb = Embedding(V, I, padding_idx=0).to(dtype=np.float64)
    emb.weight.data[...] = ref_emb.weight.detach().numpy()
    ids = rng.integers(0, V, size=(B, T))
    state = tuple(rng.normal(size=(L * D, B, H)) for _ in range(2))
    dy = rng.normal(size=(B, T, D * H))
    y, (h_n, _) = ours(ids, state, embedding=emb)
    _, (dh0, dc0) = ours.backward(dy)
    h0t, c0t = (torch.tensor(s, requires_grad=True) for s in state)
    yt, (hnt, _) = ref(ref_emb(torch.from_numpy(ids)), (h0t, c0t))
    (yt * torch.from_numpy(dy)).sum().backward()
    _close(y, yt, "y")
    _close(h_n, hnt, "h_n")
    _close(dh0, h0t.grad, "dh0")
    _close(dc0, c0t.grad, "dc0")
    _close(emb.weight.grad, ref_emb.weight.grad, "dE")
    _compare_grads(ours, ref, L, D)
