"""numba kernels for the LSTM: the gate activations and the cell update of one time step, fused.

Equation numbers refer to docs/derivations/lstm.md and match the plain NumPy path in
``nnscratch/functions/lstm.py``. The GEMMs stay outside, in BLAS (the caller does one GEMM for
the input projection of all time steps and one per step for the recurrence); these kernels
replace the ~15 elementwise NumPy passes of a step with one pass over memory.

Layout, per step (B rows, H hidden units, gate blocks [i, f, g, o] of width H):
    px, ph, gates, da : (B, 4H)        c_prev, h_prev, c, h, tc, dh, dc, dy : (B, H)
    b : (4H,)    m : (B,) the step's mask in {0, 1}, in the arrays' dtype (all ones: no mask)

Why it is written this way (measured on 2 cores, seed config B=64, H=512):
* numba's ``math.tanh`` / ``math.exp`` call the scalar libm routines: 16 ns and 2.7 ns per
  float32 element, against 0.4 ns for NumPy's SIMD loops. For float32 the kernels use a
  rational approximation of tanh (Eigen's ``generic_fast_tanh_float``: odd degree-13 over even
  degree-6 polynomial on [-7.905, 7.905], within a few float32 ulp), branch-free, so LLVM
  vectorises the whole step; sigmoid(x) = (1 + tanh(x / 2)) / 2 reuses it and cannot overflow.
  float64 (gradient checks) uses the exact ``math.tanh``.
* no literal constants in the loops: numba types ``1 - x`` with an int literal as float64, which
  would upcast every float32 lane. ``one`` and ``half`` come in the arrays' dtype.
* outputs never alias inputs: an in-place write (gates over the pre-activations) makes LLVM's
  runtime alias check fail and fall back to scalar code.
* ``error_model='numpy'`` (no Python division checks) and serial loops: ``parallel=True`` fought
  OpenBLAS's threads for the two cores (see kernels/cpu/optim.py).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

# -- tanh and sigmoid, specialised per dtype at compile time -----------------------------------
_CLAMP = np.float32(7.90531110763549805)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF32 = np.float32(0.5)


def _tanh(x):  # pragma: no cover - replaced by the overload inside jitted code
    return math.tanh(x)


def _sigmoid(x):  # pragma: no cover - replaced by the overload inside jitted code
    return 0.5 + 0.5 * math.tanh(0.5 * x)


@overload(_tanh, inline="always")
def _tanh_impl(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def fast_tanh32(x):
            # Eigen's rational approximation; the clamp makes it exact to float32 rounding
            # at the ends, where tanh is +-1 to 7 digits.
            x = min(max(x, -_CLAMP), _CLAMP)
            x2 = x * x
            p = x2 * _A13 + _A11
            p = x2 * p + _A9
            p = x2 * p + _A7
            p = x2 * p + _A5
            p = x2 * p + _A3
            p = x2 * p + _A1
            p = x * p
            q = x2 * _B6 + _B4
            q = x2 * q + _B2
            q = x2 * q + _B0
            return p / q
        return fast_tanh32

    def exact_tanh(x):
        return math.tanh(x)
    return exact_tanh


@overload(_sigmoid, inline="always")
def _sigmoid_impl(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def sigmoid32(x):
            return _HALF32 + _HALF32 * _tanh(_HALF32 * x)
        return sigmoid32

    def sigmoid64(x):
        return 0.5 + 0.5 * math.tanh(0.5 * x)
    return sigmoid64


@numba.njit(cache=True, error_model="numpy")
def tanh_array(x, out):
    """out = tanh(x) elementwise with the kernels' tanh (tests compare it with np.tanh)."""
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for k in range(xf.size):
        of[k] = _tanh(xf[k])


@numba.njit(cache=True, error_model="numpy")
def sigmoid_array(x, out):
    """out = sigmoid(x) elementwise with the kernels' sigmoid."""
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for k in range(xf.size):
        of[k] = _sigmoid(xf[k])


# -- one time step, forward ----------------------------------------------------------------------
@numba.njit(cache=True, error_model="numpy")
def lstm_forward_step(px, ph, b, c_prev, h_prev, m, one, gates, c, tc, h):
    """Gates, cell and hidden state of one step, in one pass:

        a = px + ph + b            px = x_t W_ih^T (all steps: one GEMM), ph = h_prev W_hh^T  (1)
        i = sig(a_i), f = sig(a_f), g = tanh(a_g), o = sig(a_o)                              (2)
        c~ = f * c_prev + i * g                                                               (3)
        h~ = o * tanh(c~)                                                                     (4)
        c = m c~ + (1 - m) c_prev,   h = m h~ + (1 - m) h_prev       (padded rows: m = 0)     (5)

    Writes the activations [i, f, g, o] into ``gates``, tanh(c~) into ``tc`` (both saved for
    backward) and the new state into ``c`` and ``h``. Each gate block is taken as its own row
    view (``px[r, H:2H]``) so the inner loop indexes with ``j`` alone: with ``px[r, H + j]``
    numba's negative-index wrap-around checks blocked vectorisation (10x slower).
    """
    B, H = c_prev.shape
    b_i, b_f, b_g, b_o = b[0:H], b[H:2 * H], b[2 * H:3 * H], b[3 * H:4 * H]
    for r in range(B):
        mr = m[r]
        keep = one - mr
        px_i, px_f, px_g, px_o = px[r, 0:H], px[r, H:2 * H], px[r, 2 * H:3 * H], px[r, 3 * H:4 * H]
        ph_i, ph_f, ph_g, ph_o = ph[r, 0:H], ph[r, H:2 * H], ph[r, 2 * H:3 * H], ph[r, 3 * H:4 * H]
        g_i, g_f, g_g, g_o = (gates[r, 0:H], gates[r, H:2 * H], gates[r, 2 * H:3 * H],
                              gates[r, 3 * H:4 * H])
        cp_r, hp_r, c_r, tc_r, h_r = c_prev[r], h_prev[r], c[r], tc[r], h[r]
        for j in range(H):
            i = _sigmoid(px_i[j] + ph_i[j] + b_i[j])                             # (1), (2)
            f = _sigmoid(px_f[j] + ph_f[j] + b_f[j])
            g = _tanh(px_g[j] + ph_g[j] + b_g[j])
            o = _sigmoid(px_o[j] + ph_o[j] + b_o[j])
            cp = cp_r[j]
            cc = f * cp + i * g                                                  # (3)
            t = _tanh(cc)
            g_i[j] = i
            g_f[j] = f
            g_g[j] = g
            g_o[j] = o
            tc_r[j] = t
            c_r[j] = mr * cc + keep * cp                                         # (5)
            h_r[j] = mr * (o * t) + keep * hp_r[j]                               # (4), (5)


# -- one time step, backward ---------------------------------------------------------------------
@numba.njit(cache=True, error_model="numpy")
def lstm_backward_step(dh, dy, dc, gates, c_prev, tc, m, one, da, dh_carry):
    """Gradients of one step, in one pass (``dc`` is updated in place to dc_prev):

        dh~ = m (dh + dy)                 dh: from step t+1, dy: from the output y_t           (6)
        dc~ = m dc + dh~ * o * (1 - tanh(c~)^2)                                              (7)
        da_o = dh~ * tanh(c~) * o (1 - o)                                                     (8)
        da_i = dc~ * g * i (1 - i)                                                            (9)
        da_g = dc~ * i * (1 - g^2)                                                            (10)
        da_f = dc~ * c_prev * f (1 - f)                                                       (11)
        dc_prev = dc~ * f + (1 - m) dc                                                        (12)
        dh_carry = (1 - m) dh        (the caller adds da W_hh to it: dh_prev, (13))

    Writes the pre-activation gradients [da_i, da_f, da_g, da_o] into ``da``.
    """
    B, H = dc.shape
    for r in range(B):
        mr = m[r]
        keep = one - mr
        g_i, g_f, g_g, g_o = (gates[r, 0:H], gates[r, H:2 * H], gates[r, 2 * H:3 * H],
                              gates[r, 3 * H:4 * H])
        da_i, da_f, da_g, da_o = da[r, 0:H], da[r, H:2 * H], da[r, 2 * H:3 * H], da[r, 3 * H:4 * H]
        dh_r, dy_r, dc_r, cp_r, tc_r, carry_r = dh[r], dy[r], dc[r], c_prev[r], tc[r], dh_carry[r]
        for j in range(H):
            i = g_i[j]
            f = g_f[j]
            g = g_g[j]
            o = g_o[j]
            t = tc_r[j]
            dhr = dh_r[j]
            dct = dc_r[j]
            dht = mr * (dhr + dy_r[j])                                           # (6)
            dcc = mr * dct + dht * o * (one - t * t)                             # (7)
            da_o[j] = dht * t * o * (one - o)                                    # (8)
            da_i[j] = dcc * g * i * (one - i)                                    # (9)
            da_g[j] = dcc * i * (one - g * g)                                    # (10)
            da_f[j] = dcc * cp_r[j] * f * (one - f)                              # (11)
            dc_r[j] = dcc * f + keep * dct                                       # (12)
            carry_r[j] = keep * dhr                                              # (13)
