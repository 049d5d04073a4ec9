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
One seeded generator per backend (``manual_seed``, ``get_rng``), so a run is reproducible;
``rng_state()`` / ``set_rng_state()`` capture and restore every backend's generator, for
checkpoints that resume exactly on the CPU and on the GPU.

Switches for the GPU's fast paths (each off by default until measured; docs/benchmarks.md)
----------------------------------------------------------------------------------------
* ``NNSCRATCH_FUSED=0``       - no fused kernels at all (numba or CuPy): the plain path;
* ``NNSCRATCH_CUDA_GRAPH=1``  - the LSTM's time loops replayed as CUDA graphs, one per shape;
* ``NNSCRATCH_FUSED_XENT=1``  - softmax cross-entropy as two fused CUDA kernels;
* ``NNSCRATCH_TF32=1``        - float32 GEMMs on TF32 tensor cores (``set_tf32``).
"""
from __future__ import annotations

import contextlib
import os
import string
import sys
from dataclasses import dataclass
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
    if _cupy is not None and _flag("NNSCRATCH_TF32"):
        set_tf32(True)
    return _cupy


def _cupy_if_loaded():
    """The cupy module when the GPU backend is usable and cupy has been imported (by us or by the
    caller: a CuPy array made before anything here asked for the GPU must still be seen as one);
    None otherwise. Never imports cupy itself."""
    if _cupy is None and not _cupy_checked and "cupy" in sys.modules:
        return _load_cupy()
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
    cp = _cupy_if_loaded()
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def is_gpu_array(x: Any) -> bool:
    cp = _cupy_if_loaded()
    return cp is not None and isinstance(x, cp.ndarray)


def as_array_like(x: Any, ref: Any):
    """``x`` on the device of the array ``ref``: copied to the GPU when ``ref`` is a CuPy array and
    ``x`` is not (a NumPy array, a list, a scalar); returned unchanged otherwise (None too).

    Targets, class weights and inputs often come from NumPy data pipelines; layers and losses
    whose parameters or predictions live on the GPU move them here instead of failing inside
    CuPy with ``TypeError: Unsupported type <class 'numpy.ndarray'>``.
    """
    if x is None or not is_gpu_array(ref) or is_gpu_array(x):
        return x
    return _cupy.asarray(x)


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
        """A JSON-serialisable state that ``set_state`` restores exactly.

        CPU: the PCG64 bit generator's state. GPU: cuRAND's state cannot be read back, so the
        generator draws a fresh seed from its own stream, re-seeds itself with it and returns
        ``{"reseeded": seed}``. From that point the run that saved and a run restored from the
        save draw the same numbers (taking the state is therefore not free of effects on the GPU:
        it moves the stream on, deterministically).
        """
        if self.device == "gpu":
            seed = int(self._gen.randint(0, 2**31 - 1))
            self._gen.seed(seed)
            return {"reseeded": seed}
        return self._gen.bit_generator.state

    def set_state(self, state) -> None:
        if state is None:
            return
        if self.device == "gpu":
            if not (isinstance(state, dict) and "reseeded" in state):
                raise ValueError(f"not a GPU generator state: {state!r:.80}")
            self._gen.seed(int(state["reseeded"]))
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


def rng_state() -> dict:
    """Every backend generator's state, JSON-serialisable, for a checkpoint.

    ``{"seed": <manual_seed's seed or None>, "generators": {"cpu": ..., "gpu": ...}}``: only the
    generators created so far are listed (one not yet created starts from the seed, in the saving
    run and in the resumed one alike). See ``Random.get_state`` for what the GPU's entry is.
    """
    return {"seed": _seed, "generators": {d: g.get_state() for d, g in _rngs.items()}}


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state()`` returned: after it, every generator draws what it drew after
    the save. Generators the state does not list are reset to start from the seed again.

    A GPU entry is ignored on a machine without a GPU (nothing there draws from it). A bare CPU
    bit-generator state (what checkpoints stored before ``rng_state`` existed) restores the CPU
    generator alone.
    """
    global _seed
    if isinstance(state, dict) and "bit_generator" in state:  # the older, CPU-only format
        get_rng("cpu").set_state(state)
        return
    if not (isinstance(state, dict) and "generators" in state):
        raise ValueError("set_rng_state: expected the dict that rng_state() returns, got "
                         f"{type(state).__name__}")
    _seed = None if state.get("seed") is None else int(state["seed"])
    gens = state["generators"]
    _rngs.clear()
    for device, st in gens.items():
        if device == "gpu" and not gpu_available():
            continue
        get_rng(device).set_state(st)


# ----------------------------------------------------------------------------------------------
# Fused kernels: switches and the CuPy kernel cache
# ----------------------------------------------------------------------------------------------
def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def fused_enabled() -> bool:
    """Whether fused fast paths (numba / CuPy kernels) may be used; NNSCRATCH_FUSED=0 turns them
    off."""
    return _flag("NNSCRATCH_FUSED", True)


def cuda_graph_enabled() -> bool:
    """NNSCRATCH_CUDA_GRAPH=1: the fused LSTM's time loops run as captured CUDA graphs (replayed
    per shape, nnscratch/kernels/cuda/lstm_graph.py) instead of one launch per step."""
    return fused_enabled() and _flag("NNSCRATCH_CUDA_GRAPH")


def fused_xent_enabled() -> bool:
    """NNSCRATCH_FUSED_XENT=1: softmax cross-entropy on the GPU as two fused kernels
    (nnscratch/kernels/cuda/loss.py) instead of the plain path's chain of CuPy operations."""
    return fused_enabled() and _flag("NNSCRATCH_FUSED_XENT")


_tf32 = False


def set_tf32(enabled: bool) -> None:
    """Let cuBLAS run float32 GEMMs on TF32 tensor cores (about 10 mantissa bits in the products,
    float32 accumulation), or not (the default: plain FP32). GPU only; NNSCRATCH_TF32=1 turns it
    on when the GPU backend loads. The same switch for PyTorch, in the benchmarks:
    benchmarks/_common.py torch_precision()."""
    global _tf32
    linalg = cupy_module()._core._routines_linalg
    kind = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT
    linalg.set_compute_type(np.float32, kind)
    _tf32 = bool(enabled)


def tf32_enabled() -> bool:
    return _tf32


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


@dataclass(frozen=True)
class ElementwiseSpec:
    """A ``cupy.ElementwiseKernel`` kept as data, so its CUDA source can be built and compiled
    without a GPU (tests/engine/test_cuda_compile.py builds every spec the engine ships).

    ``raw_ndim`` gives the number of dimensions of each ``raw`` array argument as the engine
    launches it (``(("px", 2),)``); raw arrays not named there are 1-D.
    """

    name: str
    in_params: str
    out_params: str
    operation: str
    preamble: str = ""
    raw_ndim: tuple = ()


@dataclass(frozen=True)
class RawSpec:
    """A ``cupy.RawKernel`` kept as data: CUDA C++ where ``${T}`` stands for the floating type
    and ``${name}`` for the kernel's name, which gets the dtype as a suffix (one compiled kernel
    per dtype, e.g. ``nnscratch_xent_forward_float32``)."""

    name: str
    source: str
    options: tuple = ()

    def function_name(self, dtype) -> str:
        return f"{self.name}_{np.dtype(dtype).name}"

    def code(self, dtype) -> str:
        ctype = {"float32": "float", "float64": "double"}[np.dtype(dtype).name]
        return string.Template(self.source).substitute(T=ctype, name=self.function_name(dtype))


def elementwise_kernel(spec: ElementwiseSpec):
    """The ``cupy.ElementwiseKernel`` of a spec, made once per process (CuPy compiles it on the
    first launch for each dtype and layout, and caches the binary)."""
    key = ("ew", spec)
    if key not in _kernel_cache:
        cp = cupy_module()
        _kernel_cache[key] = cp.ElementwiseKernel(spec.in_params, spec.out_params,
                                                  spec.operation, spec.name,
                                                  preamble=spec.preamble)
    return _kernel_cache[key]


def raw_kernel(spec: RawSpec, dtype):
    """The ``cupy.RawKernel`` of a spec for one floating dtype, made once per process."""
    key = ("raw", spec, np.dtype(dtype).name)
    if key not in _kernel_cache:
        cp = cupy_module()
        _kernel_cache[key] = cp.RawKernel(spec.code(dtype), spec.function_name(dtype),
                                          options=spec.options)
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
        info["tf32"] = _tf32
        info["cuda_graph"] = cuda_graph_enabled()
        info["fused_xent"] = fused_xent_enabled()
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
    return info
