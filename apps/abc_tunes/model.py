"""MusicRNN, the character LSTM of seed report 004, with hand-written backward through every layer
(mirrored in PyTorch by ``benchmarks/abc_reference_torch.py``):

    ids (B, T) -> Embedding -> (B, T, E) -> LSTM stack (dropout between layers) -> (B, T, H)
               -> Dropout -> Dense -> logits (B, T, V)
"""
from __future__ import annotations

from dataclasses import dataclass

import nnscratch as nn
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.embedding import Embedding
from nnscratch.layers.lstm import LSTM


@dataclass
class ModelConfig:
    """The sizes saved in a checkpoint's config: V, E, H, the LSTM layers and the dropout rate."""

    vocab_size: int
    embedding: int = 128
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.2
    forget_bias: float = 0.0   # added to the forget gates' bias at initialisation


class MusicRNN(nn.Layer):
    """Embedding -> LSTM stack -> Dropout -> Dense (seed 004).

    Shapes: ids (B, T) int -> logits (B, T, V); state = (h, c) each (layers, B, hidden).

    With ``fold_embedding`` (the default) the embedding is folded into the first LSTM layer
    (docs/derivations/lstm.md, (22)-(24)): the same function and gradients, computed as a
    lookup in the projected table E W_ih^T instead of a GEMM over every time step.
    """

    def __init__(self, cfg: ModelConfig, fold_embedding: bool = True):
        super().__init__()
        self.cfg = cfg
        self.fold_embedding = fold_embedding
        self.embedding = Embedding(cfg.vocab_size, cfg.embedding)
        self.lstm = LSTM(cfg.embedding, cfg.hidden, num_layers=cfg.layers,
                         dropout=cfg.dropout if cfg.layers > 1 else 0.0,
                         forget_bias=cfg.forget_bias)
        self.dropout = Dropout(cfg.dropout)
        self.head = nn.Dense(cfg.hidden, cfg.vocab_size, init="uniform_fan_in")

    def forward(self, ids, state=None):
        if self.fold_embedding:
            y, state = self.lstm(ids, state, embedding=self.embedding)
        else:
            y, state = self.lstm(self.embedding(ids), state)
        logits = self.head(self.dropout(y))
        return logits, state

    def backward(self, dlogits):
        """Back through head, dropout, LSTM and embedding; the final state's gradient is cut
        (truncated backprop through time between windows)."""
        dy = self.dropout.backward(self.head.backward(dlogits))
        de, _ = self.lstm.backward(dy)  # folded: the LSTM adds into embedding.weight.grad itself
        if not self.fold_embedding:
            self.embedding.backward(de)

    def step(self, ids_t, state):
        """One generation step: ids_t (B,) -> logits (B, V), new state (use under no_grad)."""
        e = self.embedding(ids_t[:, None])[:, 0]
        y, state = self.lstm.step(e, state)
        return self.head(y), state
