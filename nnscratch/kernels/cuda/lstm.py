"""CuPy kernels for the LSTM: the gate activations and cell update of one step, fused.

Same signatures and equation numbers as the numba kernels (nnscratch/kernels/cpu/lstm.py) and
the plain path (nnscratch/functions/lstm.py); docs/derivations/lstm.md derives them. The caller
does the GEMMs with cuBLAS (``@`` / ``cupy.matmul``): one for the input projection of all steps,
one per step for the recurrence; these kernels replace the elementwise work of a step.

One thread per (row r, unit j) of the (B, H) state. The (B, 4H) arrays (pre-activations, gates,
their gradients) are ``raw`` and indexed by hand: block k of row r starts at r*4H + k*H. They
are contiguous slices of (T, B, 4H) buffers; the (B, H) arrays may be strided views (the
elementwise indexer handles strides), e.g. one direction's half of a bidirectional dy.

Nothing here reads a value back to the host: a time loop of launches never synchronises.
Kernels are compiled once per process and dtype, and cached (nnscratch.backend).
"""
from __future__ import annotations

from ...backend import ElementwiseSpec, elementwise_kernel

_PREAMBLE = r"""
template <typename T>
__device__ __forceinline__ T lstm_sigmoid(T x) {
    // sigmoid(x) = (1 + tanh(x / 2)) / 2: no exp, so no overflow for large |x|          (2)
    return (T)0.5 * tanh((T)0.5 * x) + (T)0.5;
}
"""

_FORWARD_OP = r"""
    // i: index of (row r, unit j) in the (B, H) state; gate blocks [i, f, g, o] of width H
    const ptrdiff_t r = i / H;
    const ptrdiff_t j = i - r * H;
    const ptrdiff_t a = r * 4 * H + j;
    const T mr = m[r];
    const T keep = (T)1 - mr;
    const T a_i = px[a] + ph[a] + b[j];                               // (1)
    const T a_f = px[a + H] + ph[a + H] + b[j + H];
    const T a_g = px[a + 2 * H] + ph[a + 2 * H] + b[j + 2 * H];
    const T a_o = px[a + 3 * H] + ph[a + 3 * H] + b[j + 3 * H];
    const T gi = lstm_sigmoid(a_i);                                   // (2)
    const T gf = lstm_sigmoid(a_f);
    const T gg = tanh(a_g);
    const T go = lstm_sigmoid(a_o);
    const T cp = c_prev;
    const T cc = gf * cp + gi * gg;                                   // (3)
    const T t = tanh(cc);
    gates[a] = gi;
    gates[a + H] = gf;
    gates[a + 2 * H] = gg;
    gates[a + 3 * H] = go;
    tc = t;
    c = mr * cc + keep * cp;                                          // (5)
    h = mr * (go * t) + keep * h_prev;                                // (4), (5)
"""

_BACKWARD_OP = r"""
    const ptrdiff_t r = i / H;
    const ptrdiff_t j = i - r * H;
    const ptrdiff_t a = r * 4 * H + j;
    const T mr = m[r];
    const T keep = (T)1 - mr;
    const T gi = gates[a];
    const T gf = gates[a + H];
    const T gg = gates[a + 2 * H];
    const T go = gates[a + 3 * H];
    const T t = tc;
    const T dhr = dh;
    const T dct = dc;
    const T dht = mr * (dhr + dy);                                    // (6)
    const T dcc = mr * dct + dht * go * ((T)1 - t * t);               // (7)
    da[a + 3 * H] = dht * t * go * ((T)1 - go);                       // (8)
    da[a] = dcc * gg * gi * ((T)1 - gi);                              // (9)
    da[a + 2 * H] = dcc * gi * ((T)1 - gg * gg);                      // (10)
    da[a + H] = dcc * c_prev * gf * ((T)1 - gf);                      // (11)
    dc = dcc * gf + keep * dct;                                       // (12)
    dh_carry = keep * dhr;                                            // (13)
"""


FORWARD = ElementwiseSpec(
    name="nnscratch_lstm_forward_step",
    in_params="raw T px, raw T ph, raw T b, T c_prev, T h_prev, raw T m, int64 H",
    out_params="raw T gates, T c, T tc, T h",
    operation=_FORWARD_OP,
    preamble=_PREAMBLE,
    raw_ndim=(("px", 2), ("ph", 2), ("gates", 2)),
)

BACKWARD = ElementwiseSpec(
    name="nnscratch_lstm_backward_step",
    in_params="T dh, T dy, raw T gates, T c_prev, T tc, raw T m, int64 H",
    out_params="T dc, raw T da, T dh_carry",
    operation=_BACKWARD_OP,
    raw_ndim=(("gates", 2), ("da", 2)),
)

SPECS = (FORWARD, BACKWARD)


def lstm_forward_step(px, ph, b, c_prev, h_prev, m, one, gates, c, tc, h):
    """(1)-(5) for one step; same arguments as the numba kernel (``one`` is unused here).

    px, ph, gates: contiguous (B, 4H); b (4H,); m (B,) in the weights' dtype; c_prev, h_prev, c,
    tc, h: (B, H).
    """
    elementwise_kernel(FORWARD)(px, ph, b, c_prev, h_prev, m, c_prev.shape[1], gates, c, tc, h)


def lstm_backward_step(dh, dy, dc, gates, c_prev, tc, m, one, da, dh_carry):
    """(6)-(13) for one step; ``dc`` is updated in place to dc_prev (``one`` is unused)."""
    elementwise_kernel(BACKWARD)(dh, dy, gates, c_prev, tc, m, dc.shape[1], dc, da, dh_carry)
