"""nnscratch: a neural-network engine written from scratch on NumPy (CPU) and CuPy (GPU).

Every layer has a hand-written forward and backward pass; there is no autograd. Read a layer's
code beside its derivation in docs/derivations/.

    import nnscratch as nn
    model = nn.Sequential(nn.Dense(2, 8), nn.Sigmoid(), nn.Dense(8, 1))
    loss_fn = nn.MSELoss()
    opt = nn.optim.Adam(model.parameters(), lr=1e-2)
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    opt.step(); opt.zero_grad()
"""
from . import backend, functions, init, optim, testing
from .backend import (
    default_dtype,
    get_array_module,
    get_device,
    get_rng,
    manual_seed,
    set_device,
    to_cpu,
    to_device,
)
from .functions.loss import NonFiniteError
from .layers import *  # noqa: F401,F403 - the layer classes are the public API
from .layers import __all__ as _layers_all
from .serialization import CheckpointError, load_checkpoint, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "backend", "functions", "init", "optim", "testing", "default_dtype", "get_array_module",
    "get_device", "get_rng", "manual_seed", "set_device", "to_cpu", "to_device", "NonFiniteError",
    "CheckpointError", "load_checkpoint", "save_checkpoint", *_layers_all,
]
