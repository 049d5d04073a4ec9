"""The LSTM: one step (``LSTMCell``) and one layer over a sequence in one direction (``LSTMLayer``).

Gate blocks are ordered [i, f, g, o] like PyTorch; weights use torch's layout.

Shapes (B batch rows, T time steps, I input features, H hidden units):
    x      : (B, I) for a step;  (T, B, I) time-major for a sequence (one contiguous row per step)
    h, c   : (B, H)              states
    W_ih   : (4H, I)             input weights, blocks [W_ii; W_if; W_ig; W_io]
    W_hh   : (4H, H)             recurrent weights
    b      : (4H,)               one bias (torch's b_ih + b_hh)
    mask   : (T, B) in {0, 1}    1 = real step, 0 = padding (the state is carried through)
    y      : (T, B, H)           outputs (0 at padded steps)

Derivation: docs/derivations/lstm.md, whose equation numbers the code cites as ``# (n)``.

Three paths compute the same thing:
* the plain NumPy path (``path='plain'``): the readable reference, written with the backend's
  array module so it also runs on CuPy;
* the fused CPU path (``'numba'``): the same GEMMs, the gate activations and cell update of a
  step in one numba kernel (nnscratch/kernels/cpu/lstm.py), forward and backward;
* the fused GPU path (``'cuda'``): the same loop with CuPy ElementwiseKernels
  (nnscratch/kernels/cuda/lstm.py), cuBLAS GEMMs, and no host synchronisation in the loop.
``path=None`` picks the fused path of the arrays' device unless ``NNSCRATCH_FUSED=0``.
``LSTMCell`` and ``LSTMLayer`` choose at the top of ``forward`` / ``backward`` between
``_forward_fused`` / ``_backward_fused`` (both fused paths, with the workspace) and
``_forward_plain`` / ``_backward_plain``, the reference to read first.

The structure of both fast paths (Chainer's and cuDNN's): one GEMM for the input projection of
all time steps (1), one GEMM per step for the recurrence (1); in backward one GEMM per step for
the dh recursion (13) and, once the recursion is done, three big GEMMs over all steps at once
for dx, dW_ih and dW_hh (14)-(16), with the per-step gate gradients stacked in dA (T, B, 4H).
Forward saves the gate activations and tanh(c~): backward never recomputes a pre-activation.
On the CPU the fused path recycles its big internal buffers between training steps
(``workspace``). An embedding feeding the first layer can be folded into it (``ids=``, (22)-(24)).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..backend import cuda_graph_enabled, fused_enabled, get_array_module, numba_available
from .activation import sigmoid
from .base import Function

PATHS = ("plain", "numba", "cuda")


def choose_path(xp, dtype, path=None) -> str:
    """The implementation to run: ``path`` if given, else the fused one of the arrays' device."""
    if path is not None:
        if path not in PATHS:
            raise ValueError(f"LSTM: unknown path {path!r}: expected one of {PATHS}")
        if path == "numba" and xp is not np:
            raise ValueError("LSTM: the numba path runs on NumPy arrays only")
        if path == "cuda" and xp is np:
            raise ValueError("LSTM: the cuda path runs on CuPy arrays only")
        return path
    if not fused_enabled():
        return "plain"
    if xp is np:
        ok = numba_available() and np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))
        return "numba" if ok else "plain"
    return "cuda"


def _kernels(path):
    """The module holding ``lstm_forward_step`` / ``lstm_backward_step`` for a fused path."""
    if path == "numba":
        from ..kernels.cpu import lstm as kernels  # noqa: PLC0415 - numba's import is slow
    else:
        from ..kernels.cuda import lstm as kernels  # noqa: PLC0415
    return kernels


# ==============================================================================================
# The plain path's pieces (readable; used by LSTMCell and LSTMLayer)
# ==============================================================================================
def gate_activations(a, H):
    """(2): i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), from pre-activations a (..., 4H)."""
    xp = get_array_module(a)
    return (sigmoid(a[..., 0:H]), sigmoid(a[..., H:2 * H]), xp.tanh(a[..., 2 * H:3 * H]),
            sigmoid(a[..., 3 * H:4 * H]))


def split_gates(G, H):
    """The saved activations G (..., 4H) as (i, f, g, o), each (..., H): views, no copies."""
    return G[..., 0:H], G[..., H:2 * H], G[..., 2 * H:3 * H], G[..., 3 * H:4 * H]


def gate_gradients(dh, dc, i, f, g, o, tc, c_prev):
    """Backward through (2)-(4) for one step.

    dh: dL/dh~ (the new hidden state), dc: the part of dL/dc~ from later steps (both already
    times the mask m_t, (6) and (7), when there is one); returns (da_i, da_f, da_g, da_o,
    dc_prev) with da = dL/da and dc_prev = dc~ * f, the first term of (12).
    """
    dcc = dc + dh * o * (1 - tc * tc)                  # (7)
    da_o = dh * tc * o * (1 - o)                       # (8)
    da_i = dcc * g * i * (1 - i)                       # (9)
    da_g = dcc * i * (1 - g * g)                       # (10)
    da_f = dcc * c_prev * f * (1 - f)                  # (11)
    return da_i, da_f, da_g, da_o, dcc * f             # (12)


# ==============================================================================================
# One step
# ==============================================================================================
class LSTMCell(Function):
    """One LSTM step: (x, h, c) -> (h_new, c_new).

    Forward:
        a = x W_ih^T + h W_hh^T + b                                          (1)
        i = sig(a_i),  f = sig(a_f),  g = tanh(a_g),  o = sig(a_o)            (2)
        c_new = f * c + i * g                                                 (3)
        h_new = o * tanh(c_new)                                               (4)
    Backward, given dh = dL/dh_new and dc = dL/dc_new (from the next step):
        dc~  = dc + dh * o * (1 - tanh(c_new)^2)                              (7)
        da_o = dh * tanh(c_new) * o (1 - o)                                   (8)
        da_i = dc~ * g * i (1 - i)                                            (9)
        da_g = dc~ * i (1 - g^2)                                              (10)
        da_f = dc~ * c * f (1 - f)                                            (11)
        dc_prev = dc~ * f                                                     (12)
        dh_prev = da W_hh                                                     (13)
        dx = da W_ih                                                          (14)
        dW_ih = da^T x,   dW_hh = da^T h,   db = sum over rows of da          (15)-(17)
    (docs/derivations/lstm.md; (5), (6) are the mask, which a single step does not take.)

    ``backward(ctx, dh, dc)`` returns (dx, dh_prev, dc_prev, dW_ih, dW_hh, db); dx is None when
    ``ctx.needs(0)`` is False; ``dc`` may be None (c_new unused).

    ``forward`` and ``backward`` pick the path at the top: ``_forward_fused`` /
    ``_backward_fused`` (one numba or CUDA kernel for the elementwise part) or the plain
    ``_forward_plain`` / ``_backward_plain``; the GEMMs are the same for both.
    """

    @staticmethod
    def forward(ctx, x, h, c, W_ih, W_hh, b, path=None):
        path = choose_path(get_array_module(x), W_ih.dtype, path)
        if path != "plain":
            gates, tc, h_new, c_new = LSTMCell._forward_fused(x, h, c, W_ih, W_hh, b, path)
        else:
            gates, tc, h_new, c_new = LSTMCell._forward_plain(x, h, c, W_ih, W_hh, b)
        ctx.save(x=x, h=h, c=c, W_ih=W_ih, W_hh=W_hh, gates=gates, tc=tc, path=path)
        return h_new, c_new

    @staticmethod
    def backward(ctx, dh, dc=None):
        ctx.consume("LSTMCell")
        xp = get_array_module(ctx.gates)
        if dh is None:
            dh = xp.zeros_like(ctx.tc)
        if dc is None:
            dc = xp.zeros_like(ctx.tc)
        if ctx.path != "plain":
            da, dc_prev = LSTMCell._backward_fused(ctx, dh, dc)              # (7)-(12)
        else:
            da, dc_prev = LSTMCell._backward_plain(ctx, dh, dc)              # (7)-(12)
        dh_prev = da @ ctx.W_hh                                              # (13)
        dx = da @ ctx.W_ih if ctx.needs(0) else None                         # (14)
        dW_ih = da.T @ ctx.x                                                 # (15)
        dW_hh = da.T @ ctx.h                                                 # (16)
        db = da.sum(axis=0)                                                  # (17)
        return dx, dh_prev, dc_prev, dW_ih, dW_hh, db

    # -- the plain path: the reference ---------------------------------------------------------
    @staticmethod
    def _forward_plain(x, h, c, W_ih, W_hh, b):
        """(1)-(4); returns (gates [i, f, g, o] (B, 4H), tanh(c_new), h_new, c_new)."""
        xp = get_array_module(x)
        a = x @ W_ih.T + h @ W_hh.T + b                                      # (1)
        i, f, g, o = gate_activations(a, W_hh.shape[1])                      # (2)
        c_new = f * c + i * g                                                # (3)
        tc = xp.tanh(c_new)
        h_new = o * tc                                                       # (4)
        return xp.concatenate([i, f, g, o], axis=-1), tc, h_new, c_new

    @staticmethod
    def _backward_plain(ctx, dh, dc):
        """(7)-(12): returns da (B, 4H) and dc_prev."""
        xp = get_array_module(ctx.gates)
        i, f, g, o = split_gates(ctx.gates, ctx.W_hh.shape[1])
        da_i, da_f, da_g, da_o, dc_prev = gate_gradients(dh, dc, i, f, g, o, ctx.tc, ctx.c)
        return xp.concatenate([da_i, da_f, da_g, da_o], axis=-1), dc_prev

    # -- the fused path: numba (CPU) or CUDA kernels -------------------------------------------
    @staticmethod
    def _forward_fused(x, h, c, W_ih, W_hh, b, path):
        """The GEMMs of (1), then (1)-(4) in one kernel call."""
        xp = get_array_module(x)
        K = _kernels(path)
        B, H = x.shape[0], W_hh.shape[1]
        dtype = W_ih.dtype
        px = x @ W_ih.T                                                      # (1)
        ph = h @ W_hh.T
        gates = xp.empty((B, 4 * H), dtype)
        c_new = xp.empty((B, H), dtype)
        h_new = xp.empty((B, H), dtype)
        tc = xp.empty((B, H), dtype)
        K.lstm_forward_step(px, ph, b, c, h, xp.ones(B, dtype), dtype.type(1),
                            gates, c_new, tc, h_new)                         # (1)-(4)
        return gates, tc, h_new, c_new

    @staticmethod
    def _backward_fused(ctx, dh, dc):
        """(7)-(12) in one kernel call: returns da (B, 4H) and dc_prev."""
        G, tc = ctx.gates, ctx.tc
        xp = get_array_module(G)
        K = _kernels(ctx.path)
        B = G.shape[0]
        dtype = G.dtype
        da = xp.empty_like(G)
        dc_prev = xp.array(dc, dtype=dtype, copy=True)  # updated in place to dc_prev
        K.lstm_backward_step(dh, xp.zeros_like(tc), dc_prev, G, ctx.c, tc,
                             xp.ones(B, dtype), dtype.type(1), da, xp.empty_like(tc))
        return da, dc_prev


# ==============================================================================================
# One layer, one direction, over a sequence
# ==============================================================================================
class Workspace:
    """Recycles the fused CPU path's big per-sequence buffers between training steps.

    The input projection A, the gates, tanh(c~) and dA never leave the function (unlike hs and
    cs, whose views are returned as y), so once a step's backward is done they can serve the next
    step. A fresh 67 MB NumPy array costs ~10 ms of page faults (the kernel zeroes every page on
    first touch); recycling saves ~4% of a layer's forward + backward at the seed configuration.
    At most ``max_bytes`` are kept (oldest shapes dropped first, so varying sequence lengths do
    not pile up); ``clear()`` returns everything to the system. CuPy needs none of this: its
    memory pool already recycles device memory.
    """

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = max_bytes
        self._free: OrderedDict = OrderedDict()   # (shape, dtype) -> list of arrays
        self._bytes = 0

    def take(self, shape, dtype):
        """A NumPy array of that shape and dtype, contents undefined."""
        key = (tuple(shape), np.dtype(dtype).str)
        free = self._free.get(key)
        if not free:
            return np.empty(shape, dtype)
        a = free.pop()
        if not free:
            del self._free[key]
        self._bytes -= a.nbytes
        return a

    def give(self, *arrays) -> None:
        """Hand arrays back (the caller must hold no other reference to them)."""
        for a in arrays:
            if not isinstance(a, np.ndarray) or a.base is not None or a.nbytes > self.max_bytes:
                continue
            key = (a.shape, a.dtype.str)
            self._free.setdefault(key, []).append(a)
            self._free.move_to_end(key)
            self._bytes += a.nbytes
            while self._bytes > self.max_bytes:       # drop from the least recently used shape
                old_key, old = next(iter(self._free.items()))
                self._bytes -= old.pop(0).nbytes
                if not old:
                    del self._free[old_key]

    def clear(self) -> None:
        self._free.clear()
        self._bytes = 0


workspace = Workspace()


def _input_projection(x, W_ih, ids=None, out=None):
    """x_t W_ih^T for every step at once, (T, B, 4H): one GEMM (1), or, with ``ids``, a lookup in
    the projected embedding table P = E W_ih^T (22). ``out``: a (T, B, 4H) array to write into."""
    xp = get_array_module(x)
    if ids is None:
        T, B, I = x.shape
        if out is None:
            return (x.reshape(T * B, I) @ W_ih.T).reshape(T, B, W_ih.shape[0])     # (1)
        xp.matmul(x.reshape(T * B, I), W_ih.T, out=out.reshape(T * B, W_ih.shape[0]))
        return out
    return xp.take(x @ W_ih.T, ids, axis=0, out=out)                               # (22)


def scatter_rows(ids, rows, V, path="plain"):
    """S (V, n): S[v] = sum of rows[k] over the k with ids[k] = v, i.e. onehot(ids)^T rows   (23)

    Plain path: NumPy's unbuffered ``add.at``; numba: the embedding's scatter-add kernel; CuPy:
    the one-hot product (a GEMM, no atomics contending on few rows) while V is small.
    """
    xp = get_array_module(rows)
    if path == "numba":
        from ..kernels.cpu.embedding import embedding_scatter_add  # noqa: PLC0415

        S = xp.zeros((V, rows.shape[1]), rows.dtype)
        embedding_scatter_add(np.ascontiguousarray(ids), rows, S, -1)
        return S
    if xp is not np and (V <= 4096 or rows.dtype != np.float32 or not hasattr(xp.add, "at")):
        onehot = (ids[:, None] == xp.arange(V)[None, :]).astype(rows.dtype)
        return onehot.T @ rows
    S = xp.zeros((V, rows.shape[1]), rows.dtype)
    xp.add.at(S, ids, rows)
    return S


def _order(T, reverse):
    """Time steps in processing order."""
    return range(T - 1, -1, -1) if reverse else range(T)


def _prev_next(t, reverse):
    """Indices into the state arrays hs, cs (T + 1, B, H) of the state before and after step t.

    Forward:  hs[0] = h0, hs[t + 1] = h_t       (outputs: hs[1:])
    Reverse:  hs[T] = h0, hs[t] = h_t           (outputs: hs[:T])
    so in both cases the previous states of all steps form one contiguous block for (16).
    """
    return (t + 1, t) if reverse else (t, t + 1)


def _state_arrays(xp, shape, dtype, h0, c0, reverse):
    """hs, cs of ``shape`` (T + 1, B, H), with h0, c0 in the first slot processed."""
    hs = xp.empty(shape, dtype)
    cs = xp.empty(shape, dtype)
    first = shape[0] - 1 if reverse else 0
    hs[first] = h0
    cs[first] = c0
    return hs, cs


def _state_grads(xp, shape, dtype, dh_n, dc_n):
    """dh, dc (B, H) to start backprop through time from: fresh copies of dh_n, dc_n, or zeros."""
    dh = xp.zeros(shape, dtype) if dh_n is None else xp.array(dh_n, dtype=dtype, copy=True)
    dc = xp.zeros(shape, dtype) if dc_n is None else xp.array(dc_n, dtype=dtype, copy=True)
    return dh, dc


def _gradients_over_steps(ctx, dA):
    """(dx, dW_ih, dW_hh, db) from the stacked gate gradients dA (T, B, 4H): the big GEMMs over
    all time steps at once, (14)-(17), or with ``ids`` the per-token sums (23), (24)."""
    x = ctx.x
    T, B, H4 = dA.shape
    dA2 = dA.reshape(T * B, H4)
    h_prev = (ctx.hs[1:] if ctx.reverse else ctx.hs[:T]).reshape(T * B, H4 // 4)
    if ctx.ids is None:
        dx = (dA2 @ ctx.W_ih).reshape(x.shape) if ctx.needs(0) else None    # (14)
        dW_ih = dA2.T @ x.reshape(T * B, x.shape[-1])                        # (15)
    else:
        S = scatter_rows(ctx.ids.reshape(-1), dA2, x.shape[0], ctx.path)     # (23)
        dx = S @ ctx.W_ih if ctx.needs(0) else None                          # (24) dE
        dW_ih = S.T @ x                                                      # (24)
    dW_hh = dA2.T @ h_prev                                                   # (16)
    db = dA2.sum(axis=0)                                                     # (17)
    return dx, dW_ih, dW_hh, db


class LSTMLayer(Function):
    """One LSTM layer over a time-major sequence, in one direction, with an optional mask.

    Forward, for t = 0..T-1 (reverse: t = T-1..0), h_prev, c_prev the state before step t:
        a_t = x_t W_ih^T + h_prev W_hh^T + b         (x_t W_ih^T for all t: one GEMM)   (1)
        i, f, g, o = sig(a_i), sig(a_f), tanh(a_g), sig(a_o)                              (2)
        c~_t = f * c_prev + i * g                                                         (3)
        h~_t = o * tanh(c~_t)                                                             (4)
        c_t = m_t c~_t + (1 - m_t) c_prev,  h_t = m_t h~_t + (1 - m_t) h_prev,
        y_t = m_t h~_t                          (no mask: m_t = 1)                          (5)
    Returns y (T, B, H) and the final state (h_n, c_n) (after the last step processed).

    Backward (backprop through time, steps in the opposite order), dh, dc = dL/dh_t, dL/dc_t
    from the later steps (starting from dh_n, dc_n), dy_t from the output:
        dh~ = m_t (dh + dy_t)                                                             (6)
        dc~ = m_t dc + dh~ * o * (1 - tanh(c~_t)^2)                                       (7)
        da_o = dh~ * tanh(c~_t) * o (1 - o),   da_i = dc~ * g * i (1 - i)                 (8), (9)
        da_g = dc~ * i (1 - g^2),              da_f = dc~ * c_prev * f (1 - f)            (10), (11)
        dc_prev = dc~ * f + (1 - m_t) dc                                                  (12)
        dh_prev = da_t W_hh + (1 - m_t) dh                                                (13)
    then, with the da_t stacked over time into dA (T*B, 4H), X (T*B, I), H_prev (T*B, H):
        dX = dA W_ih                                                                      (14)
        dW_ih = dA^T X                                                                    (15)
        dW_hh = dA^T H_prev                                                               (16)
        db = sum of the rows of dA                                                        (17)
    ``backward(ctx, dy, dh_n=None, dc_n=None)`` returns (dx, dh0, dc0, dW_ih, dW_hh, db); any of
    dy, dh_n, dc_n may be None (zero); dx is None when ``ctx.needs(0)`` is False.

    Embedding folded into the layer (``ids`` given): x is then an embedding table E (V, I) and the
    input of step t is E[ids_t], ids (T, B) integers. The input projection becomes a lookup in the
    projected table, and the gradients go through the per-token sums S of dA:
        P = E W_ih^T,   x_t W_ih^T = P[ids_t]          (V GEMM rows instead of T*B)          (22)
        S[v] = sum of the rows of dA where ids = v                                          (23)
        dE = S W_ih,    dW_ih = S^T E                  (replace (14) and (15))               (24)
    and backward returns dE in place of dx.

    ``forward`` and ``backward`` pick the path at the top: ``_forward_fused`` /
    ``_backward_fused`` (numba or CUDA kernels, the CPU's buffers recycled through
    ``workspace``) or the plain ``_forward_plain`` / ``_backward_plain``, the reference.

    The returned y may be a view of a state array saved for backward: do not modify it in place.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, W_ih, W_hh, b, mask=None, reverse=False, path=None, ids=None):
        xp = get_array_module(W_ih)
        path = choose_path(xp, W_ih.dtype, path)
        if mask is not None:  # {0, 1} in the weights' dtype and device: the fused kernels need it
            mask = xp.asarray(mask, dtype=W_ih.dtype)
        if path != "plain":
            hs, cs, gates, tc = LSTMLayer._forward_fused(x, h0, c0, W_ih, W_hh, b, mask, reverse,
                                                         ids, path)
        else:
            hs, cs, gates, tc = LSTMLayer._forward_plain(x, h0, c0, W_ih, W_hh, b, mask, reverse,
                                                         ids)
        ctx.save(x=x, ids=ids, W_ih=W_ih, W_hh=W_hh, gates=gates, tc=tc, hs=hs, cs=cs, mask=mask,
                 reverse=reverse, path=path)
        T = hs.shape[0] - 1
        y = hs[:T] if reverse else hs[1:]
        if mask is not None:
            y = y * mask[:, :, None]                                         # (5): y_t = m_t h~_t
        last = 0 if reverse else T
        return y, hs[last], cs[last]

    @staticmethod
    def backward(ctx, dy, dh_n=None, dc_n=None):
        ctx.consume("LSTMLayer")
        if ctx.path != "plain":
            return LSTMLayer._backward_fused(ctx, dy, dh_n, dc_n)
        return LSTMLayer._backward_plain(ctx, dy, dh_n, dc_n)

    # -- the plain path: the reference ---------------------------------------------------------
    @staticmethod
    def _forward_plain(x, h0, c0, W_ih, W_hh, b, mask, reverse, ids):
        """(1)-(5) step by step; returns the states hs, cs (T + 1, B, H) (see ``_prev_next``),
        the gate activations (T, B, 4H) and tanh(c~_t) (T, B, H)."""
        xp = get_array_module(x)
        T, B = x.shape[:2] if ids is None else ids.shape
        H = W_hh.shape[1]
        hs, cs = _state_arrays(xp, (T + 1, B, H), W_ih.dtype, h0, c0, reverse)
        gates = xp.empty((T, B, 4 * H), W_ih.dtype)                         # [i, f, g, o]
        tc = xp.empty((T, B, H), W_ih.dtype)                                 # tanh(c~_t)
        A = _input_projection(x, W_ih, ids) + b      # (1), input part of every step at once
        for t in _order(T, reverse):
            p, n = _prev_next(t, reverse)
            a = A[t] + hs[p] @ W_hh.T                                        # (1)
            i, f, g, o = gate_activations(a, H)                              # (2)
            c_new = f * cs[p] + i * g                                        # (3)
            tc[t] = xp.tanh(c_new)
            h_new = o * tc[t]                                                # (4)
            gates[t] = xp.concatenate([i, f, g, o], axis=-1)
            if mask is None:
                cs[n], hs[n] = c_new, h_new
            else:                                                            # (5)
                m = mask[t][:, None]
                cs[n] = m * c_new + (1 - m) * cs[p]
                hs[n] = m * h_new + (1 - m) * hs[p]
        return hs, cs, gates, tc

    @staticmethod
    def _backward_plain(ctx, dy, dh_n, dc_n):
        """Backprop through time: (6)-(13) step by step in reverse, then (14)-(17) at once."""
        G, tc, cs, mask, W_hh = ctx.gates, ctx.tc, ctx.cs, ctx.mask, ctx.W_hh
        xp = get_array_module(G)
        T, B, H4 = G.shape
        H = H4 // 4
        dh, dc = _state_grads(xp, (B, H), G.dtype, dh_n, dc_n)    # dL/dh_t, dL/dc_t
        dA = xp.empty((T, B, H4), G.dtype)                         # every step's da_t
        for t in _order(T, not ctx.reverse):                       # the opposite order
            p, _ = _prev_next(t, ctx.reverse)
            i, f, g, o = split_gates(G[t], H)
            dht = dh if dy is None else dh + dy[t]
            m = 1 if mask is None else mask[t][:, None]
            da_i, da_f, da_g, da_o, dc_prev = gate_gradients(
                m * dht, m * dc, i, f, g, o, tc[t], cs[p])                   # (6)-(12)
            dA[t] = xp.concatenate([da_i, da_f, da_g, da_o], axis=-1)
            dh_prev = dA[t] @ W_hh                                           # (13)
            if mask is not None:               # padded rows pass dh, dc on unchanged
                dc_prev = dc_prev + (1 - m) * dc                             # (12)
                dh_prev = dh_prev + (1 - m) * dh                             # (13)
            dh, dc = dh_prev, dc_prev
        dx, dW_ih, dW_hh, db = _gradients_over_steps(ctx, dA)                # (14)-(17)
        return dx, dh, dc, dW_ih, dW_hh, db

    # -- the fused path: numba (CPU) or CUDA kernels, one call per step --------------------------
    @staticmethod
    def _forward_fused(x, h0, c0, W_ih, W_hh, b, mask, reverse, ids, path):
        """(1)-(5) as one GEMM per step and one kernel call; returns what ``_forward_plain``
        does. On the CPU the big buffers come from (and go back to) ``workspace``."""
        xp = get_array_module(x)
        K = _kernels(path)
        pool = workspace if path == "numba" else None
        T, B = x.shape[:2] if ids is None else ids.shape
        H = W_hh.shape[1]
        dtype = W_ih.dtype
        hs, cs = _state_arrays(xp, (T + 1, B, H), dtype, h0, c0, reverse)
        gates = pool.take((T, B, 4 * H), dtype) if pool else xp.empty((T, B, 4 * H), dtype)
        tc = pool.take((T, B, H), dtype) if pool else xp.empty((T, B, H), dtype)  # tanh(c~_t)
        A = _input_projection(x, W_ih, ids, out=pool.take((T, B, 4 * H), dtype) if pool else None)
        # (1); the kernel adds b
        # (H, 4H) C-contiguous: OpenBLAS's small "NN" GEMM is ~15-25% faster than the "NT"
        # one on the transposed view, and this copy (4H*H) is paid once per sequence
        W_hhT = xp.ascontiguousarray(W_hh.T)
        ph = xp.empty((B, 4 * H), dtype)
        m_all = xp.ones((T, B), dtype) if mask is None else mask
        one = dtype.type(1)
        if path == "cuda" and cuda_graph_enabled():  # the loop below, replayed as a CUDA graph
            from ..kernels.cuda.lstm_graph import forward_loop  # noqa: PLC0415
            forward_loop(A, hs, cs, gates, tc, W_hhT, b, m_all, reverse)
        else:
            for t in _order(T, reverse):
                p, n = _prev_next(t, reverse)
                xp.matmul(hs[p], W_hhT, out=ph)                              # (1)
                K.lstm_forward_step(A[t], ph, b, cs[p], hs[p], m_all[t], one,
                                    gates[t], cs[n], tc[t], hs[n])           # (1)-(5)
        if pool:
            pool.give(A)
        return hs, cs, gates, tc

    @staticmethod
    def _backward_fused(ctx, dy, dh_n, dc_n):
        """(6)-(12) in one kernel call and (13) in one GEMM per step, dh and dc updated in place;
        then (14)-(17). On the CPU the big buffers go back to ``workspace``."""
        G, tc, cs, mask, reverse = ctx.gates, ctx.tc, ctx.cs, ctx.mask, ctx.reverse
        xp = get_array_module(G)
        K = _kernels(ctx.path)
        pool = workspace if ctx.path == "numba" else None
        T, B, H4 = G.shape
        H = H4 // 4
        dtype = G.dtype
        W_hh = ctx.W_hh
        dh, dc = _state_grads(xp, (B, H), dtype, dh_n, dc_n)
        dA = pool.take((T, B, H4), dtype) if pool else xp.empty((T, B, H4), dtype)
        m_all = xp.ones((T, B), dtype) if mask is None else mask
        zeros = xp.zeros((B, H), dtype) if dy is None else None
        carry = xp.empty((B, H), dtype)
        one = dtype.type(1)
        if ctx.path == "cuda" and cuda_graph_enabled():  # the loop below, as a CUDA graph
            from ..kernels.cuda.lstm_graph import backward_loop  # noqa: PLC0415
            backward_loop(dh, dc, dy, G, cs, tc, m_all, W_hh, dA, carry, reverse,
                          mask is not None)
        else:
            for t in _order(T, not reverse):
                p, _ = _prev_next(t, reverse)
                K.lstm_backward_step(dh, zeros if dy is None else dy[t], dc, G[t], cs[p], tc[t],
                                     m_all[t], one, dA[t], carry)        # (6)-(12), dc in place
                xp.matmul(dA[t], W_hh, out=dh)                           # (13)
                if mask is not None:
                    dh += carry                                          # (13): + (1 - m) dh
        dx, dW_ih, dW_hh, db = _gradients_over_steps(ctx, dA)            # (14)-(17)
        if pool:  # nothing returned refers to these: the next step may reuse them
            pool.give(dA, G, tc)
            ctx.gates = ctx.tc = None
        return dx, dh, dc, dW_ih, dW_hh, db


# ==============================================================================================
# Inference: one step of a stack of layers, no context, preallocated scratch
# ==============================================================================================
def lstm_step_inference(x, h, c, W_ih, W_hh, b, h_out, c_out, scratch, path=None):
    """h_out, c_out = one step of (1)-(4) from (x, h, c), saving nothing (generation).

    ``scratch`` is a dict the caller keeps between calls (buffers keyed by shape and dtype), so a
    sampling loop allocates nothing here but the state arrays it asked for.
    """
    xp = get_array_module(x)
    path = choose_path(xp, W_ih.dtype, path)
    H = W_hh.shape[1]
    if path == "plain":
        a = x @ W_ih.T + h @ W_hh.T + b                                      # (1)
        i, f, g, o = gate_activations(a, H)                                  # (2)
        c_out[...] = f * c + i * g                                           # (3)
        h_out[...] = o * xp.tanh(c_out)                                      # (4)
        return h_out, c_out
    B = x.shape[0]
    dtype = W_ih.dtype
    key = (B, H, np.dtype(dtype).str)
    buf = scratch.get(key)
    if buf is None:
        buf = {"px": xp.empty((B, 4 * H), dtype), "ph": xp.empty((B, 4 * H), dtype),
               "gates": xp.empty((B, 4 * H), dtype), "tc": xp.empty((B, H), dtype),
               "ones": xp.ones(B, dtype)}
        scratch[key] = buf
    xp.matmul(x, W_ih.T, out=buf["px"])                                      # (1)
    xp.matmul(h, W_hh.T, out=buf["ph"])
    _kernels(path).lstm_forward_step(buf["px"], buf["ph"], b, c, h, buf["ones"], dtype.type(1),
                                     buf["gates"], c_out, buf["tc"], h_out)  # (2)-(4)
    return h_out, c_out
