"""Parameters and the Layer base class.

A ``Layer`` owns ``Parameter`` objects and sub-layers (registered by attribute assignment, like
torch.nn.Module) and implements ``forward(x)`` and ``backward(dy)``:

* ``forward`` pushes what backward needs onto the layer's stack of saved contexts;
* ``backward(dy)`` pops the most recent context, returns dx and *adds* into each ``param.grad``.

The stack lets one layer be applied several times before its backwards run in reverse order
(an LSTM cell over time, a decoder shared across steps). Calling backward more often than
forward raises instead of silently reusing a context (micrograd #53). Inside ``no_grad()``
nothing is saved, which is what evaluation and sampling want.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from ..backend import get_array_module, to_cpu, to_device
from ..functions.base import Context

# ----------------------------------------------------------------------------------------------
# Gradient mode
# ----------------------------------------------------------------------------------------------
_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Run forwards without saving contexts (evaluation, sampling): backward is then unavailable."""
    global _grad_enabled
    previous = _grad_enabled
    _grad_enabled = False
    try:
        yield
    finally:
        _grad_enabled = previous


# ----------------------------------------------------------------------------------------------
# Parameter
# ----------------------------------------------------------------------------------------------
class Parameter:
    """A trainable array and its gradient.

    ``grad`` is None until a backward adds into it (and again after ``zero_grad``), so the first
    contribution is stored without a memset-and-add. ``requires_grad=False`` freezes it:
    optimizers skip it and backward passes do not accumulate into it.
    """

    __slots__ = ("data", "grad", "name", "requires_grad")

    def __init__(self, data, grad=None, name: str | None = None, requires_grad: bool = True):
        self.data = data
        self.grad = grad
        self.name = name
        self.requires_grad = requires_grad

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def accumulate(self, g) -> None:
        """grad += g (takes ownership of ``g`` when grad is None: pass a fresh array)."""
        if not self.requires_grad or g is None:
            return
        if g.shape != self.data.shape:
            raise ValueError(
                f"gradient of shape {tuple(g.shape)} for parameter {self.name or ''} of shape "
                f"{tuple(self.data.shape)}"
            )
        if self.grad is None:
            self.grad = g if g.dtype == self.data.dtype else g.astype(self.data.dtype)
        else:
            self.grad += g

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", frozen"
        return (f"Parameter({self.name or ''}, shape={tuple(self.shape)}, "
                f"dtype={self.dtype}{frozen})")


# ----------------------------------------------------------------------------------------------
# Layer
# ----------------------------------------------------------------------------------------------
class Layer:
    """Base class: parameter registry, train/eval mode, saved-context stack, state dicts."""

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_layers", OrderedDict())
        object.__setattr__(self, "_saved", [])
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_path", "")
        # Set False on a layer whose input is data (not an activation): its backward then skips
        # computing dx, as PyTorch does for inputs without requires_grad, and returns None.
        object.__setattr__(self, "input_grad", True)

    # -- registration ------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if isinstance(value, Parameter):
            self._params[name] = value
            self._layers.pop(name, None)
            value.name = self._qualify(name)
        elif isinstance(value, Layer):
            self._layers[name] = value
            self._params.pop(name, None)
            value._set_path(self._qualify(name))
        object.__setattr__(self, name, value)

    def _qualify(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def _set_path(self, path: str) -> None:
        object.__setattr__(self, "_path", path)
        for n, p in self._params.items():
            p.name = self._qualify(n)
        for n, sub in self._layers.items():
            sub._set_path(self._qualify(n))

    @property
    def label(self) -> str:
        """How errors name this layer: class name and its path in the model, e.g. Dense 'fc1'."""
        return f"{type(self).__name__} '{self._path}'" if self._path else type(self).__name__

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for n, p in self._params.items():
            yield (f"{prefix}{n}", p)
        for n, sub in self._layers.items():
            yield from sub.named_parameters(prefix=f"{prefix}{n}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        yield (prefix.rstrip("."), self)
        for n, sub in self._layers.items():
            yield from sub.named_layers(prefix=f"{prefix}{n}.")

    def children(self) -> list[Layer]:
        return list(self._layers.values())

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- modes ---------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Layer:
        for _, layer in self.named_layers():
            object.__setattr__(layer, "training", mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def freeze(self) -> Layer:
        """Exclude every parameter from gradients and optimizer steps (layer-wise training)."""
        for p in self.parameters():
            p.requires_grad = False
        return self

    def unfreeze(self) -> Layer:
        for p in self.parameters():
            p.requires_grad = True
        return self

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    # -- saved contexts --------------------------------------------------------------------------
    def save_context(self, ctx) -> None:
        """Push what this forward saved for backward (skipped inside ``no_grad()``)."""
        if _grad_enabled:
            self._saved.append(ctx)

    def pop_context(self):
        """Pop the most recent forward's context; raises if backward outruns forward."""
        if not self._saved:
            raise RuntimeError(
                f"{self.label}: backward called without a matching forward (called twice, or the "
                "forward ran inside no_grad())"
            )
        return self._saved.pop()

    def discard_context(self) -> None:
        """Drop what the latest forward saved, without a backward (nothing to propagate).

        A leaf layer pops one context. A layer with sub-layers cannot know how many contexts
        each child saved in one forward, so its whole tree is cleared.
        """
        if self._layers:
            self.clear_contexts()
        elif self._saved:
            self._saved.pop()

    def clear_contexts(self) -> None:
        """Drop saved contexts of this layer and its sub-layers (e.g. after an aborted step)."""
        for _, layer in self.named_layers():
            layer._saved.clear()

    # -- computation -------------------------------------------------------------------------------
    def forward(self, *xs):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dy):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, *xs, **kw):
        return self.forward(*xs, **kw)

    def check_input(self, x, ndim: int | tuple[int, ...] | None = None,
                    last_dim: int | None = None, what: str = "input") -> None:
        """Raise a ValueError naming this layer, the expected shape and the shape it got."""
        dims = (ndim,) if isinstance(ndim, int) else ndim
        if dims is not None and x.ndim not in dims:
            want = " or ".join(f"{d}-D" for d in dims)
            raise ValueError(f"{self.label}: expected a {want} {what}, got shape {tuple(x.shape)}")
        if last_dim is not None and (x.ndim == 0 or x.shape[-1] != last_dim):
            raise ValueError(
                f"{self.label}: expected {what} of shape (..., {last_dim}), got {tuple(x.shape)}"
            )

    # -- device and dtype -------------------------------------------------------------------------
    def to(self, device: str | None = None, dtype=None) -> Layer:
        """Move parameters (and gradients) to a device and/or cast them to a float dtype.

        An optimizer over these parameters moves its state arrays after them at its next step
        (``Optimizer._state_of``), so training goes on after ``to``.
        """
        for p in self.parameters():
            for attr in ("data", "grad"):
                a = getattr(p, attr)
                if a is None:
                    continue
                if device is not None:
                    a = to_device(a, device)
                if dtype is not None:
                    a = a.astype(dtype)
                setattr(p, attr, a)
        self.clear_contexts()
        return self

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameter arrays by dotted name, copied to the CPU."""
        return OrderedDict((n, to_cpu(p.data).copy()) for n, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters; shape mismatches name the parameter and both shapes."""
        own = dict(self.named_parameters())
        if strict:
            missing = sorted(set(own) - set(state))
            unexpected = sorted(set(state) - set(own))
            if missing or unexpected:
                raise KeyError(
                    f"{self.label}: state does not match the model: missing {missing}, "
                    f"unexpected {unexpected}"
                )
        for name, p in own.items():
            if name not in state:
                continue
            arr = state[name]
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(
                    f"{self.label}: parameter '{name}' has shape {tuple(p.shape)} in the model but "
                    f"{tuple(arr.shape)} in the saved state"
                )
            xp = get_array_module(p.data)
            p.data = xp.asarray(arr, dtype=p.dtype).copy()
            p.grad = None

    # -- display ----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._layers:
            return head + ")"
        lines = [head]
        for n, sub in self._layers.items():
            sub_repr = repr(sub).replace("\n", "\n  ")
            lines.append(f"  ({n}): {sub_repr}")
        return "\n".join(lines) + "\n)"


class StatelessLayer(Layer):
    """A layer around one Function without parameters (pooling, reshaping, upsampling): one
    saved context per forward. Subclasses set ``fn``, the expected input ranks ``ndim`` (None:
    any) and the options passed to ``fn.forward`` (``_options``)."""

    fn: type
    ndim: tuple[int, ...] | None = None

    def _options(self) -> dict:
        return {}

    def forward(self, x):
        if self.ndim is not None:
            self.check_input(x, ndim=self.ndim)
        ctx = Context()
        try:
            y = self.fn.forward(ctx, x, **self._options())
        except ValueError as exc:
            raise ValueError(f"{self.label}: {exc}") from None
        self.save_context(ctx)
        return y

    def backward(self, dy):
        (dx,) = self.fn.backward(self.pop_context(), dy)
        return dx


class LayerList(Layer):
    """An indexable list of sub-layers registered as '0', '1', ... (stacked LSTM layers...)."""

    def __init__(self, layers=()):
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> None:
        setattr(self, str(len(self._layers)), layer)

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers.values())

    def __getitem__(self, i: int) -> Layer:
        return list(self._layers.values())[i]


class Sequential(LayerList):
    """Layers applied in order; backward runs them in reverse.

    Shapes: whatever the first layer takes, whatever the last one returns.
    ``Sequential(Dense(2, 8), Sigmoid(), Dense(8, 1))``.
    """

    def __init__(self, *layers: Layer):
        if len(layers) == 1 and not isinstance(layers[0], Layer):
            layers = tuple(layers[0])  # also accept one iterable of layers
        super().__init__(layers)

    def forward(self, x):
        for layer in self._layers.values():
            x = layer(x)
        return x

    def backward(self, dy):
        layers = list(self._layers.values())
        for k in range(len(layers) - 1, -1, -1):
            dy = layers[k].backward(dy)
            if dy is None:
                # A layer fed with data (input_grad=False) gives no dx; the layers before it
                # (e.g. a Flatten of the input) have nothing to propagate, but the contexts
                # their forward saved must still be consumed.
                for earlier in layers[:k]:
                    earlier.discard_context()
                break
        return dy
