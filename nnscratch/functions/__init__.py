"""Pure differentiable ops on raw arrays: ``forward(ctx, *xs)`` / ``backward(ctx, *dys)``."""
from .activation import (
    Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, log_softmax, sigmoid, softmax, softplus,
)
from .base import Context, Function
from .linear import Linear
from .loss import (
    MSE, BCEWithLogits, KLStandardNormal, LeastSquares, NonFiniteError, SoftmaxCrossEntropy,
    check_finite,
)
from .sampling import Reparameterize

__all__ = [
    "Context", "Function", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "Linear", "LeastSquares", "MSE", "BCEWithLogits", "SoftmaxCrossEntropy", "KLStandardNormal",
    "NonFiniteError", "check_finite", "Reparameterize", "sigmoid", "softmax", "log_softmax",
    "softplus",
]
