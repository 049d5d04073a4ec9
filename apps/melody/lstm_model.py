"""The melody LSTM of the 2024 slides (seed 002), and its checkpoints.

    ids (B, T)  ->  one-hot (B, T, V)  ->  LSTM(V, H)  ->  Dropout(p)  ->  Dense(H, V)  ->  logits

The softmax is fused into the loss (``SoftmaxCrossEntropyLoss``) during training and applied by
the sampler during generation.
"""
from __future__ import annotations

import nnscratch as nn
from apps.common.errors import rebuild_from
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.lstm import LSTM

from .data import Vocab


class MelodyLSTM(nn.Layer):
    """One-hot (batch, time, V) -> LSTM(V, H) -> Dropout(p) -> Dense(H, V) logits (batch, time, V).

    ``backward(dlogits)`` runs the three layers back in reverse; the LSTM's input is data, so
    it returns None. ``step(ids, state)`` advances one time step for generation.
    """

    def __init__(self, vocab_size: int, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        self.vocab_size, self.hidden_size, self.p = vocab_size, hidden, dropout
        self.lstm = LSTM(vocab_size, hidden)
        self.lstm.input_grad = False
        self.drop = Dropout(dropout)
        self.fc = nn.Dense(hidden, vocab_size)

    def one_hot(self, ids):
        """ids (...) -> one-hot (..., V) on the parameters' device."""
        xp = nn.get_array_module(self.fc.weight.data)
        return xp.eye(self.vocab_size, dtype=self.fc.weight.data.dtype)[xp.asarray(ids)]

    def forward(self, ids, state=None):
        y, state = self.lstm(self.one_hot(ids), state)
        return self.fc(self.drop(y))

    def backward(self, dlogits):
        dy = self.drop.backward(self.fc.backward(dlogits))
        self.lstm.backward(dy)
        return None

    def step(self, ids, state=None):
        """ids (batch,) -> (logits (batch, V) on the CPU, state); no dropout, nothing saved."""
        with nn.no_grad():
            h, state = self.lstm.step(self.one_hot(ids), state)
            return nn.to_cpu(self.fc(h)), state

    def extra_repr(self) -> str:
        return f"vocab={self.vocab_size}, hidden={self.hidden_size}, dropout={self.p}"


def config_of(model: MelodyLSTM, vocab: Vocab, **extra) -> dict:
    """What a checkpoint needs to rebuild the model (and what ``load_model`` reads back)."""
    return {"vocab": vocab.symbols, "hidden": model.hidden_size, "dropout": model.p, **extra}


def load_model(path: str) -> tuple:
    """(model, vocab, checkpoint) from a ``model.npz`` / ``best.npz`` written by training."""
    ck = nn.load_checkpoint(path)
    model, vocab = rebuild_from(
        path, ck.config, lambda c: (MelodyLSTM(len(c["vocab"]), c["hidden"], c["dropout"]),
                                    Vocab(c["vocab"])),
        "melody LSTM", needs=("vocab", "hidden", "dropout"))
    model.load_state_dict(ck.model)
    return model, vocab, ck
