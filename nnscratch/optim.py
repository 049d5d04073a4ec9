"""Optimizers, gradient clipping, learning-rate schedules and early stopping.

Update rules follow PyTorch's (same hyper-parameter names and defaults, same placement of eps),
so one step matches torch.optim to float64 rounding. Derivations: docs/derivations/optim.md.

Freezing: a Parameter with ``requires_grad=False`` (``layer.freeze()``) or with no gradient is
skipped; to exclude parameters, simply pass the ones to train.

Moving a model (``model.to("gpu")``, ``model.to(dtype=...)``) after some steps is fine: each
step first moves the optimizer's state arrays to the device and dtype of their parameter.
"""
from __future__ import annotations

import math

import numpy as np

from . import threads
from .backend import (
    device_of,
    fused_enabled,
    get_array_module,
    numba_available,
    to_cpu,
    to_device,
)
from .layers.base import Parameter


# ==============================================================================================
# Optimizers
# ==============================================================================================
class Optimizer:
    """Base class: holds the parameters, the learning rate and per-parameter state arrays."""

    #: names of per-parameter state arrays (e.g. ('m', 'v') for Adam)
    state_names: tuple[str, ...] = ()

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters, got "
                                f"{type(p).__name__}")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.step_count = 0
        self.state: dict[int, dict[str, object]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        threads.update()  # the BLAS thread policy (nnscratch/threads.py): a cheap re-check
        self.step_count += 1
        for i, p in enumerate(self.params):
            if p.grad is None or not p.requires_grad:
                continue
            self.update(p, p.grad, self._state_of(i, p))

    def update(self, p: Parameter, g, state: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _state_of(self, i: int, p: Parameter) -> dict:
        """Parameter i's state arrays, created at its first step, and kept on the parameter's
        device and in its dtype: after ``Layer.to`` moved the parameter, they follow it here
        (else the next update would mix NumPy and CuPy arrays, or dtypes in the fused kernels)."""
        state = self.state.get(i)
        if state is None:
            xp = get_array_module(p.data)
            state = self.state[i] = {k: xp.zeros_like(p.data) for k in self.state_names}
            return state
        device = device_of(p.data)
        for k, a in state.items():
            if device_of(a) != device or a.dtype != p.dtype:
                state[k] = to_device(a, device).astype(p.dtype, copy=False)
        return state

    # -- state --------------------------------------------------------------------------------
    def hyperparameters(self) -> dict:
        return {"lr": self.lr}

    def state_dict(self) -> dict:
        """{'type', 'hyper', 'step', 'arrays': {'<name>.<param index>': np.ndarray}}."""
        arrays = {f"{k}.{i}": to_cpu(a).copy()
                  for i, st in self.state.items() for k, a in st.items()}
        return {"type": type(self).__name__, "hyper": self.hyperparameters(),
                "step": self.step_count, "arrays": arrays}

    def load_state_dict(self, state: dict) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(f"optimizer state is for {state.get('type')}, not "
                             f"{type(self).__name__}")
        for k, v in state["hyper"].items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.step_count = int(state["step"])
        self.state = {}
        for key, arr in state["arrays"].items():
            name, idx = key.rsplit(".", 1)
            i = int(idx)
            if i >= len(self.params):
                raise ValueError(f"optimizer state names parameter {i}, but only "
                                 f"{len(self.params)} are given")
            p = self.params[i]
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(
                    f"optimizer state '{key}' has shape {tuple(arr.shape)} but parameter "
                    f"{p.name or i} has shape {tuple(p.shape)}"
                )
            xp = get_array_module(p.data)
            self.state.setdefault(i, {})[name] = xp.asarray(arr, dtype=p.dtype).copy()


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (heavy ball or Nesterov) and L2 decay.

    g = grad + weight_decay * p                              (7)
    buf = momentum * buf + g        (momentum > 0)           (8)
    g = g + momentum * buf (Nesterov) or buf                 (9)
    p = p - lr * g                                           (10)
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: Nesterov momentum needs momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p.data  # (7)
        if self.momentum > 0:
            if "buf" not in state:
                state["buf"] = g.copy()  # torch starts the buffer at the first gradient
            else:
                buf = state["buf"]
                buf *= self.momentum
                buf += g  # (8)
            buf = state["buf"]
            g = g + self.momentum * buf if self.nesterov else buf  # (9)
        p.data -= self.lr * g  # (10)


class Momentum(SGD):
    """SGD with momentum 0.9 by default (classical or ``nesterov=True``)."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's form.

    g = grad + weight_decay * p                                (7)
    sq = alpha * sq + (1 - alpha) * g^2                        (11)
    p = p - lr * g / (sqrt(sq) + eps)                          (12)
    """

    state_names = ("sq",)

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def update(self, p, g, state):
        xp = get_array_module(p.data)
        if self.weight_decay:
            g = g + self.weight_decay * p.data  # (7)
        sq = state["sq"]
        sq *= self.alpha
        sq += (1 - self.alpha) * g * g  # (11)
        p.data -= self.lr * g / (xp.sqrt(sq) + self.eps)  # (12)


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's form; ``weight_decay`` here is the coupled L2 penalty.

    g = grad + weight_decay * p                                 (5)
    m = beta1 * m + (1 - beta1) * g                             (1)
    v = beta2 * v + (1 - beta2) * g^2                           (2)
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)       (3)
    p = p - lr * m_hat / (sqrt(v_hat) + eps)                    (4)
    """

    state_names = ("m", "v")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}

    def update(self, p, g, state):
        b1, b2 = self.betas
        t = self.step_count
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        m, v = state["m"], state["v"]
        xp = get_array_module(p.data)
        if fused_enabled() and p.data.flags.c_contiguous:
            g = xp.ascontiguousarray(g, dtype=p.dtype)
            if xp is np and numba_available():
                from .kernels.cpu.optim import adam_update  # noqa: PLC0415 - numba import is slow
                wd = self.weight_decay
                s = p.dtype.type  # scalars in the arrays' dtype: float32 SIMD for float32 params
                adam_update(p.data.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                            s(self.lr / bc1), s(b1), s(1 - b1), s(b2), s(1 - b2),
                            s(1 / math.sqrt(bc2)), s(self.eps),
                            s(1 - self.lr * wd if self.decoupled else 1.0),
                            s(0.0 if self.decoupled else wd))
                return
            if xp is not np:
                from .kernels.cuda.optim import adam_update  # noqa: PLC0415
                adam_update(p.data, g, m, v, self.lr, b1, b2, self.eps, bc1, bc2,
                            self.weight_decay, self.decoupled)
                return
        self.plain_update(p, g, m, v, bc1, bc2)

    def plain_update(self, p, g, m, v, bc1, bc2):
        """The readable NumPy/CuPy path (the reference the fused kernels are tested against)."""
        xp = get_array_module(p.data)
        b1, b2 = self.betas
        if self.decoupled:
            p.data *= 1.0 - self.lr * self.weight_decay  # (6)
        elif self.weight_decay:
            g = g + self.weight_decay * p.data  # (5)
        m *= b1
        m += (1 - b1) * g  # (1)
        v *= b2
        v += (1 - b2) * g * g  # (2)
        denom = xp.sqrt(v) / math.sqrt(bc2) + self.eps  # (3)
        p.data -= (self.lr / bc1) * m / denom  # (3), (4)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p = p * (1 - lr * wd) first (6)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


# ==============================================================================================
# Gradient clipping
# ==============================================================================================
def grad_norm(params):
    """Global L2 norm of all gradients, as a 0-d array on the parameters' device (no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return np.zeros(())
    xp = get_array_module(grads[0])
    total = None
    for g in grads:
        flat = g.reshape(-1)
        sq = xp.dot(flat, flat).astype(xp.float64)
        total = sq if total is None else total + sq
    return xp.sqrt(total)


def clip_grad_norm(params, max_norm: float, eps: float = 1e-6):
    """Scale all gradients so their global L2 norm is at most ``max_norm`` (torch's rule).

    coef = min(1, max_norm / (norm + eps)); g = g * coef                 (13)
    Returns the norm before clipping as a 0-d array (``float()`` it to log it). The scaling is
    done on the device, so on the GPU it costs no host synchronisation.
    """
    params = [p for p in params if p.grad is not None]
    total = grad_norm(params)
    if not params:
        return total
    xp = get_array_module(total)
    coef = xp.minimum(1.0, max_norm / (total + eps))  # (13)
    for p in params:
        p.grad *= coef.astype(p.grad.dtype)
    return total


# ==============================================================================================
# Learning-rate schedules
# ==============================================================================================
class _Schedule:
    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class StepLR(_Schedule):
    """lr = base_lr * gamma^(floor(epoch / step_size)); call ``step()`` once per epoch."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def step(self) -> float:
        self.epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.epoch // self.step_size)
        return self.optimizer.lr


class ExponentialLR(_Schedule):
    """lr = base_lr * gamma^epoch."""

    def __init__(self, optimizer, gamma: float):
        super().__init__(optimizer)
        self.gamma = gamma

    def step(self) -> float:
        self.epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** self.epoch
        return self.optimizer.lr


class WarmupCosine(_Schedule):
    """Linear warm-up, then a decay from ``base_lr`` down to ``base_lr * final_ratio``: a half
    cosine (``shape="cosine"``) or a straight line (``shape="linear"``).

    The schedule follows *progress*, a number from 0 (start) to 1 (end of the run), which the
    caller sets with ``step(progress, step)``: steps done over the step budget, or time spent
    over a time budget (a run of 15 minutes ends its decay at 15 minutes however fast the
    machine is). Warm-up counts steps: lr rises linearly over the first ``warmup`` steps.

        cosine: lr = final + (base - final) * (1 + cos(pi * progress)) / 2
        linear: lr = final + (base - final) * (1 - progress)
    times min(1, (step + 1) / warmup). The linear decay to zero (``final_ratio=0``) is the one
    Bergsma et al. (2025, "Straight to zero") find best at a fixed budget.
    """

    SHAPES = ("cosine", "linear")

    def __init__(self, optimizer, warmup: int = 0, final_ratio: float = 0.02,
                 shape: str = "cosine"):
        super().__init__(optimizer)
        if warmup < 0 or not 0 <= final_ratio <= 1:
            raise ValueError(f"WarmupCosine: need warmup >= 0 and 0 <= final_ratio <= 1, got "
                             f"{warmup} and {final_ratio}")
        if shape not in self.SHAPES:
            raise ValueError(f"WarmupCosine: shape must be one of {self.SHAPES}, got {shape!r}")
        self.warmup, self.final_ratio, self.shape = int(warmup), float(final_ratio), shape
        self.progress = 0.0

    def lr_at(self, progress: float, step: int) -> float:
        p = min(max(float(progress), 0.0), 1.0)
        final = self.base_lr * self.final_ratio
        fall = 0.5 * (1.0 + math.cos(math.pi * p)) if self.shape == "cosine" else 1.0 - p
        lr = final + (self.base_lr - final) * fall
        if self.warmup and step < self.warmup:
            lr *= (step + 1) / self.warmup
        return lr

    def step(self, progress: float, step: int) -> float:
        self.progress = max(self.progress, min(float(progress), 1.0))  # never goes back
        self.optimizer.lr = self.lr_at(self.progress, step)
        return self.optimizer.lr


class ReduceLROnPlateau(_Schedule):
    """Multiply the lr by ``factor`` when a metric has not improved for ``patience`` checks.

    PyTorch's rule: improvement means metric < best * (1 - threshold) in 'min' mode ('rel'), or
    metric < best - threshold ('abs'); after a reduction, ``cooldown`` checks pass unmonitored.
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0):
        super().__init__(optimizer)
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError("ReduceLROnPlateau: mode must be min|max and threshold_mode rel|abs")
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must lie in (0, 1), got {factor}")
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lr = cooldown, min_lr
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_counter = 0

    def _is_better(self, a: float) -> bool:
        if self.mode == "min":
            rel = self.threshold_mode == "rel"
            bound = self.best * (1 - self.threshold) if rel else self.best - self.threshold
            return a < bound
        rel = self.threshold_mode == "rel"
        bound = self.best * (1 + self.threshold) if rel else self.best + self.threshold
        return a > bound

    def step(self, metric: float) -> float:
        metric = float(metric)
        self.epoch += 1
        if self._is_better(metric):
            self.best, self.num_bad = metric, 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.cooldown_counter = self.cooldown
            self.num_bad = 0
        return self.optimizer.lr


# ==============================================================================================
# Early stopping
# ==============================================================================================
class EarlyStopping:
    """Stop when a metric has not improved by ``min_delta`` for ``patience`` checks.

    ``step(metric)`` returns True when training should stop; ``improved`` tells whether the last
    metric was a new best (the moment to write the best checkpoint).
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0, mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError("EarlyStopping: mode must be 'min' or 'max'")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_checks = 0
        self.improved = False

    def step(self, metric: float) -> bool:
        metric = float(metric)
        if self.mode == "min":
            self.improved = metric < self.best - self.min_delta
        else:
            self.improved = metric > self.best + self.min_delta
        if self.improved:
            self.best, self.bad_checks = metric, 0
        else:
            self.bad_checks += 1
        return self.bad_checks >= self.patience

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
