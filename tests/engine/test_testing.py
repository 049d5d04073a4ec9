"""The gradient checker itself: it passes correct backwards and fails wrong ones."""
from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.functions.base import Function
from nnscratch.testing import GradientCheckError, check_backward, check_layer, numerical_grad


class _SquareWrongBackward(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save(x=x)
        return x * x

    @staticmethod
    def backward(ctx, dy):
        return (dy * ctx.x,)  # missing the factor 2


class _SquareRightBackward(_SquareWrongBackward):
    @staticmethod
    def backward(ctx, dy):
        return (2 * dy * ctx.x,)


def test_numerical_grad_of_known_function():
    x = np.array([0.3, -1.2, 2.0])
    g = numerical_grad(lambda: (x ** 3).sum(), x)
    np.testing.assert_allclose(g, 3 * np.array([0.3, -1.2, 2.0]) ** 2, rtol=1e-10)


def test_checker_catches_a_wrong_backward():
    x = np.random.default_rng(0).normal(size=(3, 4))
    check_backward(_SquareRightBackward, [x])
    with pytest.raises(GradientCheckError, match="worst relative error"):
        check_backward(_SquareWrongBackward, [x])


def test_checker_catches_wrong_backward_along_random_directions():
    x = np.random.default_rng(0).normal(size=(40, 40))  # > max_elements: random directions
    check_backward(_SquareRightBackward, [x], max_elements=100)
    with pytest.raises(GradientCheckError, match="random directions"):
        check_backward(_SquareWrongBackward, [x], max_elements=100)


class _DenseBadBias(nn.Dense):
    def backward(self, dy):
        dx = super().backward(dy)
        self.bias.grad *= 1.01  # a 1% error in one parameter's gradient
        return dx


def test_check_layer_catches_a_wrong_parameter_gradient():
    x = np.random.default_rng(0).normal(size=(4, 3))
    check_layer(nn.Dense(3, 2).to(dtype=np.float64), [x])
    with pytest.raises(GradientCheckError, match="parameter bias"):
        check_layer(_DenseBadBias(3, 2).to(dtype=np.float64), [x])


def test_check_layer_requires_float64_parameters():
    with pytest.raises(TypeError, match="float64"):
        check_layer(nn.Dense(3, 2), [np.zeros((2, 3))])
