"""Loss functions: least squares (the seed's J), MSE, BCE with logits, softmax cross-entropy, KL.

Each ``forward`` returns a 0-d array (the loss); each ``backward(ctx, dloss=1.0)`` returns the
gradient with respect to the prediction (and None for the targets).
Derivations: docs/derivations/loss.md (equation numbers cited as ``# (n)``).

A NaN or inf reaching a loss is an error, not a silent NaN training run: ``check_finite`` names
the loss, the array and where the first bad value is.

Targets and weights may be NumPy arrays (or lists) while the prediction is on the GPU: each
forward moves them to the prediction's device first (``backend.as_array_like``).
"""
from __future__ import annotations

import numpy as np

from ..backend import as_array_like, fused_xent_enabled, get_array_module, to_cpu
from .activation import log_softmax, sigmoid, softmax, softplus
from .base import Function

_REDUCTIONS = ("mean", "sum", "none")


class NonFiniteError(FloatingPointError, ValueError):
    """A NaN or inf reached a loss."""


def check_finite(loss_name: str, **arrays) -> None:
    """Raise NonFiniteError naming the first array holding NaN or inf, and where."""
    for name, a in arrays.items():
        if a is None:
            continue
        xp = get_array_module(a)
        if a.dtype.kind != "f":
            continue
        bad = ~xp.isfinite(a)
        if bool(bad.any()):
            bad_cpu = to_cpu(bad)
            n_nan = int(to_cpu(xp.isnan(a)).sum())
            first = tuple(int(i) for i in (bad_cpu.nonzero()[k][0] for k in range(bad_cpu.ndim)))
            raise NonFiniteError(
                f"{loss_name}: {name} of shape {tuple(a.shape)} holds {n_nan} NaN and "
                f"{int(bad_cpu.sum()) - n_nan} inf values (first at index {first}); "
                "the model diverged or the input data is bad (try a lower learning rate or "
                "gradient clipping)"
            )


def _check_same_shape(loss_name, pred, target):
    if pred.shape != target.shape:
        raise ValueError(
            f"{loss_name}: prediction shape {tuple(pred.shape)} and target shape "
            f"{tuple(target.shape)} differ"
        )


def _check_reduction(loss_name, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{loss_name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(per_elem, reduction, count):
    if reduction == "sum":
        return per_elem.sum()
    if reduction == "mean":
        return per_elem.sum() / count
    return per_elem


def _scale(reduction, count):
    return 1.0 / count if reduction == "mean" else 1.0


class LeastSquares(Function):
    """The seed report's cost J = 1/2 * sum_k (y_k - y_target_k)^2.

    Forward:  J = 1/2 * sum (y - t)^2                   (1)
    Backward: dy = dJ * (y - t)                         (2)
    """

    @staticmethod
    def forward(ctx, y, t):
        t = as_array_like(t, y)
        _check_same_shape("LeastSquares", y, t)
        r = y - t
        ctx.save(r=r)
        return 0.5 * (r * r).sum()

    @staticmethod
    def backward(ctx, dloss=1.0):
        ctx.consume("LeastSquares")
        return dloss * ctx.r, None  # (2)


class MSE(Function):
    """Mean squared error, the mean form of the seed's cost (like torch.nn.MSELoss).

    Forward:  L = 1/N * sum (y - t)^2   (N = number of elements; 'sum' drops the 1/N)   (3)
    Backward: dy = dL * 2 (y - t) / N                                                   (4)
    """

    @staticmethod
    def forward(ctx, y, t, reduction="mean"):
        t = as_array_like(t, y)
        _check_same_shape("MSE", y, t)
        _check_reduction("MSE", reduction)
        r = y - t
        ctx.save(r=r, reduction=reduction)
        return _reduce(r * r, reduction, r.size)

    @staticmethod
    def backward(ctx, dloss=1.0):
        ctx.consume("MSE")
        r = ctx.r
        return dloss * 2.0 * _scale(ctx.reduction, r.size) * r, None  # (4)


class BCEWithLogits(Function):
    """Binary cross-entropy on logits x for targets t in [0, 1] (multi-hot allowed).

    ``pos_weight`` (shape broadcastable to the last axis, one per class) weights the positive
    term, for imbalanced multi-hot targets such as drum hits: PyTorch's pos_weight.
    ``weight`` (broadcastable to x) weights each element.

    Forward, with lw = 1 + (pos_weight - 1) * t:
        l = (1 - t) x + lw * softplus(-x)           (5)
          = -[pos_weight t log s(x) + (1 - t) log(1 - s(x))]
        L = mean or sum of weight * l
    Backward:
        dx = dL * weight * ((1 - t) - lw * s(-x)) / N          (6)
           = dL * weight * (s(x) - t) / N   when pos_weight = 1
    """

    @staticmethod
    def forward(ctx, x, t, pos_weight=None, weight=None, reduction="mean"):
        t, pos_weight, weight = (as_array_like(a, x) for a in (t, pos_weight, weight))
        _check_same_shape("BCEWithLogits", x, t)
        _check_reduction("BCEWithLogits", reduction)
        lw = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * t
        per = (1.0 - t) * x + lw * softplus(-x)  # (5)
        if weight is not None:
            per = per * weight
        ctx.save(x=x, t=t, lw=lw, weight=weight, reduction=reduction)
        return _reduce(per, reduction, x.size)

    @staticmethod
    def backward(ctx, dloss=1.0):
        ctx.consume("BCEWithLogits")
        x, t = ctx.x, ctx.t
        dx = (1.0 - t) - ctx.lw * sigmoid(-x)  # (6)
        if ctx.weight is not None:
            dx = dx * ctx.weight
        return dloss * _scale(ctx.reduction, x.size) * dx, None


class SoftmaxCrossEntropy(Function):
    """Softmax followed by the negative log-likelihood, fused for stability and speed.

    Shapes: logits x (..., C); targets t (...) integer class indices.
    ``weight`` (C,) weights each class; rows whose target equals ``ignore_index`` (padding)
    contribute nothing. With 'mean' the sum is divided by the total weight of the counted rows,
    as in torch.nn.CrossEntropyLoss.

    Forward, per row n with w_n = weight[t_n] (0 for ignored rows):
        l_n = -w_n * log_softmax(x_n)[t_n]                  (7)
        L   = sum_n l_n / sum_n w_n      ('mean')
    Backward:
        dx_n = dL * w_n * (softmax(x_n) - onehot(t_n)) / sum_n w_n      (8)

    On the GPU with NNSCRATCH_FUSED_XENT=1, (7) and (8) run as two fused kernels
    (nnscratch/kernels/cuda/loss.py) that keep the rows' log-sum-exp instead of the (N, C)
    log-probabilities; the result is the same (tests/engine/test_gpu_speed_switches.py).
    """

    @staticmethod
    def forward(ctx, x, t, weight=None, ignore_index=None, reduction="mean"):
        _check_reduction("SoftmaxCrossEntropy", reduction)
        t, weight = as_array_like(t, x), as_array_like(weight, x)
        xp = get_array_module(x)
        if x.shape[:-1] != t.shape:
            raise ValueError(
                f"SoftmaxCrossEntropy: logits of shape {tuple(x.shape)} need targets of shape "
                f"{tuple(x.shape[:-1])}, got {tuple(t.shape)}"
            )
        C = x.shape[-1]
        x2 = x.reshape(-1, C)
        t2 = t.reshape(-1).astype(xp.int64, copy=False)
        valid = xp.ones(t2.shape, dtype=bool) if ignore_index is None else t2 != ignore_index
        t_safe = xp.where(valid, t2, 0)
        # Range check on the CPU only: on the GPU it would force a host synchronisation per step.
        if xp is np and t2.size and (int(t_safe.min()) < 0 or int(t_safe.max()) >= C):
            raise ValueError(f"SoftmaxCrossEntropy: targets must lie in [0, {C}), got "
                             f"values from {int(t_safe.min())} to {int(t_safe.max())}")
        w = (valid.astype(x.dtype) if weight is None
             else xp.where(valid, weight[t_safe], 0).astype(x.dtype))
        denom = w.sum() if reduction == "mean" else 1.0
        ctx.save(t=t_safe, w=w, denom=denom, shape=x.shape, reduction=reduction)
        if xp is not np and fused_xent_enabled():
            from ..kernels.cuda.loss import softmax_xent_forward  # noqa: PLC0415

            x2 = xp.ascontiguousarray(x2)
            lse, per = softmax_xent_forward(x2, t_safe, w)  # (7), fused
            ctx.save(x=x2, lse=lse, fused=True)
        else:
            rows = xp.arange(t2.size)
            logp = log_softmax(x2, axis=-1)
            per = -w * logp[rows, t_safe]  # (7)
            ctx.save(logp=logp, fused=False)
        if reduction == "none":
            return per.reshape(t.shape)
        loss = per.sum()
        return loss / denom if reduction == "mean" else loss

    @staticmethod
    def backward(ctx, dloss=1.0):
        ctx.consume("SoftmaxCrossEntropy")
        if ctx.fused:
            from ..kernels.cuda.loss import softmax_xent_backward  # noqa: PLC0415

            if ctx.reduction == "none":
                coef = as_array_like(dloss, ctx.w).reshape(-1) * ctx.w
            else:
                coef = (dloss / ctx.denom) * ctx.w
            dx = softmax_xent_backward(ctx.x, ctx.lse, ctx.t, coef.astype(ctx.x.dtype))  # (8)
            return dx.reshape(ctx.shape), None
        xp = get_array_module(ctx.logp)
        dx = xp.exp(ctx.logp)  # softmax(x_n), reusing the saved log-probabilities
        rows = xp.arange(dx.shape[0])
        dx[rows, ctx.t] -= 1.0
        if ctx.reduction == "none":
            scale = as_array_like(dloss, ctx.w).reshape(-1, 1) * ctx.w[:, None]
        else:
            scale = (dloss / ctx.denom) * ctx.w[:, None]
        dx *= scale  # (8)
        return dx.reshape(ctx.shape), None


class KLStandardNormal(Function):
    """KL( N(mu, exp(log_var)) || N(0, I) ), summed over the latent axis.

    Shapes: mu, log_var (batch, latent). 'mean' averages over the batch (per-example KL, as in
    most VAE code); 'sum' sums over the batch too; 'none' returns (batch,).

    Forward:  KL = -1/2 * sum_j (1 + log_var_j - mu_j^2 - exp(log_var_j))      (9)
    Backward: dmu = dKL * mu;   dlog_var = dKL * 1/2 (exp(log_var) - 1)         (10), (11)
    """

    @staticmethod
    def forward(ctx, mu, log_var, reduction="mean"):
        _check_same_shape("KLStandardNormal", mu, log_var)
        _check_reduction("KLStandardNormal", reduction)
        xp = get_array_module(mu)
        var = xp.exp(log_var)
        per = -0.5 * (1.0 + log_var - mu * mu - var).sum(axis=-1)  # (9)
        n = per.size
        ctx.save(mu=mu, var=var, reduction=reduction, n=n)
        return _reduce(per, reduction, n)

    @staticmethod
    def backward(ctx, dloss=1.0):
        ctx.consume("KLStandardNormal")
        if ctx.reduction == "none":
            scale = dloss[..., None]
        else:
            scale = dloss * _scale(ctx.reduction, ctx.n)
        return scale * ctx.mu, scale * 0.5 * (ctx.var - 1.0)  # (10), (11)


__all__ = [
    "NonFiniteError", "check_finite", "LeastSquares", "MSE", "BCEWithLogits",
    "SoftmaxCrossEntropy", "KLStandardNormal", "softmax", "log_softmax",
]
