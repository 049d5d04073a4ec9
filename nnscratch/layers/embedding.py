"""Embedding layer: a learned vector per token id."""
from __future__ import annotations

from ..backend import get_array_module, get_rng
from ..functions.base import Context
from ..functions.embedding import Embedding as EmbeddingFn
from ..functions.embedding import check_ids
from .base import Layer, Parameter


class Embedding(Layer):
    """y = weight[idx]  (functions.embedding.Embedding; docs/derivations/embedding.md).

    Shapes: idx (...) integer ids in [0, num_embeddings) -> y (..., embedding_dim);
            weight (num_embeddings, embedding_dim), initialised N(0, 1) like PyTorch.

    ``padding_idx``: the row of the padding token starts at zero and receives no gradient
    (negative values count from the end, as in PyTorch). ``backward(dy)`` adds into
    ``weight.grad`` (repeated ids add up) and returns None: ids have no gradient.
    Ids given as a NumPy array to a GPU layer are copied to the device. ``check_range`` (on by
    default) validates the ids with a clear error; on the GPU that reads one boolean back.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 check_range: bool = True):
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError("Embedding needs positive sizes, got "
                             f"num_embeddings={num_embeddings}, embedding_dim={embedding_dim}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is outside "
                                 f"[-{num_embeddings}, {num_embeddings})")
            padding_idx = padding_idx % num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.check_range = check_range
        w = get_rng().normal((num_embeddings, embedding_dim))
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)

    def forward(self, idx):
        xp = get_array_module(self.weight.data)
        idx = xp.asarray(idx)
        if self.check_range:
            check_ids(idx, self.num_embeddings, owner=self.label)
        ctx = Context()
        y = EmbeddingFn.forward(ctx, idx, self.weight.data, padding_idx=self.padding_idx)
        self.save_context(ctx)
        return y

    def backward(self, dy):
        _, dW = EmbeddingFn.backward(self.pop_context(), dy)
        self.weight.accumulate(dW)
        return None

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
