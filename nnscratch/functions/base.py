"""The unit of differentiation: a Function is a pair ``forward(ctx, *xs)`` /
``backward(ctx, *dys)``.

There is no autograd tape. ``forward`` computes its output from raw arrays and saves in ``ctx``
what ``backward`` needs (never recomputing in backward what forward already had); ``backward``
takes the gradient of the loss with respect to each output and returns the gradients with
respect to each array input, in order. Layers (``nnscratch.layers``) own parameters and call
these functions; models chain layers and write their own backward by hand.

Example::

    ctx = Context()
    y = Sigmoid.forward(ctx, x)
    dx = Sigmoid.backward(ctx, dy)
"""
from __future__ import annotations


class Context:
    """What one forward call saved for its backward: arbitrary attributes.

    ``consume()`` marks it used so a second backward through the same forward raises instead of
    silently doubling gradients (micrograd #53).

    ``needs_input_grad`` (like PyTorch's) tells backward which inputs want a gradient: a layer fed
    with data sets False for its input, and backward then skips that product (``needs(i)``).
    """

    def __init__(self, needs_input_grad: tuple | None = None, **saved):
        self.__dict__.update(saved)
        self.needs_input_grad = needs_input_grad
        self._consumed = False

    def needs(self, i: int) -> bool:
        """Whether input ``i`` wants a gradient (True unless ``needs_input_grad`` says
        otherwise)."""
        return self.needs_input_grad is None or bool(self.needs_input_grad[i])

    def save(self, **saved) -> None:
        self.__dict__.update(saved)

    def consume(self, owner: str = "function") -> None:
        if self._consumed:
            raise RuntimeError(
                f"{owner}: backward was called twice for the same forward; run forward again first"
            )
        self._consumed = True


class Function:
    """Base class of differentiable ops; subclasses define two static methods.

    ``forward(ctx, *arrays, **options) -> array``: the output; saves what backward needs.
    ``backward(ctx, *grads) -> tuple``: one gradient per array input (None where an input is not
    differentiable, e.g. integer targets).
    """

    @staticmethod
    def forward(ctx: Context, *xs, **options):  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *dys):  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def apply(cls, *xs, **options):
        """Run forward with a fresh context; returns ``(y, ctx)``."""
        ctx = Context()
        y = cls.forward(ctx, *xs, **options)
        return y, ctx
