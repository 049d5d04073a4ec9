"""Weight initialisers.

Shapes use PyTorch's layout: (out_features, in_features) for dense weights and
(out_channels, in_channels, *kernel) for convolutions, so
fan_in = shape[1] * prod(kernel) and fan_out = shape[0] * prod(kernel).

Each initialiser draws from the backend's seeded generator (``nnscratch.backend.get_rng``) and
returns an array in the default float dtype on the current device.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import get_default_dtype, get_rng, to_device


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of the given shape."""
    if len(shape) < 1:
        raise ValueError("a weight needs at least one dimension")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _uniform(shape, bound, rng, dtype):
    rng = rng or get_rng()
    return rng.uniform(-bound, bound, shape, dtype=dtype or get_default_dtype())


def _normal(shape, std, rng, dtype):
    rng = rng or get_rng()
    return rng.normal(shape, dtype=dtype or get_default_dtype(), scale=std)


def glorot_uniform(shape, gain: float = 1.0, rng=None, dtype=None):
    """Glorot/Xavier uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)). Keras' default."""
    fan_in, fan_out = fans(shape)
    return _uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), rng, dtype)


def glorot_normal(shape, gain: float = 1.0, rng=None, dtype=None):
    """Glorot/Xavier normal: N(0, gain^2 * 2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return _normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


def he_uniform(shape, rng=None, dtype=None):
    """He/Kaiming uniform for ReLU layers: U(-a, a), a = sqrt(6 / fan_in)."""
    fan_in, _ = fans(shape)
    return _uniform(shape, math.sqrt(6.0 / fan_in), rng, dtype)


def he_normal(shape, rng=None, dtype=None):
    """He/Kaiming normal for ReLU layers: N(0, 2 / fan_in)."""
    fan_in, _ = fans(shape)
    return _normal(shape, math.sqrt(2.0 / fan_in), rng, dtype)


def uniform_fan_in(shape, fan_in: int | None = None, rng=None, dtype=None):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear biases and LSTM weights."""
    fan_in = fans(shape)[0] if fan_in is None else fan_in
    return _uniform(shape, 1.0 / math.sqrt(fan_in), rng, dtype)


def orthogonal(shape, gain: float = 1.0, rng=None, dtype=None):
    """A (semi-)orthogonal matrix (Saxe et al. 2014), for recurrent weights.

    Drawn on the CPU by QR of a Gaussian matrix with the sign of R's diagonal fixed, so the
    result is uniformly distributed over orthogonal matrices; moved to the current device.
    """
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    rng = rng or get_rng()
    if rng.device == "gpu":
        # QR on the host keeps one code path; this runs once at construction.
        a = np.asarray(rng.normal((rows, cols), dtype=np.float64).get())
    else:
        a = rng.normal((rows, cols), dtype=np.float64)
    flat = a.T if rows < cols else a
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    w = np.ascontiguousarray((gain * q).reshape(shape), dtype=dtype or get_default_dtype())
    return to_device(w, rng.device)


def zeros(shape, rng=None, dtype=None):
    rng = rng or get_rng()
    return rng.xp.zeros(shape, dtype=dtype or get_default_dtype())


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "uniform_fan_in": uniform_fan_in,
    "orthogonal": orthogonal,
    "zeros": zeros,
}


def get_initializer(name_or_fn):
    """An initialiser by name (see INITIALIZERS) or a callable ``f(shape, rng=, dtype=)``."""
    if callable(name_or_fn):
        return name_or_fn
    try:
        return INITIALIZERS[name_or_fn]
    except KeyError:
        raise ValueError(
            f"unknown initialiser {name_or_fn!r}: expected one of {sorted(INITIALIZERS)}"
        ) from None
