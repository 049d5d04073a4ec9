"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the ONLY module of the engine (with ``nnscratch/kernels/``) that imports cupy or numba.
Everything else asks it for the array module of its inputs::

    xp = get_array_module(x)      # numpy or cupy
    y = xp.tanh(x)

Device choice
-------------
``NNSCRATCH_DEVICE`` selects where new parameters and arrays live:

* ``cpu``  - NumPy (the default when no GPU is usable);
* ``gpu``  - CuPy; an error if cupy does not import or no CUDA device exists;
* ``auto`` - the GPU if cupy imports and a device exists, else the CPU (the default).

``set_device()`` overrides the variable at run time.

Precision
---------
Arrays are float32 unless asked otherwise; gradient checks switch to float64 with
``default_dtype(np.float64)``.

Randomness
----------
One seeded generator per backend (``manual_seed``, ``get_rng``), so a run is reproducible and
its CPU random state can be saved in a checkpoint.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

_VALID_DEVICES = ("cpu", "gpu", "auto")

# ----------------------------------------------------------------------------------------------
# CuPy discovery (lazy: importing cupy costs time and may fail on machines without CUDA)
# ----------------------------------------------------------------------------------------------
_cupy = None
_cupy_checked = False
_cupy_error: str | None = None


def _load_cupy():
    """Import cupy once; return the module, or None (the reason is kept in ``_cupy_error``)."""
    global _cupy, _cupy_checked, _cupy_error
    if _cupy_checked:
        return _cupy
    _cupy_checked = True
    try:
        import cupy  # noqa: PLC0415 - optional dependency

        if cupy.cuda.runtime.getDeviceCount() < 1:
            _cupy_error = "cupy imported but no CUDA device was found"
            return None
        _cupy = cupy
    except Exception as exc:  # ImportError, CUDARuntimeError, missing driver...
        _cupy_error = f"cupy is not usable: {type(exc).__name__}: {exc}"
        _cupy = None
    return _cupy


def gpu_available() -> bool:
    """True when cupy imports and at least one CUDA device exists."""
    return _load_cupy() is not None


def cupy_module():
    """The cupy module; raises a clear RuntimeError when the GPU backend is unusable."""
    cp = _load_cupy()
    if cp is None:
        raise RuntimeError(
            f"the GPU backend was requested but {_cupy_error}. Install the extra "
            "(pip install 'nnscratch[gpu]') on a machine with an NVIDIA GPU, or set "
            "NNSCRATCH_DEVICE=cpu."
        )
    return cp


# ----------------------------------------------------------------------------------------------
# Device selection
# ----------------------------------------------------------------------------------------------
_device: str | None = None  # resolved lazily from NNSCRATCH_DEVICE


def _resolve(name: str) -> str:
    name = name.strip().lower()
    if name not in _VALID_DEVICES:
        raise ValueError(f"unknown device {name!r}: expected one of {', '.join(_VALID_DEVICES)}")
    if name == "auto":
        return "gpu" if gpu_available() else "cpu"
    if name == "gpu":
        cupy_module()  # raises with the reason when unusable
    return name


def get_device() -> str:
    """The current device, 'cpu' or 'gpu' (from NNSCRATCH_DEVICE on first use, default auto)."""
    global _device
    if _device is None:
        _device = _resolve(os.environ.get("NNSCRATCH_DEVICE", "auto"))
    return _device


def set_device(name: str) -> str:
    """Select 'cpu', 'gpu' or 'auto' for new arrays; returns the resolved device."""
    global _device
    _device = _resolve(name)
    return _device


def xp_for(device: str | None = None):
    """The array module (numpy or cupy) for a device name (None: the current device)."""
    device = get_device() if device is None else _resolve(device)
    return cupy_module() if device == "gpu" else np


def get_array_module(*arrays: Any):
    """numpy or cupy, whichever owns the given arrays (numpy for plain Python values)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_gpu_array(x: Any) -> bool:
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def device_of(x: Any) -> str:
    """'gpu' for a cupy array, 'cpu' otherwise."""
    return "gpu" if is_gpu_array(x) else "cpu"


def to_device(x: Any, device: str | None = None):
    """Copy an array to a device ('cpu', 'gpu'; None: the current device); no copy if already
    there."""
    device = get_device() if device is None else _resolve(device)
    if device == "gpu":
        return cupy_module().asarray(x)
    return to_cpu(x)


def to_cpu(x: Any) -> np.ndarray:
    """A NumPy array from a NumPy or CuPy array (or anything np.asarray accepts)."""
    if is_gpu_array(x):
        return x.get()
    return np.asarray(x)


def synchronize() -> None:
    """Wait for the GPU to finish queued work (timing); a no-op on the CPU."""
    if _cupy is not None:
        _cupy.cuda.get_current_stream().synchronize()


# ----------------------------------------------------------------------------------------------
# Default floating-point type
# ----------------------------------------------------------------------------------------------
_default_dtype = np.dtype(np.float32)


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the dtype of new parameters: float32 (default) or float64 (gradient checks)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _default_dtype = dtype


@contextlib.contextmanager
def default_dtype(dtype):
    """``with default_dtype(np.float64): ...`` builds float64 layers inside the block."""
    previous = _default_dtype
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(previous)


# ----------------------------------------------------------------------------------------------
# Random generators, one per backend
# ----------------------------------------------------------------------------------------------
class Random:
    """A seeded random generator for one backend, with the few draws the engine needs.

    NumPy uses ``numpy.random.Generator`` (PCG64), whose state can be saved and restored
    exactly; CuPy uses ``cupy.random.RandomState``.
    """

    def __init__(self, device: str, seed: int | None):
        self.device = device
        self.seed = seed
        if device == "gpu":
            self._gen = cupy_module().random.RandomState(seed)
        else:
            self._gen = np.random.default_rng(seed)

    @property
    def xp(self):
        return cupy_module() if self.device == "gpu" else np

    def normal(self, size, dtype=None, loc=0.0, scale=1.0):
        dtype = dtype or get_default_dtype()
        if self.device == "gpu":
            return self._gen.normal(loc, scale, size=size, dtype=dtype)
        return (loc + scale * self._gen.standard_normal(size)).astype(dtype, copy=False)

    def uniform(self, low, high, size, dtype=None):
        dtype = dtype or get_default_dtype()
        if self.device == "gpu":
            return self._gen.uniform(low, high, size=size, dtype=dtype)
        return self._gen.uniform(low, high, size).astype(dtype, copy=False)

    def random(self, size, dtype=None):
        """Uniform draws in [0, 1)."""
        dtype = dtype or get_default_dtype()
        if self.device == "gpu":
            return self._gen.random_sample(size=size, dtype=dtype)
        return self._gen.random(size, dtype=np.dtype(dtype))

    def integers(self, low, high, size=None):
        """Integers in [low, high)."""
        if self.device == "gpu":
            return self._gen.randint(low, high, size=size)
        return self._gen.integers(low, high, size=size)

    def permutation(self, n):
        return self._gen.permutation(n)

    def get_state(self):
        """A JSON-serialisable state (CPU only; None on the GPU, whose state is not exported)."""
        if self.device == "gpu":
            return None
        return self._gen.bit_generator.state

    def set_state(self, state) -> None:
        if state is None or self.device == "gpu":
            return
        self._gen.bit_generator.state = state


_rngs: dict[str, Random] = {}
_seed: int | None = None


def manual_seed(seed: int) -> None:
    """Seed the generators of every backend (the CPU one, and the GPU one when usable)."""
    global _seed
    _seed = int(seed)
    _rngs.clear()


def get_rng(device: str | None = None) -> Random:
    """The seeded generator of a backend (None: the current device)."""
    device = get_device() if device is None else _resolve(device)
    if device not in _rngs:
        # The GPU stream gets a different seed so CPU and GPU draws are not the same numbers.
        seed = None if _seed is None else _seed + (7919 if device == "gpu" else 0)
        _rngs[device] = Random(device, seed)
    return _rngs[device]


# ----------------------------------------------------------------------------------------------
# Fused kernels: switches and the CuPy kernel cache
# ----------------------------------------------------------------------------------------------
def fused_enabled() -> bool:
    """Whether fused fast paths (numba / CuPy kernels) may be used; NNSCRATCH_FUSED=0 turns them
    off."""
    return os.environ.get("NNSCRATCH_FUSED", "1") not in ("0", "false", "no")


_numba_checked = False
_numba_ok = False


def numba_available() -> bool:
    global _numba_checked, _numba_ok
    if not _numba_checked:
        _numba_checked = True
        try:
            import numba  # noqa: F401, PLC0415

            _numba_ok = True
        except Exception:
            _numba_ok = False
    return _numba_ok


_kernel_cache: dict[tuple, Any] = {}


def elementwise_kernel(in_params: str, out_params: str, operation: str, name: str,
                       preamble: str = ""):
    """A cached ``cupy.ElementwiseKernel`` (compiled once per process, on first launch)."""
    key = ("ew", name, in_params, out_params, operation, preamble)
    if key not in _kernel_cache:
        cp = cupy_module()
        _kernel_cache[key] = cp.ElementwiseKernel(in_params, out_params, operation, name,
                                                  preamble=preamble)
    return _kernel_cache[key]


def describe() -> dict:
    """Versions and device, for benchmark reports."""
    info = {"device": get_device(), "numpy": np.__version__, "default_dtype": str(_default_dtype)}
    if numba_available():
        import numba  # noqa: PLC0415

        info["numba"] = numba.__version__
    if gpu_available():
        cp = _cupy
        info["cupy"] = cp.__version__
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
    return info
