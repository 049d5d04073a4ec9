"""Backend: device selection, dtype default, seeded generators, CPU/GPU transfers."""
from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import backend


def test_cpu_device_and_array_module():
    assert backend.set_device("cpu") == "cpu"
    assert backend.xp_for() is np
    assert backend.get_array_module(np.zeros(2), 3.0) is np
    assert backend.to_cpu([1, 2]).tolist() == [1, 2]
    assert backend.to_device(np.ones(2), "cpu").tolist() == [1.0, 1.0]


def test_auto_falls_back_to_cpu_without_gpu():
    resolved = backend.set_device("auto")
    assert resolved == ("gpu" if backend.gpu_available() else "cpu")


def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backend.set_device("tpu")


def test_gpu_request_without_gpu_is_a_clear_error():
    if backend.gpu_available():
        pytest.skip("a GPU is present: the error path cannot be exercised")
    with pytest.raises(RuntimeError, match="NNSCRATCH_DEVICE=cpu"):
        backend.set_device("gpu")


def test_env_variable_selects_device(monkeypatch):
    monkeypatch.setenv("NNSCRATCH_DEVICE", "cpu")
    backend._device = None
    assert backend.get_device() == "cpu"
    monkeypatch.setenv("NNSCRATCH_DEVICE", "bogus")
    backend._device = None
    with pytest.raises(ValueError):
        backend.get_device()
    backend._device = "cpu"


def test_default_dtype_is_float32_and_switchable():
    assert nn.Dense(2, 2).weight.dtype == np.float32
    with nn.default_dtype(np.float64):
        assert nn.Dense(2, 2).weight.dtype == np.float64
    assert backend.get_default_dtype() == np.float32
    with pytest.raises(ValueError):
        backend.set_default_dtype(np.int32)


def test_seeded_generator_is_reproducible_and_saves_state():
    nn.manual_seed(7)
    a = nn.Dense(3, 3).weight.data.copy()
    nn.manual_seed(7)
    b = nn.Dense(3, 3).weight.data.copy()
    np.testing.assert_array_equal(a, b)
    rng = nn.get_rng("cpu")
    state = rng.get_state()
    x = rng.normal((4,))
    rng.set_state(state)
    np.testing.assert_array_equal(x, rng.normal((4,)))


@pytest.mark.gpu
def test_gpu_round_trip():
    cp = backend.cupy_module()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    g = backend.to_device(x, "gpu")
    assert isinstance(g, cp.ndarray) and backend.get_array_module(g) is cp
    np.testing.assert_array_equal(backend.to_cpu(g), x)


@pytest.mark.gpu
def test_gpu_model_matches_cpu():
    backend.set_device("cpu")  # built on the CPU, then moved (gpu cases start on the GPU)
    backend.manual_seed(0)
    model = nn.Sequential(nn.Dense(5, 7), nn.Tanh(), nn.Dense(7, 3))
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    y_cpu = model(x)
    model.to("gpu")
    y_gpu = model(backend.to_device(x, "gpu"))
    np.testing.assert_allclose(backend.to_cpu(y_gpu), y_cpu, rtol=1e-5, atol=1e-6)
