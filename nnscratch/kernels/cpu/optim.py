"""numba kernels for optimizer updates: one pass over memory instead of NumPy's ~8 temporaries.

Equation numbers refer to docs/derivations/optim.md and match ``nnscratch/optim.py``'s plain path.
Arrays are flat 1-D views of contiguous parameters.

Why it is written this way (measured on 670k float32 parameters, 2 cores):
* ``error_model='numpy'`` drops Python's division-by-zero checks, which blocked vectorisation
  (1.74 ms -> 0.19 ms per update);
* scalars come in the arrays' dtype, so float32 arrays are updated in float32 SIMD lanes;
* no branch in the loop: Adam's L2 term and AdamW's decay are both applied, one with a zero
  coefficient;
* serial, not ``parallel=True``: numba's worker threads fought OpenBLAS's for the two cores and
  made a training step 4x slower.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def adam_update(p, g, m, v, step_size, beta1, one_m_beta1, beta2, one_m_beta2, inv_sqrt_bc2,
                eps, shrink, l2):
    """In place, element by element:

        p = p * shrink                          (6)  AdamW: shrink = 1 - lr * wd; Adam: 1
        g = g + l2 * p                          (5)  Adam's L2 penalty; AdamW: l2 = 0
        m = beta1 m + (1 - beta1) g             (1)
        v = beta2 v + (1 - beta2) g^2           (2)
        p = p - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)     (3), (4)
            with step_size = lr / (1 - beta1^t), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t)
    """
    for k in range(p.size):
        pk = p[k] * shrink
        gk = g[k] + l2 * pk
        mk = beta1 * m[k] + one_m_beta1 * gk
        vk = beta2 * v[k] + one_m_beta2 * gk * gk
        m[k] = mk
        v[k] = vk
        p[k] = pk - step_size * mk / (np.sqrt(vk) * inv_sqrt_bc2 + eps)
