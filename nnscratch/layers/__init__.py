"""Layers: objects that own Parameters and call the functions in ``nnscratch.functions``."""
from .activation import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, LayerList, Parameter, Sequential, is_grad_enabled, no_grad
from .conv import Conv1D, Conv2D, Conv2DTranspose
from .pool import AvgPool1D, AvgPool2D, Flatten, MaxPool1D, MaxPool2D, Reshape, UpSampling2D
from .dropout import Dropout
from .embedding import Embedding
from .lstm import LSTM, LSTMCell
from .linear import Dense, Linear
from .loss import (
    BCEWithLogitsLoss, KLDivergence, LeastSquares, MSELoss, SoftmaxCrossEntropyLoss,
)
from .mlp import SigmoidMLP, per_neuron_gradients
from .sampling import Reparameterize
from .variational import BottleneckOutput, VariationalBottleneck

__all__ = [
    "Layer", "LayerList", "Parameter", "Sequential", "no_grad", "is_grad_enabled",
    "Dense", "Linear", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "LeastSquares", "MSELoss", "BCEWithLogitsLoss", "SoftmaxCrossEntropyLoss", "KLDivergence",
    "SigmoidMLP", "per_neuron_gradients", "Reparameterize", "VariationalBottleneck",
    "BottleneckOutput", "Dropout", "Embedding", "LSTM",
    "LSTMCell", "Conv1D", "Conv2D", "Conv2DTranspose", "AvgPool1D", "AvgPool2D", "MaxPool1D",
    "MaxPool2D", "Flatten", "Reshape", "UpSampling2D",
]
