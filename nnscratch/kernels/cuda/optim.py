"""CuPy kernel for the Adam / AdamW update: one elementwise launch per parameter.

Equation numbers refer to docs/derivations/optim.md, as in nnscratch/optim.py's plain path.
The kernel is compiled once per process and cached by nnscratch.backend.
"""
from __future__ import annotations

from ...backend import ElementwiseSpec, elementwise_kernel

_ADAM_OP = r"""
    T gk = grad;
    T pk = param;
    if (decoupled) {
        pk = pk * (T)(1.0 - lr * weight_decay);                        // (6) AdamW decay
    } else if (weight_decay != 0.0) {
        gk = gk + (T)weight_decay * pk;                                // (5) L2 term
    }
    T mk = (T)beta1 * m + (T)(1.0 - beta1) * gk;                       // (1)
    T vk = (T)beta2 * v + (T)(1.0 - beta2) * gk * gk;                  // (2)
    m = mk;
    v = vk;
    param = pk - (T)(lr / bias_c1) * mk / (sqrt(vk) / (T)sqrt(bias_c2) + (T)eps);  // (3), (4)
"""


ADAM = ElementwiseSpec(
    name="nnscratch_adam_update",
    in_params="T grad, float64 lr, float64 beta1, float64 beta2, float64 eps, float64 bias_c1, "
              "float64 bias_c2, float64 weight_decay, bool decoupled",
    out_params="T param, T m, T v",
    operation=_ADAM_OP,
)

SPECS = (ADAM,)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, bias_c1, bias_c2, weight_decay, decoupled):
    """(1)-(6) for one parameter, in place: p, m, v (same dtype, same shape as g)."""
    elementwise_kernel(ADAM)(g, float(lr), float(beta1), float(beta2), float(eps), float(bias_c1),
                             float(bias_c2), float(weight_decay), bool(decoupled), p, m, v)
