"""Parity with PyTorch (CPU): conv1d, conv2d, conv_transpose2d, max/avg pooling, nearest upsampling.

Weights are copied across; outputs and every gradient (input, weight, bias) must match to
rtol 1e-6 in float64, and 1e-4 in float32. The convolutions run on both their paths (the CPU fast
path and the plain one). Skipped only when torch is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from nnscratch.layers.conv import Conv1D, Conv2D, Conv2DTranspose  # noqa: E402
from nnscratch.layers.pool import (  # noqa: E402
    AvgPool1D,
    AvgPool2D,
    GlobalMaxPool,
    MaxPool1D,
    MaxPool2D,
)
from nnscratch.layers.reshape import Flatten  # noqa: E402
from nnscratch.layers.upsampling import UpSampling2D  # noqa: E402
from nnscratch.testing import check_parity  # noqa: E402

RTOL = 1e-6


def _close(ours, theirs, name, rtol=RTOL, atol=1e-12):
    check_parity(ours, theirs.detach().numpy(), rtol=rtol, atol=atol, name=name)


def _run_layer_vs_torch(layer, torch_fn, x, rng, params=(), rtol=RTOL, atol=1e-12):
    """Forward and backward through our layer and ``torch_fn(x, *params)``; compare everything."""
    y = layer(x)
    dy = rng.normal(size=y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    pts = [torch.tensor(p.data, requires_grad=True) for p in params]
    yt = torch_fn(xt, *pts)
    yt.backward(torch.from_numpy(dy))
    _close(y, yt, "y", rtol, atol)
    _close(dx, xt.grad, "dx", rtol, atol)
    for p, pt in zip(params, pts):
        _close(p.grad, pt.grad, f"d{p.name}", rtol, atol)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture(params=["1", "0"], ids=["fast-path", "plain-path"])
def conv_path(request, monkeypatch):
    """NNSCRATCH_FUSED=1 (the CPU fast path, numba) or 0 (the plain NumPy path)."""
    monkeypatch.setenv("NNSCRATCH_FUSED", request.param)
    return request.param


CONV2D_CASES = [
    # (N, C_in, H, W, C_out, kernel, stride, padding)
    (2, 3, 9, 8, 4, 3, 1, 0),
    (2, 3, 9, 8, 4, 3, 1, 1),
    (1, 2, 11, 7, 5, (3, 2), (2, 1), (1, 0)),
    (3, 1, 10, 10, 2, 5, 3, 2),
    (2, 4, 6, 5, 3, 1, 2, 0),
    (2, 2, 7, 9, 3, 3, 1, "same"),
    (2, 2, 7, 9, 3, (4, 2), 1, "same"),  # even kernel: torch pads the extra row at the bottom
    (1, 3, 5, 5, 2, 3, 1, "valid"),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", CONV2D_CASES, ids=lambda c: "-".join(map(str, c)))
def test_conv2d_matches_torch(case, rng, conv_path):
    N, Cin, H, W, Cout, k, s, p = case
    layer = Conv2D(Cin, Cout, k, stride=s, padding=p).to(dtype=np.float64)
    layer.bias.data = rng.normal(size=Cout)
    x = rng.normal(size=(N, Cin, H, W))
    _run_layer_vs_torch(layer, lambda xt, w, b: F.conv2d(xt, w, b, stride=s, padding=p), x, rng,
                        params=(layer.weight, layer.bias))


@pytest.mark.parametrize("case", [(2, 3, 20, 4, 3, 1, 0), (2, 3, 21, 4, 5, 2, 2),
                                  (1, 1, 9, 2, 4, 1, "same"), (3, 2, 12, 3, 3, 3, 1)],
                         ids=lambda c: "-".join(map(str, c)))
def test_conv1d_matches_torch(case, rng, conv_path):
    N, Cin, L, Cout, k, s, p = case
    layer = Conv1D(Cin, Cout, k, stride=s, padding=p).to(dtype=np.float64)
    layer.bias.data = rng.normal(size=Cout)
    x = rng.normal(size=(N, Cin, L))
    _run_layer_vs_torch(layer, lambda xt, w, b: F.conv1d(xt, w, b, stride=s, padding=p), x, rng,
                        params=(layer.weight, layer.bias))


@pytest.mark.parametrize("case", [
    # (N, C_in, H, W, C_out, kernel, stride, padding, output_padding)
    (2, 3, 4, 5, 2, 3, 1, 0, 0),
    (2, 3, 4, 5, 2, 3, 2, 1, 1),
    (2, 4, 6, 6, 3, 4, 2, 1, 0),       # the usual exact x2 upsampling
    (1, 2, 3, 4, 3, (3, 2), (3, 2), (1, 0), (2, 1)),
    (2, 1, 5, 3, 2, 5, 3, 2, 0),
], ids=lambda c: "-".join(map(str, c)))
def test_conv_transpose2d_matches_torch(case, rng, conv_path):
    N, Cin, H, W, Cout, k, s, p, op = case
    layer = Conv2DTranspose(Cin, Cout, k, stride=s, padding=p, output_padding=op)
    layer.to(dtype=np.float64)
    layer.bias.data = rng.normal(size=Cout)
    x = rng.normal(size=(N, Cin, H, W))
    _run_layer_vs_torch(
        layer,
        lambda xt, w, b: F.conv_transpose2d(xt, w, b, stride=s, padding=p, output_padding=op),
        x, rng, params=(layer.weight, layer.bias))


POOL_CASES = [
    # (shape, kernel, stride, padding)
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 9, 7), 2, None, 0),          # odd sizes: the last row/column is dropped
    ((2, 2, 9, 9), 3, 2, 1),             # overlapping windows, padding
    ((1, 2, 7, 10), (2, 3), (1, 2), (1, 1)),
    ((2, 1, 5, 5), 3, 1, 0),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: str(c))
def test_max_pool2d_matches_torch(case, rng):
    shape, k, s, p = case
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01 + rng.normal(size=shape) * 1e-4
    _run_layer_vs_torch(MaxPool2D(k, s, p), lambda xt: F.max_pool2d(xt, k, s, p), x, rng)


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: str(c))
def test_avg_pool2d_matches_torch(case, rng):
    shape, k, s, p = case
    x = rng.normal(size=shape)
    _run_layer_vs_torch(AvgPool2D(k, s, p), lambda xt: F.avg_pool2d(xt, k, s, p), x, rng)


def test_max_pool2d_ties_go_to_the_first_maximum_like_torch(rng):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 0, 1] = 1.0  # a tie inside the first window
    _run_layer_vs_torch(MaxPool2D(2), lambda xt: F.max_pool2d(xt, 2), x, rng)


@pytest.mark.parametrize("case", [((2, 3, 12), 2, None, 0), ((2, 2, 11), 3, 2, 1)], ids=str)
def test_pool1d_matches_torch(case, rng):
    shape, k, s, p = case
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    _run_layer_vs_torch(MaxPool1D(k, s, p), lambda xt: F.max_pool1d(xt, k, s, p), x, rng)
    _run_layer_vs_torch(AvgPool1D(k, s, p), lambda xt: F.avg_pool1d(xt, k, s, p), x, rng)


@pytest.mark.parametrize("shape", [(2, 3, 4, 9), (3, 5, 1), (1, 2, 3, 1)], ids=str)
def test_global_max_pool_matches_torch_amax_over_time(shape, rng):
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    _run_layer_vs_torch(GlobalMaxPool(), lambda xt: xt.max(dim=-1).values, x, rng)


def test_global_max_pool_ties_go_to_the_first_maximum_like_torch(rng):
    x = np.array([[[0.5, 2.0, 2.0, -1.0], [1.0, 1.0, 1.0, 1.0]]])
    _run_layer_vs_torch(GlobalMaxPool(), lambda xt: xt.max(dim=-1).values, x, rng)


@pytest.mark.parametrize("scale", [2, 3, (2, 3), (1, 2)], ids=str)
def test_upsampling_matches_torch_interpolate_nearest(scale, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    sf = scale if isinstance(scale, tuple) else (scale, scale)
    _run_layer_vs_torch(UpSampling2D(scale),
                        lambda xt: F.interpolate(xt, scale_factor=sf, mode="nearest"), x, rng)


def test_flatten_matches_torch(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    _run_layer_vs_torch(Flatten(), lambda xt: torch.flatten(xt, 1), x, rng)


def test_conv2d_float32_matches_torch(rng, conv_path):
    layer = Conv2D(3, 8, 3, padding=1)
    x = rng.normal(size=(4, 3, 16, 12)).astype(np.float32)
    _run_layer_vs_torch(layer, lambda xt, w, b: F.conv2d(xt, w, b, padding=1), x, rng,
                        params=(layer.weight, layer.bias), rtol=1e-4, atol=1e-4)


def test_small_cnn_matches_torch(rng, conv_path):
    """The digit CNN's shape end to end: conv, relu, pool, conv, relu, pool, flatten, dense."""
    import nnscratch as nn

    ours = nn.Sequential(Conv2D(1, 4, 3, padding=1), nn.ReLU(), MaxPool2D(2),
                         Conv2D(4, 6, 3, padding=1), nn.ReLU(), MaxPool2D(2), Flatten(),
                         nn.Dense(6 * 3 * 3, 5)).to(dtype=np.float64)
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(6 * 3 * 3, 5)).double()
    with torch.no_grad():
        for (_name, p), tp in zip(ours.named_parameters(), ref.parameters()):
            tp.copy_(torch.from_numpy(p.data))
    x = rng.normal(size=(3, 1, 12, 12))
    y = ours(x)
    dy = rng.normal(size=y.shape)
    dx = ours.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    _close(y, yt, "y")
    _close(dx, xt.grad, "dx")
    for (name, p), tp in zip(ours.named_parameters(), ref.parameters()):
        _close(p.grad, tp.grad, name)
