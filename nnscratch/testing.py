"""Gradient checking, shipped so users can test their own functions and layers.

* ``numerical_grad(f, x)``: dL/dx by central differences in float64.
* ``check_backward(fn, inputs, ...)``: a ``Function``'s backward against numerical gradients.
* ``check_layer(layer, inputs, ...)``: a ``Layer``'s backward, for its inputs and every parameter.

The checked scalar is L = sum(y * dy) with a random upstream gradient dy (never sum(y), which
would hide errors that cancel). Small inputs are checked element by element; large ones along
random directions d, comparing (L(x + h d) - L(x - h d)) / 2h with <grad, d> (Chainer's
check_backward). The difference quotient is the five-point central stencil

    f'(x) ~ (-f(x + 2h) + 8 f(x + h) - 8 f(x - h) + f(x - 2h)) / (12 h),

whose error is O(h^4), so float64 checks reach ~1e-9 relative error with h = 1e-3 (keep inputs
at least 2h away from kinks such as ReLU's 0). The reported error of each entry is
|analytic - numeric| / max(|analytic|, |numeric|, floor); the floor keeps near-zero gradients
from dividing by ~0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import get_array_module, to_cpu
from .functions.base import Context

DEFAULT_EPS = 1e-3
DEFAULT_FLOOR = 1e-4
DEFAULT_TOL = 1e-6


class GradientCheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


@dataclass
class CheckResult:
    name: str
    max_rel_error: float
    worst_index: tuple | None
    analytic: np.ndarray
    numeric: np.ndarray


def _stencil(f, x, direction, eps):
    """Five-point central difference of f along ``direction`` (x is modified then restored)."""
    x0 = x.copy()
    vals = []
    for k in (2, 1, -1, -2):
        x[...] = x0 + k * eps * direction
        vals.append(float(f()))
    x[...] = x0
    return (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * eps)


def numerical_grad(f, x, eps: float = DEFAULT_EPS):
    """Every element of dL/dx, where ``f()`` reads ``x`` (modified in place) and returns L."""
    if x.dtype != np.float64:
        raise TypeError(f"numerical_grad needs float64 inputs, got {x.dtype}")
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    e = xp.zeros_like(flat)
    for i in range(flat.size):
        e[i] = 1.0
        gflat[i] = _stencil(f, flat, e, eps)
        e[i] = 0.0
    return grad


def _compare(name, analytic, numeric, floor, tol):
    a, n = to_cpu(analytic).astype(np.float64), to_cpu(numeric).astype(np.float64)
    denom = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
    rel = np.abs(a - n) / denom
    worst = int(np.argmax(rel)) if rel.size else None
    err = float(rel.reshape(-1)[worst]) if rel.size else 0.0
    idx = np.unravel_index(worst, rel.shape) if rel.size else None
    result = CheckResult(name, err, idx, a, n)
    if not err <= tol:  # also catches NaN
        raise GradientCheckError(
            f"gradient check failed for {name}: worst relative error {err:.3e} > {tol:.1e} at "
            f"index {idx}: analytic {a.reshape(-1)[worst]!r}, numeric {n.reshape(-1)[worst]!r}\n"
            f"analytic:\n{a}\nnumeric:\n{n}"
        )
    return result


def _check_array(name, loss, x, analytic, eps, floor, tol, max_elements, n_directions, rng):
    """Check dL/dx for one float64 array, element-wise or along random directions."""
    if analytic is None:
        raise GradientCheckError(f"{name}: backward returned None for a differentiable input")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name}: gradient checks perturb inputs in place; pass a "
                         "contiguous array")
    if tuple(analytic.shape) != tuple(x.shape):
        raise GradientCheckError(
            f"{name}: gradient has shape {tuple(analytic.shape)}, input has {tuple(x.shape)}"
        )
    if x.size <= max_elements:
        return _compare(name, analytic, numerical_grad(loss, x, eps), floor, tol)
    xp = get_array_module(x)
    flat = x.reshape(-1)
    a_dirs, n_dirs = [], []
    for _ in range(n_directions):
        d = xp.asarray(rng.standard_normal(flat.size))
        d /= xp.linalg.norm(d)
        a_dirs.append(float((analytic.reshape(-1) * d).sum()))
        n_dirs.append(_stencil(loss, flat, d, eps))
    return _compare(f"{name} (random directions)", np.array(a_dirs), np.array(n_dirs), floor, tol)


def check_backward(fn, inputs, options=None, check=None, eps: float = DEFAULT_EPS,
                   floor: float = DEFAULT_FLOOR, tol: float = DEFAULT_TOL, max_elements: int = 512,
                   n_directions: int = 4, seed: int = 0, dy=None):
    """Check ``fn.backward`` (a Function class) against numerical gradients.

    Args:
        fn: a class with static ``forward(ctx, *inputs, **options)`` / ``backward(ctx, dy)``.
        inputs: list of arrays; float64 ones are checked unless ``check`` lists the indices.
        options: keyword options for forward (e.g. {'alpha': 0.2}).
        dy: upstream gradient (default: random normal of the output's shape).
    Returns a list of CheckResult; raises GradientCheckError on failure.
    """
    options = options or {}
    rng = np.random.default_rng(seed)
    inputs = list(inputs)
    ctx = Context()
    y = fn.forward(ctx, *inputs, **options)
    xp = get_array_module(y)
    if dy is None:
        dy = xp.asarray(rng.standard_normal(np.shape(y)))
    grads = fn.backward(ctx, dy)
    if check is None:
        check = [i for i, a in enumerate(inputs) if hasattr(a, "dtype") and a.dtype == np.float64]

    def loss():
        return (fn.forward(Context(), *inputs, **options) * dy).sum()

    results = []
    for i in check:
        results.append(_check_array(f"{fn.__name__} input {i}", loss, inputs[i], grads[i], eps,
                                    floor, tol, max_elements, n_directions, rng))
    return results


def _flatten(out):
    """Leaves of a nested tuple/list of arrays (None leaves kept)."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _flatten(o)]
    return [out]


def _unflatten(template, leaves):
    """Rebuild ``template``'s nesting from an iterator of leaves."""
    if isinstance(template, (tuple, list)):
        return tuple(_unflatten(t, leaves) for t in template)
    return next(leaves)


def check_layer(layer, inputs, forward_kwargs=None, check_inputs=None, eps: float = DEFAULT_EPS,
                floor: float = DEFAULT_FLOOR, tol: float = DEFAULT_TOL, max_elements: int = 512,
                n_directions: int = 4, seed: int = 0, output_index=None, dys=None):
    """Check a layer's backward with respect to its float64 inputs and every parameter.

    The layer must hold float64 parameters (``layer.to(dtype=np.float64)``). Forward may return
    one array or a nested tuple of arrays (an LSTM's ``(y, (h, c))``); each output gets its own
    random upstream gradient (``dys`` overrides them, flat or nested). ``backward`` receives the
    gradients in the output's nesting, and may return one input gradient or a tuple (for layers
    with several inputs). Inputs and their gradients are matched as flattened leaves, so
    ``check_inputs`` indexes the flattened inputs. ``output_index`` restricts the check to one
    (flattened) output.
    """
    forward_kwargs = forward_kwargs or {}
    rng = np.random.default_rng(seed)
    inputs = list(inputs)
    in_leaves = _flatten(inputs)  # an input may be a tuple, e.g. an LSTM's (h0, c0)
    if check_inputs is None:
        check_inputs = [i for i, a in enumerate(in_leaves)
                        if hasattr(a, "dtype") and a.dtype == np.float64]

    def run():
        layer.clear_contexts()
        out = layer(*inputs, **forward_kwargs)
        return out

    out = run()
    outs = _flatten(out)
    if dys is None:
        dys = [None if o is None else get_array_module(o).asarray(rng.standard_normal(o.shape))
               for o in outs]
    else:
        dys = _flatten(dys)
    if output_index is not None:
        dys = [d if k == output_index else (None if d is None else d * 0)
               for k, d in enumerate(dys)]

    def loss():
        return sum(float((a * d).sum()) for a, d in zip(_flatten(run()), dys)
                   if a is not None and d is not None)

    layer.zero_grad()
    run()
    dx = layer.backward(_unflatten(out, iter(dys)))
    dxs = _flatten(dx)
    params = [(n, p) for n, p in layer.named_parameters() if p.requires_grad]
    analytic_params = {n: (p.grad.copy() if p.grad is not None else None) for n, p in params}

    results = []
    for i in check_inputs:
        results.append(_check_array(f"{layer.label} input {i}", loss, in_leaves[i], dxs[i], eps,
                                    floor, tol, max_elements, n_directions, rng))
    for n, p in params:
        if p.data.dtype != np.float64:
            raise TypeError(f"check_layer needs float64 parameters; {n} is {p.data.dtype}")
        g = analytic_params[n]
        if g is None:
            g = get_array_module(p.data).zeros_like(p.data)  # an unused parameter: grad must be 0
        results.append(_check_array(f"{layer.label} parameter {n}", loss, p.data, g, eps, floor,
                                    tol, max_elements, n_directions, rng))
    layer.clear_contexts()
    return results


def check_parity(ours, theirs, rtol: float = 1e-6, atol: float = 0.0, name: str = "value"):
    """Assert two arrays match (our result vs a reference such as PyTorch), with a clear message."""
    a, b = to_cpu(ours), np.asarray(theirs)
    if a.shape != b.shape:
        raise AssertionError(f"{name}: shape {a.shape} vs reference {b.shape}")
    if not np.allclose(a, b, rtol=rtol, atol=atol):
        err = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
        i = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
        raise AssertionError(
            f"{name}: mismatch (rtol={rtol}, atol={atol}); worst at {i}: ours {a[i]!r}, "
            f"reference {b[i]!r}"
        )
