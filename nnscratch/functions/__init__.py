"""Pure differentiable ops on raw arrays: ``forward(ctx, *xs)`` / ``backward(ctx, *dys)``."""
from .activation import (
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    log_softmax,
    sigmoid,
    softmax,
    softplus,
)
from .base import Context, Function
from .conv import Conv1D, Conv2D, Conv2DTranspose
from .dropout import Dropout, dropout_mask, dropout_mask_like
from .embedding import Embedding, check_ids
from .linear import Linear
from .loss import (
    MSE,
    BCEWithLogits,
    KLStandardNormal,
    LeastSquares,
    NonFiniteError,
    SoftmaxCrossEntropy,
    check_finite,
)
from .lstm import LSTMCell, LSTMLayer, lstm_step_inference
from .pool import AvgPool1D, AvgPool2D, MaxPool1D, MaxPool2D
from .reshape import Flatten, Reshape
from .sampling import Reparameterize
from .upsampling import UpSampling2D

__all__ = [
    "Context", "Function", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "Linear", "LeastSquares", "MSE", "BCEWithLogits", "SoftmaxCrossEntropy", "KLStandardNormal",
    "NonFiniteError", "check_finite", "Reparameterize", "sigmoid", "softmax", "log_softmax",
    "softplus", "Dropout", "dropout_mask", "dropout_mask_like", "Embedding", "check_ids",
    "LSTMCell", "LSTMLayer", "lstm_step_inference", "Conv1D", "Conv2D", "Conv2DTranspose",
    "AvgPool1D", "AvgPool2D", "MaxPool1D", "MaxPool2D", "Flatten", "Reshape", "UpSampling2D",
]
