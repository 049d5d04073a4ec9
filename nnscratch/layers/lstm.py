"""LSTM layers: ``LSTM`` (stacked, bidirectional, masked, stateful stepping) and ``LSTMCell``.

Math and the three implementations (plain NumPy, fused numba, fused CuPy):
nnscratch/functions/lstm.py and docs/derivations/lstm.md. Parameters use PyTorch's names and
layout, so a torch.nn.LSTM's weights copy across (its two biases summed into ours).
"""
from __future__ import annotations

from .. import init as initializers
from ..backend import get_array_module
from ..functions.base import Context
from ..functions.dropout import Dropout as DropoutFn
from ..functions.dropout import dropout_mask_like
from ..functions.embedding import check_ids
from ..functions.lstm import LSTMCell as LSTMCellFn
from ..functions.lstm import LSTMLayer as LSTMLayerFn
from ..functions.lstm import lstm_step_inference
from .base import Layer, Parameter


def _lstm_params(input_size: int, hidden_size: int, forget_bias: float):
    """PyTorch's initialisation, U(-1/sqrt(H), 1/sqrt(H)) for every weight and the bias, plus
    ``forget_bias`` on the forget gate's block of the bias (1.0 is the usual choice: Jozefowicz
    et al. 2015; Keras' unit_forget_bias)."""
    H = hidden_size
    W_ih = initializers.uniform_fan_in((4 * H, input_size), fan_in=H)
    W_hh = initializers.uniform_fan_in((4 * H, H), fan_in=H)
    b = initializers.uniform_fan_in((4 * H,), fan_in=H)
    if forget_bias:
        b[H:2 * H] += forget_bias
    return Parameter(W_ih), Parameter(W_hh), Parameter(b)


class LSTMCell(Layer):
    """One LSTM step, for decoding step by step (sampling, a conductor RNN, teacher forcing).

    Shapes: x (batch, input_size); state (h, c) each (batch, hidden_size), zeros when None;
    weight_ih (4H, input_size), weight_hh (4H, H), bias (4H,), gate blocks [i, f, g, o].

    ``forward(x, state=None) -> (h, c)`` pushes a context; call it T times, then
    ``backward(dh, dc=None) -> (dx, (dh_prev, dc_prev))`` T times: each backward pops the most
    recent step's context (backprop through time in reverse), and adds into the parameters'
    gradients. Feed dh_prev, dc_prev of step t into the backward of step t-1 (adding the loss
    gradient of h_{t-1} to dh_prev). Under ``no_grad()`` nothing is saved.
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 0.0):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"LSTMCell needs positive sizes, got input_size={input_size}, "
                             f"hidden_size={hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.forget_bias = forget_bias
        self.weight_ih, self.weight_hh, self.bias = _lstm_params(input_size, hidden_size,
                                                                 forget_bias)

    def forward(self, x, state=None):
        W = self.weight_ih.data
        xp = get_array_module(W)
        x = xp.asarray(x)
        self.check_input(x, ndim=2, last_dim=self.input_size)
        x = x.astype(W.dtype, copy=False)
        B = x.shape[0]
        H = self.hidden_size
        if state is None:
            h = xp.zeros((B, H), W.dtype)
            c = xp.zeros((B, H), W.dtype)
        else:
            h, c = _pair(self, state, "state")
            h, c = xp.asarray(h, dtype=W.dtype), xp.asarray(c, dtype=W.dtype)
            for name, a in (("h", h), ("c", c)):
                if tuple(a.shape) != (B, H):
                    raise ValueError(f"{self.label}: expected state {name} of shape (batch, "
                                     f"hidden) = {(B, H)}, got {tuple(a.shape)}")
        ctx = Context(needs_input_grad=(self.input_grad, True, True, True, True, True))
        h_new, c_new = LSTMCellFn.forward(ctx, x, h, c, W, self.weight_hh.data, self.bias.data)
        self.save_context(ctx)
        return h_new, c_new

    def backward(self, dh, dc=None):
        if isinstance(dh, (tuple, list)) and dc is None:  # backward((dh, dc)): check_layer's call
            dh, dc = dh
        ctx = self.pop_context()
        W = self.weight_ih.data
        xp = get_array_module(W)
        dh = None if dh is None else xp.asarray(dh, dtype=W.dtype)
        dc = None if dc is None else xp.asarray(dc, dtype=W.dtype)
        dx, dh_prev, dc_prev, dW_ih, dW_hh, db = LSTMCellFn.backward(ctx, dh, dc)
        self.weight_ih.accumulate(dW_ih)
        self.weight_hh.accumulate(dW_hh)
        self.bias.accumulate(db)
        return dx, (dh_prev, dc_prev)

    def extra_repr(self) -> str:
        fb = f", forget_bias={self.forget_bias}" if self.forget_bias else ""
        return f"{self.input_size}, {self.hidden_size}{fb}"


def _pair(layer, state, what):
    if not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise ValueError(f"{layer.label}: {what} must be a pair (h, c), got {type(state).__name__}")
    return state


class LSTM(Layer):
    """A stacked, optionally bidirectional LSTM over batch-first sequences.

    Shapes (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size):
        x     (batch, time, input_size)
        state (h0, c0), each (L * D, batch, H), zeros when None; index k * D + d for layer k,
              direction d (0 forward, 1 reverse), like PyTorch
        mask  (batch, time) bool, True at real steps; None = all real
        y     (batch, time, D * H), both directions concatenated [forward, reverse]
    Parameters of layer k: weight_ih_l{k} (4H, in_k), weight_hh_l{k} (4H, H), bias_l{k} (4H,),
    and the same with the suffix ``_reverse``; in_0 = input_size, in_k = D * H above.

    ``forward(x, state=None, mask=None) -> (y, (h_n, c_n))``: at a padded step (mask False) the
    state is carried through unchanged and the output is 0, so padded steps change neither the
    loss nor the final state; with right-padded batches the reverse direction starts at each
    row's last real step, like PyTorch's packed sequences. In training mode, dropout with
    probability ``dropout`` is applied to the outputs of every layer but the last.

    ``backward(dy, dstate=None) -> (dx, (dh0, dc0))``: dstate = (dh_n, dc_n) or None; dy may be
    None when only the final state was used. dx is None when ``input_grad`` is False.

    Truncated backprop through time: pass the previous window's final state as ``state`` (the
    arrays themselves: forward copies them, nothing links the windows) and ignore the dh0, dc0
    that backward returns; the gradient then stops at the window's start (lstm.md, (21)).

    Equations (docs/derivations/lstm.md): each layer and direction is functions.lstm.LSTMLayer,
    (1)-(17); directions are concatenated (18) and their input gradients summed (19); dropout
    between layers is (20).

    ``forward(ids, state, mask, embedding=emb)`` folds an ``Embedding`` into the first layer: x
    is then integer ids (batch, time) and the first layer's input projection is a lookup in the
    projected table E W_ih^T (V rows) instead of a GEMM over every step; backward adds the
    table's gradient into ``emb.weight.grad`` (padding row excluded) and returns dx = None. The
    result equals ``forward(emb(ids), ...)`` (lstm.md, (22)-(24)); the embedding's own
    forward/backward are not called. At the seed configuration this removes three GEMMs of
    8.6 GFLOP each from a training step.

    ``step(x_t, state) -> (y_t, state)``: one time step through all layers for generation,
    saving nothing and applying no dropout (unidirectional only). To train step by step
    (teacher forcing against free running), use ``LSTMCell``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, forget_bias: float = 0.0):
        super().__init__()
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(f"LSTM needs positive sizes, got input_size={input_size}, "
                             f"hidden_size={hidden_size}, num_layers={num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LSTM: dropout must lie in [0, 1), got {dropout}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.forget_bias = forget_bias
        for k in range(num_layers):
            in_k = input_size if k == 0 else hidden_size * self.num_directions
            for d in range(self.num_directions):
                W_ih, W_hh, b = _lstm_params(in_k, hidden_size, forget_bias)
                sfx = self._suffix(k, d)
                setattr(self, "weight_ih" + sfx, W_ih)
                setattr(self, "weight_hh" + sfx, W_hh)
                setattr(self, "bias" + sfx, b)
        self._scratch = {}  # step()'s buffers, by (batch, hidden, dtype, array module)

    @staticmethod
    def _suffix(k: int, d: int) -> str:
        return f"_l{k}" + ("_reverse" if d == 1 else "")

    def layer_params(self, k: int, d: int = 0):
        """(weight_ih, weight_hh, bias) Parameters of layer k, direction d."""
        sfx = self._suffix(k, d)
        return (getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx),
                getattr(self, "bias" + sfx))

    # -- checks ------------------------------------------------------------------------------
    def _state_arrays(self, state, B, xp, dtype, what="state"):
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if state is None:
            return None, None
        h, c = _pair(self, state, what)
        out = []
        for name, a in ((f"{what} h", h), (f"{what} c", c)):
            if a is None:
                out.append(None)
                continue
            a = xp.asarray(a)
            if tuple(a.shape) != shape:
                raise ValueError(
                    f"{self.label}: expected {name} of shape (num_layers * num_directions, batch, "
                    f"hidden) = {shape}, got {tuple(a.shape)}"
                )
            out.append(a.astype(dtype, copy=False))
        return out[0], out[1]

    def _time_major_mask(self, mask, B, T, xp, dtype):
        if mask is None:
            return None
        mask = xp.asarray(mask)
        if tuple(mask.shape) != (B, T):
            raise ValueError(f"{self.label}: expected a mask of shape (batch, time) = {(B, T)}, "
                             f"got {tuple(mask.shape)}")
        return xp.ascontiguousarray(mask.T.astype(bool), dtype=dtype)   # (T, B) in {0, 1}

    # -- computation ------------------------------------------------------------------------------
    def forward(self, x, state=None, mask=None, embedding=None):
        W0 = self.weight_ih_l0.data
        xp = get_array_module(W0)
        dtype = W0.dtype
        x = xp.asarray(x)
        if embedding is not None:
            ids = self._check_ids(x, embedding)
            B, T = ids.shape
            ids = xp.ascontiguousarray(ids.T)                               # time-major (T, B)
            inp = embedding.weight.data.astype(dtype, copy=False)             # the table E (V, I)
        else:
            self.check_input(x, ndim=3, last_dim=self.input_size,
                             what="input (batch, time, features)")
            B, T, _ = x.shape
            ids = None
            inp = xp.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype)  # time-major (T, B, I)
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        h0, c0 = self._state_arrays(state, B, xp, dtype)
        if h0 is None:
            h0 = xp.zeros((L * D, B, H), dtype)
        if c0 is None:
            c0 = xp.zeros((L * D, B, H), dtype)
        m = self._time_major_mask(mask, B, T, xp, dtype)
        h_n = xp.empty((L * D, B, H), dtype)
        c_n = xp.empty((L * D, B, H), dtype)
        saved = []
        for k in range(L):
            ys, ctxs = [], []
            if k == 0 and embedding is not None:
                need_dx = embedding.weight.requires_grad
            else:
                need_dx = self.input_grad or k > 0
            for d in range(D):
                W_ih, W_hh, b = self.layer_params(k, d)
                ctx = Context(needs_input_grad=(need_dx, True, True, True, True, True))
                y, hk, ck = LSTMLayerFn.forward(ctx, inp, h0[k * D + d], c0[k * D + d], W_ih.data,
                                                W_hh.data, b.data, mask=m, reverse=(d == 1),
                                                ids=ids if k == 0 else None)
                h_n[k * D + d] = hk
                c_n[k * D + d] = ck
                ys.append(y)
                ctxs.append(ctx)
            out = ys[0] if D == 1 else xp.concatenate(ys, axis=-1)           # (18) [fwd, reverse]
            dctx = None
            if k < L - 1 and self.training and self.dropout > 0.0:
                dctx = Context()
                out = DropoutFn.forward(dctx, out, dropout_mask_like(out, self.dropout))  # (20)
            saved.append((ctxs, dctx))
            inp = out
        y = xp.ascontiguousarray(out.transpose(1, 0, 2))                   # (B, T, D * H)
        self.save_context(Context(layers=saved, shape=(B, T), embedding=embedding))
        return y, (h_n, c_n)

    def _check_ids(self, ids, embedding):
        """Validate token ids (batch, time) and the embedding that ``forward(..., embedding=)``
        folds into the first layer."""
        if embedding.embedding_dim != self.input_size:
            raise ValueError(f"{self.label}: the embedding's vectors have "
                             f"{embedding.embedding_dim} features, the LSTM's input_size is "
                             f"{self.input_size}")
        if ids.ndim != 2:
            raise ValueError(f"{self.label}: with an embedding, expected token ids of shape "
                             f"(batch, time), got {tuple(ids.shape)}")
        if embedding.check_range:
            check_ids(ids, embedding.num_embeddings, owner=f"{self.label} ({embedding.label})")
        return ids

    def backward(self, dy, dstate=None):
        if isinstance(dy, (tuple, list)) and dstate is None:  # backward((dy, (dh_n, dc_n)))
            dy, dstate = dy
        rec = self.pop_context()
        rec.consume(self.label)
        W0 = self.weight_ih_l0.data
        xp = get_array_module(W0)
        dtype = W0.dtype
        B, T = rec.shape
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        if dy is not None:
            dy = xp.asarray(dy)
            if tuple(dy.shape) != (B, T, D * H):
                raise ValueError(f"{self.label}: expected dy of shape (batch, time, directions * "
                                 f"hidden) = {(B, T, D * H)}, got {tuple(dy.shape)}")
            dy = xp.ascontiguousarray(dy.transpose(1, 0, 2), dtype=dtype)  # time-major
        dh_n, dc_n = self._state_arrays(dstate, B, xp, dtype, what="dstate")
        dh0 = xp.empty((L * D, B, H), dtype)
        dc0 = xp.empty((L * D, B, H), dtype)
        for k in reversed(range(L)):
            ctxs, dctx = rec.layers[k]
            if dctx is not None and dy is not None:
                dy, _ = DropoutFn.backward(dctx, dy)                        # (20)
            dx = None
            for d in range(D):
                idx = k * D + d
                # (18): each direction's slice of dy
                dy_d = None if dy is None else (dy if D == 1 else dy[:, :, d * H:(d + 1) * H])
                dxd, dh0[idx], dc0[idx], dW_ih, dW_hh, db = LSTMLayerFn.backward(
                    ctxs[d], dy_d, None if dh_n is None else dh_n[idx],
                    None if dc_n is None else dc_n[idx])
                W_ih, W_hh, b = self.layer_params(k, d)
                W_ih.accumulate(dW_ih)
                W_hh.accumulate(dW_hh)
                b.accumulate(db)
                if dxd is not None:
                    if dx is None:
                        dx = dxd
                    else:
                        dx += dxd                    # (19): both directions read the same x
            dy = dx
        if rec.embedding is not None:                        # dy is dE (lstm.md, (24))
            if dy is not None:
                if rec.embedding.padding_idx is not None:
                    dy[rec.embedding.padding_idx] = 0        # embedding.md, (3)
                rec.embedding.weight.accumulate(dy)
            return None, (dh0, dc0)
        dx = None if dy is None else xp.ascontiguousarray(dy.transpose(1, 0, 2))
        return dx, (dh0, dc0)

    def step(self, x_t, state=None):
        """One time step of every layer, for generation: (batch, input_size) -> (batch, H).

        Returns ``(y_t, (h, c))`` with new state arrays (L, batch, H); the given state is not
        modified. Saves no context and applies no dropout. Runs the fused kernel of the device
        with buffers kept between calls, so a sampling loop allocates only the new state.
        """
        if self.bidirectional:
            raise ValueError(f"{self.label}: step() runs a unidirectional LSTM only (the reverse "
                             "direction needs the whole sequence)")
        W0 = self.weight_ih_l0.data
        xp = get_array_module(W0)
        dtype = W0.dtype
        x_t = xp.asarray(x_t)
        self.check_input(x_t, ndim=2, last_dim=self.input_size, what="input (batch, features)")
        x_t = x_t.astype(dtype, copy=False)
        B = x_t.shape[0]
        L, H = self.num_layers, self.hidden_size
        h, c = self._state_arrays(state, B, xp, dtype)
        if h is None:
            h = xp.zeros((L, B, H), dtype)
        if c is None:
            c = xp.zeros((L, B, H), dtype)
        h_new = xp.empty((L, B, H), dtype)
        c_new = xp.empty((L, B, H), dtype)
        scratch = self._scratch.setdefault(xp.__name__, {})
        inp = x_t
        for k in range(L):
            W_ih, W_hh, b = self.layer_params(k, 0)
            lstm_step_inference(inp, h[k], c[k], W_ih.data, W_hh.data, b.data, h_new[k], c_new[k],
                                scratch)
            inp = h_new[k]
        return h_new[L - 1], (h_new, c_new)

    def to(self, device=None, dtype=None):
        self._scratch = {}
        return super().to(device, dtype)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.forget_bias:
            parts.append(f"forget_bias={self.forget_bias}")
        return ", ".join(parts)


__all__ = ["LSTM", "LSTMCell"]
