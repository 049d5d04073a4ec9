"""Shared fixtures: the ``xp`` backend fixture, the hypothesis profile, and engine state resets.

GPU cases are parametrised with the ``gpu`` marker and skipped (reported as skipped, not passed)
when CuPy or a CUDA device is missing.
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


def gpu_or_skip():
    if not backend.gpu_available():
        pytest.skip("no CUDA device / CuPy available: GPU case skipped (not passed)")


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
def _reset_engine_state():
    """Each test starts seeded, in float32, on the CPU unless it asks for the GPU."""
    backend.manual_seed(1234)
    previous_device = backend._device
    backend.set_device("cpu")
    backend.set_default_dtype(np.float32)
    yield
    backend.set_default_dtype(np.float32)
    backend._device = previous_device


def pytest_collection_modifyitems(config, items):
    # Keep the gpu marker honest: without a device those items are skipped with a reason.
    if backend.gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device / CuPy available: GPU case skipped (not passed)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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
