"""Shared fixtures: the ``xp`` backend fixture, the hypothesis profile, and engine state resets.

GPU cases carry the ``gpu`` marker (directly, or through the ``xp`` fixture's cupy parameter).
Each one runs with the GPU selected as the default device. Without CuPy or a CUDA device they
are skipped and reported as skipped, not passed; but with ``NNSCRATCH_DEVICE=gpu`` (the GPU
pass, benchmarks/gpu_pass.sh) a missing GPU makes them fail instead.

Test modules of the apps that import mido, soundfile, music21 or librosa at module level are
skipped as a whole, with that reason, where the package is not installed (the lent GPU machines
have none of them): their collection must not stop the run. A module with gpu cases must not
depend on them at import (tests/engine/test_gpu_collection.py checks it).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from nnscratch import backend

settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

#: packages of the apps' I/O that a machine may lack (the GPU machines do): a test module that
#: fails to import for want of one of them is skipped with that reason
OPTIONAL_APP_PACKAGES = ("mido", "soundfile", "music21", "librosa")

_NO_GPU = "no CUDA device / CuPy available: GPU case skipped (not passed)"


def gpu_required() -> bool:
    """True when the run asked for the GPU (NNSCRATCH_DEVICE=gpu): gpu cases must then run."""
    return os.environ.get("NNSCRATCH_DEVICE", "").strip().lower() == "gpu"


def gpu_or_skip():
    if not backend.gpu_available():
        if gpu_required():
            pytest.fail(f"NNSCRATCH_DEVICE=gpu but the GPU backend is unusable: "
                        f"{backend._cupy_error}", pytrace=False)
        pytest.skip(_NO_GPU)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module under test: numpy always, cupy when a GPU is usable."""
    if request.param == "cupy":
        gpu_or_skip()
        return backend.cupy_module()
    return np


@pytest.fixture
def device(xp):
    """'cpu' or 'gpu', matching ``xp``; new layers are built on that device."""
    name = "cpu" if xp is np else "gpu"
    backend.set_device(name)
    return name


@pytest.fixture(autouse=True)
def _reset_engine_state(request):
    """Each test starts seeded, in float32, on the CPU, or on the GPU when it is a gpu case."""
    backend.manual_seed(1234)
    previous_device = backend._device
    if request.node.get_closest_marker("gpu") is not None:
        gpu_or_skip()
        backend.set_device("gpu")
    else:
        backend.set_device("cpu")
    backend.set_default_dtype(np.float32)
    yield
    backend.set_default_dtype(np.float32)
    backend._device = previous_device


def pytest_collection_modifyitems(config, items):
    # Keep the gpu marker honest: without a device those items are skipped with a reason,
    # unless the run asked for the GPU (then _reset_engine_state fails them).
    if backend.gpu_available() or gpu_required():
        return
    skip = pytest.mark.skip(reason=_NO_GPU)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _missing_optional_package(exc: BaseException | None) -> str | None:
    """The optional package whose absence caused ``exc`` (through its chain), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            root = exc.name.split(".")[0]
            if root in OPTIONAL_APP_PACKAGES:
                return root
        exc = exc.__cause__ or exc.__context__
    return None


class _ModuleSkippingMissingAppPackages(pytest.Module):
    """A test module whose import fails for want of an optional app package is skipped."""

    def _getobj(self):
        try:
            return super()._getobj()
        except self.CollectError as err:
            missing = _missing_optional_package(err)
            if missing is None:
                raise
            raise pytest.skip.Exception(f"{self.path.name} needs {missing}, which is not "
                                        "installed here", allow_module_level=True) from None


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    if module_path.name in ("conftest.py", "__init__.py"):
        return None
    return _ModuleSkippingMissingAppPackages.from_parent(parent, path=module_path)


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """A fresh $NNSCRATCH_CACHE for one test module (the parsed-data caches of the apps)."""
    path = str(tmp_path_factory.mktemp("cache"))
    old = os.environ.get("NNSCRATCH_CACHE")
    os.environ["NNSCRATCH_CACHE"] = path
    yield path
    if old is None:
        os.environ.pop("NNSCRATCH_CACHE", None)
    else:
        os.environ["NNSCRATCH_CACHE"] = old
