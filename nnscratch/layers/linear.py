"""Dense (fully connected) layer."""
from __future__ import annotations

from .. import init as initializers
from ..backend import as_array_like
from ..functions.base import Context
from ..functions.linear import Linear as LinearFn
from .base import Layer, Parameter


class Dense(Layer):
    """y = x W^T + b  (functions.linear.Linear; docs/derivations/linear.md).

    Shapes: x (..., in_features) -> y (..., out_features);
            weight (out_features, in_features), bias (out_features,).

    ``init`` names the weight initialiser (see nnscratch.init): 'glorot_uniform' (default),
    'he_uniform', 'uniform_fan_in' (PyTorch's nn.Linear), ... Biases start at zero, except with
    'uniform_fan_in' where they follow PyTorch (U(+-1/sqrt(in_features))).

    A NumPy input to a layer whose weights are on the GPU is copied there first (data batches
    usually come from NumPy).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str = "glorot_uniform"):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Dense needs positive sizes, got in={in_features}, "
                             f"out={out_features}")
        self.in_features = in_features
        self.out_features = out_features
        shape = (out_features, in_features)
        self.weight = Parameter(initializers.get_initializer(init)(shape))
        if bias:
            if init == "uniform_fan_in":
                b = initializers.uniform_fan_in((out_features,), fan_in=in_features)
            else:
                b = initializers.zeros((out_features,))
            self.bias = Parameter(b)
        else:
            self.bias = None

    def forward(self, x):
        x = as_array_like(x, self.weight.data)
        self.check_input(x, last_dim=self.in_features)
        ctx = Context(needs_input_grad=(self.input_grad, True, True))
        b = None if self.bias is None else self.bias.data
        y = LinearFn.forward(ctx, x, self.weight.data, b)
        self.save_context(ctx)
        return y

    def backward(self, dy):
        ctx = self.pop_context()
        dx, dW, db = LinearFn.backward(ctx, dy)
        self.weight.accumulate(dW)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


Linear = Dense  # PyTorch's name
