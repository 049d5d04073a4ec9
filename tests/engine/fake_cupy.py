"""A stand-in for CuPy on the CPU, to catch device mistakes without a GPU.

Its arrays (``FakeDeviceArray``) are NumPy arrays underneath, so results can be compared with
the plain NumPy path, but they behave like CuPy's in the one way that matters for the traps of
issue 14: an operation that mixes them with a plain NumPy array raises
``TypeError: Unsupported type <class 'numpy.ndarray'>``, as CuPy does, and only ``asarray`` /
``array`` copy host data in. ``x.get()`` copies back. The module has ``random.RandomState``,
``cuda.runtime.getDeviceCount``, ``cuda.get_current_stream`` and the compute-type switch of
``_core._routines_linalg`` (recorded, for the TF32 switch). It has no kernels: tests using it
run with NNSCRATCH_FUSED=0 (``install`` sets it).

It is not CuPy: what passes here must still pass the gpu-marked tests on a GPU.
"""
from __future__ import annotations

import types

import numpy as np


class FakeDeviceArray(np.ndarray):
    """A NumPy array posing as a CuPy array."""

    def get(self):
        return np.array(self.view(np.ndarray))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out", ())
        _reject_host(inputs + tuple(out))
        args = [_plain(a) for a in inputs]
        if out:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if method == "at":
            return None
        if out:
            return out[0] if len(out) == 1 else out
        return _wrap(result)


def _reject_host(values) -> None:
    for v in values:
        if isinstance(v, (list, tuple)):
            _reject_host(v)
        elif isinstance(v, np.ndarray) and not isinstance(v, FakeDeviceArray):
            raise TypeError("Unsupported type <class 'numpy.ndarray'>")


def _plain(v):
    if isinstance(v, FakeDeviceArray):
        return v.view(np.ndarray)
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    return v


def _wrap(v):
    if isinstance(v, FakeDeviceArray):
        return v
    if isinstance(v, np.ndarray):
        return v.view(FakeDeviceArray)
    if isinstance(v, np.generic):  # CuPy returns 0-d arrays where NumPy returns scalars
        return np.asarray(v).view(FakeDeviceArray)
    if isinstance(v, tuple):
        return tuple(_wrap(x) for x in v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def asarray(x, dtype=None):
    if isinstance(x, FakeDeviceArray) and (dtype is None or np.dtype(dtype) == x.dtype):
        return x
    return np.array(_plain(x), dtype=dtype, copy=True).view(FakeDeviceArray)


def array(x, dtype=None, copy=True):
    return np.array(_plain(x), dtype=dtype, copy=True).view(FakeDeviceArray)


class RandomState:
    """cupy.random.RandomState's draws, from NumPy's legacy generator."""

    def __init__(self, seed=None):
        self.seed(seed)

    def seed(self, seed=None):
        self._rs = np.random.RandomState(seed)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return asarray(self._rs.normal(loc, scale, size), dtype=dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return asarray(self._rs.uniform(low, high, size), dtype=dtype)

    def random_sample(self, size=None, dtype=float):
        return asarray(self._rs.random_sample(size), dtype=dtype)

    def randint(self, low, high=None, size=None):
        return asarray(self._rs.randint(low, high, size))

    def permutation(self, n):
        return asarray(self._rs.permutation(n))


class _Stream:
    def synchronize(self):
        pass


class _Linalg:
    COMPUTE_TYPE_DEFAULT = 1
    COMPUTE_TYPE_TF32 = 7

    def __init__(self):
        self.calls = []

    def set_compute_type(self, dtype, compute_type):
        self.calls.append((np.dtype(dtype).name, compute_type))


class FakeCupy(types.ModuleType):
    """``import cupy`` for a machine without a GPU: NumPy's functions on FakeDeviceArrays."""

    ndarray = FakeDeviceArray
    __version__ = "fake"

    def __init__(self):
        super().__init__("cupy")
        self.asarray, self.array = asarray, array
        self.random = types.SimpleNamespace(RandomState=RandomState)
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
            get_current_stream=lambda: _Stream())
        self._core = types.SimpleNamespace(_routines_linalg=_Linalg())

    def __getattr__(self, name):
        obj = getattr(np, name)
        if isinstance(obj, type) or not callable(obj):
            return obj  # dtypes, constants

        def call(*args, **kwargs):
            _reject_host(args)
            _reject_host(tuple(kwargs.values()))
            return _wrap(obj(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()}))
        call.__name__ = name
        return call


def install(monkeypatch) -> FakeCupy:
    """Make nnscratch's backend see a FakeCupy as its usable GPU backend, for one test."""
    from nnscratch import backend

    fake = FakeCupy()
    monkeypatch.setattr(backend, "_cupy", fake)
    monkeypatch.setattr(backend, "_cupy_checked", True)
    monkeypatch.setattr(backend, "_cupy_error", None)
    monkeypatch.setenv("NNSCRATCH_FUSED", "0")
    backend._rngs.clear()
    return fake
