"""Loss objects: ``loss = loss_fn(prediction, target)`` then ``dpred = loss_fn.backward()``.

Calling a loss returns a Python float (one host synchronisation per call on the GPU, which a
training loop pays anyway to log the loss) and checks it: a NaN or inf raises
``NonFiniteError`` naming the loss and the first bad input value, instead of training on NaN.
Targets and weights given as NumPy arrays follow the prediction to the GPU.
Math: nnscratch/functions/loss.py and docs/derivations/loss.md.
"""
from __future__ import annotations

from ..backend import as_array_like, device_of, get_array_module, to_device
from ..functions.base import Context
from ..functions.loss import MSE as MSEFn
from ..functions.loss import BCEWithLogits as BCEWithLogitsFn
from ..functions.loss import KLStandardNormal as KLStandardNormalFn
from ..functions.loss import LeastSquares as LeastSquaresFn
from ..functions.loss import NonFiniteError, check_finite
from ..functions.loss import SoftmaxCrossEntropy as SoftmaxCrossEntropyFn
from .base import Layer


class _Loss(Layer):
    fn: type = MSEFn

    def __init__(self, reduction: str = "mean", check_finite: bool = True):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be mean, sum or none, got "
                             f"{reduction!r}")
        self.reduction = reduction
        self.check_finite = check_finite

    def _options(self) -> dict:
        return {"reduction": self.reduction}

    def _follow_device(self, ref) -> None:
        """Keep the loss's own arrays (class weights, pos_weight) on the device of ``ref``, the
        prediction: moved once when the model's device changes, not copied at every call."""
        for name in ("weight", "pos_weight"):
            a = getattr(self, name, None)
            if a is not None and hasattr(a, "shape") and device_of(a) != device_of(ref):
                setattr(self, name, to_device(a, device_of(ref)))

    def _finite_or_raise(self, loss, **inputs):
        """Raise NonFiniteError if the loss or any float input holds NaN or inf.

        All checks are reduced on the device and read back together: one host sync.
        """
        if not self.check_finite:
            return loss
        xp = get_array_module(loss)
        ok = xp.isfinite(loss).all()
        for a in inputs.values():
            if a is not None and a.dtype.kind == "f":
                ok = ok & xp.isfinite(a).all()
        if not bool(ok):
            check_finite(type(self).__name__, **inputs)  # names the bad input when there is one
            raise NonFiniteError(
                f"{type(self).__name__}: the loss is not finite although its inputs are "
                "(extreme values overflowed)"
            )
        return loss

    def forward(self, pred, target):
        target = as_array_like(target, pred)
        self._follow_device(pred)
        ctx = Context()
        loss = self.fn.forward(ctx, pred, target, **self._options())
        loss = self._finite_or_raise(loss, prediction=pred, target=target)
        self.save_context(ctx)
        return float(loss) if loss.ndim == 0 else loss

    def backward(self, dloss=1.0):
        """Gradient with respect to the prediction (dloss: the upstream gradient, 1 by default)."""
        dpred, _ = self.fn.backward(self.pop_context(), dloss)
        return dpred


class LeastSquares(_Loss):
    """The seed report's J = 1/2 * sum (y - y_target)^2 (always a sum)."""

    fn = LeastSquaresFn

    def __init__(self, check_finite: bool = True):
        super().__init__(reduction="sum", check_finite=check_finite)

    def _options(self) -> dict:
        return {}


class MSELoss(_Loss):
    """mean (y - y_target)^2, the mean form of the least-squares cost (torch.nn.MSELoss)."""

    fn = MSEFn


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits; ``pos_weight`` (one per class) for imbalanced multi-hot."""

    fn = BCEWithLogitsFn

    def __init__(self, pos_weight=None, weight=None, reduction: str = "mean",
                 check_finite: bool = True):
        super().__init__(reduction=reduction, check_finite=check_finite)
        self.pos_weight = pos_weight
        self.weight = weight

    def _options(self) -> dict:
        return {"pos_weight": self.pos_weight, "weight": self.weight, "reduction": self.reduction}


class SoftmaxCrossEntropyLoss(_Loss):
    """Fused softmax + NLL on logits (..., C) and integer targets (...).

    ``weight`` (C,) per-class weights; ``ignore_index`` marks padding targets.
    """

    fn = SoftmaxCrossEntropyFn

    def __init__(self, weight=None, ignore_index: int | None = None, reduction: str = "mean",
                 check_finite: bool = True):
        super().__init__(reduction=reduction, check_finite=check_finite)
        self.weight = weight
        self.ignore_index = ignore_index

    def _options(self) -> dict:
        return {"weight": self.weight, "ignore_index": self.ignore_index,
                "reduction": self.reduction}

    def forward(self, logits, target):
        target = as_array_like(target, logits)
        self._follow_device(logits)
        ctx = Context()
        loss = self.fn.forward(ctx, logits, target, **self._options())
        loss = self._finite_or_raise(loss, logits=logits)
        self.save_context(ctx)
        return float(loss) if loss.ndim == 0 else loss


class KLDivergence(_Loss):
    """KL(N(mu, exp(log_var)) || N(0, I)) summed over latents, averaged over the batch ('mean').

    ``loss = kl(mu, log_var)``; ``dmu, dlog_var = kl.backward()``.
    """

    fn = KLStandardNormalFn

    def forward(self, mu, log_var):
        ctx = Context()
        loss = self.fn.forward(ctx, mu, log_var, reduction=self.reduction)
        loss = self._finite_or_raise(loss, mu=mu, log_var=log_var)
        self.save_context(ctx)
        return float(loss) if loss.ndim == 0 else loss

    def backward(self, dloss=1.0):
        return self.fn.backward(self.pop_context(), dloss)
