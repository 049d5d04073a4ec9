"""The seed-000 network: a multilayer perceptron with sigmoid hidden neurons and a linear output.

Its backward is classic backpropagation written as the seed report derives it: the delta of each
neuron, from the output towards the input. Read it beside docs/derivations/mlp.md, whose equation
numbers the code cites as ``# (n)``.

Notation (the report's, in the code's names):
    x^l     inputs of layer l (x^0 = the network input),    shape (batch, n_l)
    W^l     weights, W^l[i, j] = w_ij (input j of neuron i), shape (n_{l+1}, n_l)
    v^l     potentials v_i = sum_j w_ij x_j + b_i,           shape (batch, n_{l+1})
    y^l     outputs f(v^l): sigmoid for hidden layers, identity for the output layer
    delta^l dJ/dv^l, the delta of every neuron of layer l

``SigmoidMLP.backward`` is the vectorised form (all neurons and examples at once);
``per_neuron_gradients`` is the same recursion one neuron at a time, for study and as a test
oracle.
"""
from __future__ import annotations

import numpy as np

from ..functions.activation import sigmoid
from ..functions.base import Context
from .base import Layer, LayerList
from .linear import Dense


class SigmoidMLP(Layer):
    """sizes = [n_in, h_1, ..., h_k, n_out]: sigmoid hidden layers, linear output neurons.

    Shapes: x (batch, n_in) -> y (batch, n_out).
    ``backward(dy)`` takes dJ/dy. For the seed's cost J = 1/2 sum (y - y_target)^2 (the
    ``LeastSquares`` loss), dJ/dy = y - y_target.
    """

    def __init__(self, sizes, init: str = "glorot_uniform"):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"SigmoidMLP needs at least [n_in, n_out] positive sizes, got {sizes}")
        self.sizes = sizes
        self.layers = LayerList(Dense(a, b, init=init) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        self.check_input(x, ndim=2, last_dim=self.sizes[0])
        inputs, outputs = [], []
        n = len(self.layers)
        for l, layer in enumerate(self.layers):
            inputs.append(x)
            v = x @ layer.weight.data.T + layer.bias.data  # (1) potentials
            x = v if l == n - 1 else sigmoid(v)            # (2) linear output, sigmoid hidden
            outputs.append(x)
        self.save_context(Context(inputs=inputs, outputs=outputs))
        return x

    def backward(self, dy):
        """Backpropagation: deltas from the output layer down, then dJ/dw_ij = delta_i x_j."""
        ctx = self.pop_context()
        layers = list(self.layers)
        delta = dy  # (5) output neuron, linear: delta_s = dJ/dv_s = dJ/dy_s (= y - y_target for J)
        dx = None
        for l in range(len(layers) - 1, -1, -1):
            layer, x = layers[l], ctx.inputs[l]
            layer.weight.accumulate(delta.T @ x)   # (4), (8) dJ/dw_ij = sum_k delta_i x_j
            layer.bias.accumulate(delta.sum(axis=0))  # (4) with x_0 = 1 for the bias
            back = delta @ layer.weight.data       # sum_m delta_m w_mi, for every neuron i below
            if l > 0:
                y = ctx.outputs[l - 1]
                delta = y * (1 - y) * back         # (6), (7) delta_i = f'(v_i) sum_m delta_m w_mi
            else:
                dx = back                          # dJ/dx for a caller that wants it
        return dx

    def extra_repr(self) -> str:
        return "-".join(str(s) for s in self.sizes)


def per_neuron_gradients(weights, biases, x, y_target):
    """The seed report's recursion, literally: one example, one neuron at a time, plain loops.

    Args:
        weights: list of arrays W^l of shape (n_{l+1}, n_l); biases: list of (n_{l+1},).
        x: one input example (n_0,); y_target: its target (n_out,).
    Returns:
        (dPi/dW list, dPi/db list) for the per-example loss Pi = sum_s (y_s - y_target_s)^2,
        so that dJ/dw = 1/2 * sum over examples of these (mlp.md, (8)).
    """
    n_layers = len(weights)
    # Forward: potentials v and outputs y of every neuron, layer by layer.        (1), (2)
    xs, vs = [np.asarray(x, dtype=np.float64)], []
    for l in range(n_layers):
        W, b, inp = weights[l], biases[l], xs[-1]
        v = np.array([sum(W[i, j] * inp[j] for j in range(W.shape[1])) + b[i]
                      for i in range(W.shape[0])])
        vs.append(v)
        if l == n_layers - 1:
            xs.append(v)  # linear output neuron
        else:
            xs.append(np.array([1.0 / (1.0 + np.exp(-vi)) for vi in v]))
    # Output neurons: delta_s = 2 (y_s - y_target_s).                              (5)
    y = xs[-1]
    deltas = [None] * n_layers
    deltas[-1] = np.array([2.0 * (y[s] - y_target[s]) for s in range(len(y))])
    # Hidden neurons: delta_i = f'(v_i) * sum_m delta_m w_mi, f' = f (1 - f).       (6), (7)
    for l in range(n_layers - 2, -1, -1):
        W_next, d_next, out = weights[l + 1], deltas[l + 1], xs[l + 1]
        deltas[l] = np.array([
            out[i] * (1.0 - out[i]) * sum(d_next[m] * W_next[m, i] for m in range(W_next.shape[0]))
            for i in range(W_next.shape[1])
        ])
    # Weight gradients: dPi/dw_ij = delta_i * x_j (x_j = 1 for the bias).           (4)
    grads_W = [np.array([[deltas[l][i] * xs[l][j] for j in range(weights[l].shape[1])]
                         for i in range(weights[l].shape[0])]) for l in range(n_layers)]
    grads_b = [deltas[l].copy() for l in range(n_layers)]
    return grads_W, grads_b
