"""The fused LSTM's time loops as CUDA graphs: captured once per shape, then replayed.

The fused GPU path (nnscratch/functions/lstm.py, ``LSTMLayer._forward_fused`` and
``_backward_fused``) launches two things per time step: one cuBLAS GEMM for the recurrence and
one elementwise kernel for the gates (nnscratch/kernels/cuda/lstm.py). At small sizes the GPU
then waits on Python: 2T launches of some microseconds each. Here the same loop, over the same
kernels, is recorded once per shape with CuPy's stream capture
(``Stream.begin_capture`` / ``end_capture``), and every later call of that shape is one
``graph.launch()``.

A graph replays the addresses it was captured with, so each shape owns a set of buffers: every
call copies its inputs in (device-to-device, on the current stream), launches, and copies the
outputs back into the caller's arrays, which stay the caller's own (two layers of one shape, or
a forward and the next step's forward, never share outputs). The first call of a shape runs the
loop eagerly on these buffers (compiling the kernels and creating cuBLAS's handle outside any
capture), then captures it for the next calls.

Switched on by NNSCRATCH_CUDA_GRAPH=1 (nnscratch.backend.cuda_graph_enabled); tested for equal
results against the launch-per-step loop, and its buffer logic on the CPU (with the numba kernels
and a "capture" that replays a Python function), in tests/engine/test_gpu_speed_switches.py.
"""
from __future__ import annotations

from ...backend import cupy_module


def _order(T, reverse):
    """Time steps in processing order (as nnscratch/functions/lstm.py's ``_order``)."""
    return range(T - 1, -1, -1) if reverse else range(T)


def _prev_next(t, reverse):
    """Slots of the states before and after step t in hs, cs (T + 1, B, H) (as ``_prev_next``
    there: forward hs[0] = h0, hs[t + 1] = h_t; reverse hs[T] = h0, hs[t] = h_t)."""
    return (t + 1, t) if reverse else (t, t + 1)


class LoopGraphs:
    """Per-shape buffers and captured graphs of the forward and backward time loops.

    ``xp``: the array module; ``kernels``: a module with ``lstm_forward_step`` and
    ``lstm_backward_step``; ``capture(body)``: records ``body()`` and returns an object whose
    ``launch()`` replays it.
    """

    def __init__(self, xp, kernels, capture):
        self.xp, self.K, self.capture = xp, kernels, capture
        self.forward_graphs: dict[tuple, tuple] = {}
        self.backward_graphs: dict[tuple, tuple] = {}

    def clear(self) -> None:
        """Drop every buffer and graph (they are rebuilt on the next call of each shape)."""
        self.forward_graphs.clear()
        self.backward_graphs.clear()

    # -- forward: (1)-(5) for every step ---------------------------------------------------------
    def forward(self, A, hs, cs, gates, tc, W_hhT, b, m_all, reverse) -> None:
        """Fill hs, cs (T + 1, B, H), gates (T, B, 4H) and tc (T, B, H) from the input projection
        A (T, B, 4H), the initial state in hs, cs, W_hh^T (H, 4H), b (4H,) and the mask
        m_all (T, B), exactly as the eager loop does."""
        xp = self.xp
        T, B, H4 = A.shape
        key = (T, B, H4 // 4, A.dtype.str, bool(reverse))
        first = T if reverse else 0
        entry = self.forward_graphs.get(key)
        if entry is None:
            buf = {"A": xp.empty(A.shape, A.dtype), "hs": xp.empty(hs.shape, hs.dtype),
                   "cs": xp.empty(cs.shape, cs.dtype), "gates": xp.empty(gates.shape, A.dtype),
                   "tc": xp.empty(tc.shape, A.dtype), "W": xp.empty(W_hhT.shape, A.dtype),
                   "b": xp.empty(b.shape, A.dtype), "m": xp.empty(m_all.shape, A.dtype),
                   "ph": xp.empty((B, H4), A.dtype)}
        else:
            buf, graph = entry
        for name, src in (("A", A), ("W", W_hhT), ("b", b), ("m", m_all)):
            buf[name][...] = src
        buf["hs"][first] = hs[first]
        buf["cs"][first] = cs[first]
        if entry is None:
            body = self._forward_body(buf, T, reverse)
            body()                                    # this call's result, and the warm-up
            self.forward_graphs[key] = (buf, self.capture(body))
        else:
            graph.launch()
        for name, dst in (("hs", hs), ("cs", cs), ("gates", gates), ("tc", tc)):
            dst[...] = buf[name]

    def _forward_body(self, buf, T, reverse):
        xp, K = self.xp, self.K
        A, hs, cs, gates, tc = buf["A"], buf["hs"], buf["cs"], buf["gates"], buf["tc"]
        W, b, m, ph = buf["W"], buf["b"], buf["m"], buf["ph"]
        one = A.dtype.type(1)

        def body():
            for t in _order(T, reverse):
                p, n = _prev_next(t, reverse)
                xp.matmul(hs[p], W, out=ph)                                  # (1)
                K.lstm_forward_step(A[t], ph, b, cs[p], hs[p], m[t], one,
                                    gates[t], cs[n], tc[t], hs[n])           # (1)-(5)
        return body

    # -- backward: (6)-(13) for every step, in reverse -------------------------------------------
    def backward(self, dh, dc, dy, G, cs, tc, m_all, W_hh, dA, carry, reverse, masked) -> None:
        """Backprop through time as the eager loop does: dh, dc (B, H) hold dL/dh_T, dL/dc_T on
        entry and dL/dh0, dL/dc0 on return; dA (T, B, 4H) receives every step's gate gradients.
        dy (T, B, H) may be None (zero) and a strided view; ``carry`` is the caller's scratch."""
        xp = self.xp
        T, B, H4 = G.shape
        has_dy = dy is not None
        key = (T, B, H4 // 4, G.dtype.str, bool(reverse), has_dy, bool(masked))
        entry = self.backward_graphs.get(key)
        if entry is None:
            dtype = G.dtype
            buf = {"dh": xp.empty(dh.shape, dtype), "dc": xp.empty(dc.shape, dtype),
                   "dy": xp.empty(tc.shape, dtype) if has_dy else None,
                   "zeros": None if has_dy else xp.zeros(dh.shape, dtype),
                   "G": xp.empty(G.shape, dtype), "cs": xp.empty(cs.shape, dtype),
                   "tc": xp.empty(tc.shape, dtype), "m": xp.empty(m_all.shape, dtype),
                   "W": xp.empty(W_hh.shape, dtype), "dA": xp.empty(dA.shape, dtype),
                   "carry": xp.empty(dh.shape, dtype)}
        else:
            buf, graph = entry
        for name, src in (("dh", dh), ("dc", dc), ("dy", dy), ("G", G), ("cs", cs), ("tc", tc),
                          ("m", m_all), ("W", W_hh)):
            if src is not None:
                buf[name][...] = src
        if entry is None:
            body = self._backward_body(buf, T, reverse, masked)
            body()
            self.backward_graphs[key] = (buf, self.capture(body))
        else:
            graph.launch()
        for name, dst in (("dh", dh), ("dc", dc), ("dA", dA)):
            dst[...] = buf[name]

    def _backward_body(self, buf, T, reverse, masked):
        xp, K = self.xp, self.K
        dh, dc, dy, zeros = buf["dh"], buf["dc"], buf["dy"], buf["zeros"]
        G, cs, tc, m, W, dA, carry = (buf[k] for k in ("G", "cs", "tc", "m", "W", "dA", "carry"))
        one = G.dtype.type(1)

        def body():
            for t in _order(T, not reverse):
                p, _ = _prev_next(t, reverse)
                K.lstm_backward_step(dh, zeros if dy is None else dy[t], dc, G[t], cs[p], tc[t],
                                     m[t], one, dA[t], carry)            # (6)-(12), dc in place
                xp.matmul(dA[t], W, out=dh)                              # (13)
                if masked:
                    xp.add(dh, carry, out=dh)                            # (13): + (1 - m) dh
        return body


def cuda_capture(body):
    """Record ``body()`` on a side stream into a ``cupy.cuda.Graph`` (launched later on the
    current stream). cuBLAS is used once on that stream first, outside the capture, so that
    nothing is created or allocated while capturing."""
    cp = cupy_module()
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        a = cp.ones((2, 2), cp.float32)
        cp.matmul(a, a, out=cp.empty_like(a))
        stream.synchronize()
        stream.begin_capture()
        try:
            body()
        finally:
            graph = stream.end_capture()
    return graph


_graphs: LoopGraphs | None = None


def graphs() -> LoopGraphs:
    """The process's graphs for CuPy arrays and the CUDA kernels (made on first use)."""
    global _graphs
    if _graphs is None:
        from . import lstm as kernels  # noqa: PLC0415

        _graphs = LoopGraphs(cupy_module(), kernels, cuda_capture)
    return _graphs


def forward_loop(A, hs, cs, gates, tc, W_hhT, b, m_all, reverse) -> None:
    graphs().forward(A, hs, cs, gates, tc, W_hhT, b, m_all, reverse)


def backward_loop(dh, dc, dy, G, cs, tc, m_all, W_hh, dA, carry, reverse, masked) -> None:
    graphs().backward(dh, dc, dy, G, cs, tc, m_all, W_hh, dA, carry, reverse, masked)


SPECS = ()  # no kernels of its own: it replays those of nnscratch/kernels/cuda/lstm.py
