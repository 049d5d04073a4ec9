"""Layers: objects that own Parameters and call the functions in ``nnscratch.functions``.

Each layer module imports the Function classes it calls as ``from ..functions.x import Y as YFn``
(so ``Dense`` calls ``LinearFn``) and plain helpers by name (``from ..functions.x import helper``).
"""
from .activation import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, LayerList, Parameter, Sequential, is_grad_enabled, no_grad
from .conv import Conv1D, Conv2D, Conv2DTranspose
from .dropout import Dropout
from .embedding import Embedding
from .linear import Dense, Linear
from .loss import (
    BCEWithLogitsLoss,
    KLDivergence,
    LeastSquares,
    MSELoss,
    SoftmaxCrossEntropyLoss,
)
from .lstm import LSTM, LSTMCell
from .mlp import SigmoidMLP, per_neuron_gradients
from .pool import AvgPool1D, AvgPool2D, GlobalMaxPool, MaxPool1D, MaxPool2D
from .reshape import Flatten, Reshape
from .sampling import Reparameterize
from .upsampling import UpSampling2D
from .variational import BottleneckOutput, VariationalBottleneck

__all__ = [
    "Layer", "LayerList", "Parameter", "Sequential", "no_grad", "is_grad_enabled",
    "Dense", "Linear", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "LeastSquares", "MSELoss", "BCEWithLogitsLoss", "SoftmaxCrossEntropyLoss", "KLDivergence",
    "SigmoidMLP", "per_neuron_gradients", "Reparameterize", "VariationalBottleneck",
    "BottleneckOutput", "Dropout", "Embedding", "LSTM",
    "LSTMCell", "Conv1D", "Conv2D", "Conv2DTranspose", "AvgPool1D", "AvgPool2D", "MaxPool1D",
    "MaxPool2D", "GlobalMaxPool", "Flatten", "Reshape", "UpSampling2D",
]
