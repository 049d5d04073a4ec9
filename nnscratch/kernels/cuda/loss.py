"""CuPy kernels for softmax cross-entropy: the forward's row reductions and the backward, fused.

Equation numbers refer to nnscratch/functions/loss.py (``SoftmaxCrossEntropy``) and
docs/derivations/loss.md. The plain path chains about ten CuPy operations (log_softmax
as max, subtract, exp, sum, log, subtract; a gather; the weights) and keeps the (N, C)
log-probabilities for backward. Here:

* forward, one warp per row n of the (N, C) logits: the row's max, its log-sum-exp
  ``lse_n = m_n + log sum_j exp(x_nj - m_n)`` and the row's loss ``w_n (lse_n - x_n[t_n])`` (7),
  in one pass over x; only ``lse`` (N,) is kept for backward, not (N, C) log-probabilities;
* backward, one thread per element: ``dx_nj = coef_n (exp(x_nj - lse_n) - [j == t_n])`` (8),
  softmax recomputed from x and lse, with ``coef_n = dL * w_n / sum w`` (or ``dL_n * w_n``).

Switched on by NNSCRATCH_FUSED_XENT=1 (nnscratch.backend.fused_xent_enabled); tested against
the plain CuPy path in tests/engine/test_gpu_speed_switches.py, compiled without a GPU in
tests/engine/test_cuda_compile.py.
"""
from __future__ import annotations

from ...backend import ElementwiseSpec, RawSpec, cupy_module, elementwise_kernel, raw_kernel

_ROWS_PER_BLOCK = 8  # one warp (32 threads) per row

FORWARD = RawSpec(
    name="nnscratch_xent_forward",
    source=r"""
extern "C" __global__ void ${name}(const ${T}* __restrict__ x, const long long* __restrict__ t,
                                   const ${T}* __restrict__ w, const long long n_rows,
                                   const long long C, ${T}* __restrict__ lse,
                                   ${T}* __restrict__ per) {
    // one warp per row of x (n_rows, C), C-contiguous; every lane of a warp has the same row,
    // so a warp leaves the kernel as a whole and the shuffles below see all 32 lanes
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= n_rows) return;
    const ${T}* xr = x + row * C;
    ${T} m = xr[lane < C ? lane : 0];                        // any element starts the max
    for (long long j = lane; j < C; j += 32) m = fmax(m, xr[j]);
    for (int o = 16; o > 0; o >>= 1) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, o));
    ${T} s = 0;
    for (long long j = lane; j < C; j += 32) s += exp(xr[j] - m);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) {
        const ${T} l = m + log(s);                           // log sum_j exp(x_nj)
        lse[row] = l;
        per[row] = w[row] * (l - xr[t[row]]);                // (7): -w_n log_softmax(x_n)[t_n]
    }
}
""",
)

BACKWARD = ElementwiseSpec(
    name="nnscratch_xent_backward",
    in_params="T x, raw T lse, raw int64 t, raw T coef, int64 C",
    out_params="T dx",
    operation=r"""
    // i: flat index of (row r, class j) in the (N, C) logits
    const ptrdiff_t r = i / C;
    const ptrdiff_t j = i - r * C;
    const T p = exp(x - lse[r]);                             // softmax(x_r)_j
    dx = (p - (j == t[r] ? (T)1 : (T)0)) * coef[r];          // (8)
""",
)

SPECS = (FORWARD, BACKWARD)


def softmax_xent_forward(x, t, w):
    """(7) for every row: returns ``lse`` (N,) and the per-row losses (N,).

    x: C-contiguous (N, C) float32/float64 logits; t: (N,) int64 targets in [0, C) (ignored rows
    carry any valid index and w = 0); w: (N,) row weights in x's dtype.
    """
    cp = cupy_module()
    n, c = x.shape
    lse = cp.empty(n, x.dtype)
    per = cp.empty(n, x.dtype)
    if n:
        grid = ((n + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK,)
        raw_kernel(FORWARD, x.dtype)(grid, (32 * _ROWS_PER_BLOCK,),
                                     (x, t, w, cp.int64(n), cp.int64(c), lse, per))
    return lse, per


def softmax_xent_backward(x, lse, t, coef):
    """(8): dx (N, C) from the logits, the saved ``lse``, the targets and ``coef`` (N,), the
    per-row factor dL * w_n / denominator."""
    return elementwise_kernel(BACKWARD)(x, lse, t, coef, x.shape[-1])
