"""A character-level language model: vocabulary, batching, the MusicRNN model, evaluation, sampling.

Used by ``apps/abc_lstm.py`` (and mirrored in PyTorch by ``benchmarks/abc_reference_torch.py``).

Model (seed report 004's MusicRNN), with hand-written backward through every layer:

    ids (B, T) -> Embedding -> (B, T, E) -> LSTM stack (dropout between layers) -> (B, T, H)
               -> Dropout -> Dense -> logits (B, T, V)
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np

import nnscratch as nn
from nnscratch.layers.dropout import Dropout
from nnscratch.layers.embedding import Embedding
from nnscratch.layers.lstm import LSTM

UNK = "<unk>"


# ----------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------
class Vocab:
    """Characters of the training text, plus ``<unk>`` (id 0) for characters never seen."""

    def __init__(self, chars):
        self.itos = [UNK] + sorted(set(chars) - {UNK})
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """Ids (int32) and the number of characters mapped to <unk>."""
        ids = np.fromiter((self.stoi.get(c, 0) for c in text), dtype=np.int32, count=len(text))
        return ids, int((ids == 0).sum())

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] if int(i) != 0 else "\ufffd" for i in ids)

    def to_json(self) -> dict:
        return {"itos": self.itos, "unk": UNK}

    @classmethod
    def from_json(cls, d: dict) -> "Vocab":
        v = cls.__new__(cls)
        v.itos = list(d["itos"])
        v.stoi = {c: i for i, c in enumerate(v.itos)}
        return v

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, ensure_ascii=False, indent=0)

    @classmethod
    def load(cls, path: str) -> "Vocab":
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))


# ----------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------
class WindowSampler:
    """Random windows of ``seq`` + 1 characters from the concatenated training ids.

    Every window is real text (no padding waste): inputs are the first ``seq`` ids, targets the
    next ``seq``. An *epoch* is ``len(ids) / (batch * seq)`` steps. The generator's state is saved
    in checkpoints, so a resumed run draws the same windows.
    """

    def __init__(self, ids: np.ndarray, batch: int, seq: int, seed: int = 0):
        if len(ids) < seq + 2:
            raise ValueError(f"the training text has {len(ids)} characters, fewer than a window of {seq + 1}")
        self.ids, self.batch, self.seq = ids, batch, seq
        self.rng = np.random.default_rng(seed)
        self._offsets = np.arange(seq + 1)

    @property
    def steps_per_epoch(self) -> float:
        return len(self.ids) / (self.batch * self.seq)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        starts = self.rng.integers(0, len(self.ids) - self.seq - 1, size=self.batch)
        win = self.ids[starts[:, None] + self._offsets]  # (batch, seq + 1)
        return win[:, :-1], win[:, 1:]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


IGNORE = -100


def tune_batches(tunes_ids: list[np.ndarray], batch_tunes: int = 32):
    """Validation batches: each tune on its own row from a zero state, padded at the end.

    Tunes are sorted by length so padding is small; padded targets are IGNORE. Because padding is
    only at the end and the model is causal, it never changes a real position's prediction.
    Yields (inputs (b, L), targets (b, L)).
    """
    order = sorted(range(len(tunes_ids)), key=lambda i: len(tunes_ids[i]))
    for k in range(0, len(order), batch_tunes):
        group = [tunes_ids[i] for i in order[k:k + batch_tunes]]
        L = max(len(t) for t in group) - 1
        x = np.zeros((len(group), L), dtype=np.int32)
        y = np.full((len(group), L), IGNORE, dtype=np.int64)
        for r, t in enumerate(group):
            x[r, : len(t) - 1] = t[:-1]
            y[r, : len(t) - 1] = t[1:]
        yield x, y


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    vocab_size: int
    embedding: int = 128
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.2


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
                         dropout=cfg.dropout if cfg.layers > 1 else 0.0)
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


# ----------------------------------------------------------------------------------------------
# Evaluation and sampling
# ----------------------------------------------------------------------------------------------
def evaluate(model: MusicRNN, tunes_ids: list[np.ndarray], batch_tunes: int = 32) -> tuple[float, float]:
    """Mean cross-entropy (nats per character) and accuracy over every predicted character of
    every tune, each tune teacher-forced from a zero state."""
    xp = nn.backend.xp_for()
    total_nll, total_correct, total_n = 0.0, 0, 0
    was_training = model.training
    model.eval()
    loss_fn = nn.SoftmaxCrossEntropyLoss(ignore_index=IGNORE, reduction="sum")
    with nn.no_grad():
        for x, y in tune_batches(tunes_ids, batch_tunes):
            logits, _ = model(xp.asarray(x))
            yt = xp.asarray(y)
            total_nll += loss_fn(logits, yt)
            mask = yt != IGNORE
            total_correct += int(((logits.argmax(-1) == yt) & mask).sum())
            total_n += int(mask.sum())
    model.train(was_training)
    return total_nll / total_n, total_correct / total_n


def sample(model: MusicRNN, vocab: Vocab, prime: str, n: int, temperature: float = 0.8,
           max_chars: int = 1500, stop: str = "\n\n", seed: int = 0) -> list[str]:
    """``n`` independent continuations of ``prime`` (one batch row each), stopped at ``stop``.

    Characters the model never saw in ``prime`` map to <unk> with a warning.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not prime:
        raise ValueError("the prime must hold at least one character")
    ids, n_unk = vocab.encode(prime)
    if n_unk:
        unknown = sorted({c for c in prime if c not in vocab.stoi})
        warnings.warn(f"the prime holds {n_unk} character(s) the model never saw ({unknown!r}); "
                      "they are read as <unk>", stacklevel=2)
    xp = nn.backend.xp_for()
    rng = np.random.default_rng(seed)
    model.eval()
    out = [[] for _ in range(n)]
    prev = [prime[-1]] * n          # the stop sequence is two characters: "\n\n"
    done = np.zeros(n, dtype=bool)
    with nn.no_grad():
        logits, state = model(xp.asarray(np.tile(ids, (n, 1))))
        last = logits[:, -1]
        for _ in range(max_chars):
            # softmax(logits / T) on the host in float64; <unk> (id 0) is never emitted
            p = nn.to_cpu(nn.functions.softmax(last.astype(np.float64) / temperature, axis=-1))
            p[:, 0] = 0.0
            p /= p.sum(axis=1, keepdims=True)
            u = rng.random((n, 1))
            nxt = np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)  # inverse CDF
            for r in np.flatnonzero(~done):
                ch = vocab.itos[nxt[r]]
                out[r].append(ch)
                if prev[r] + ch == stop:
                    done[r] = True
                prev[r] = ch
            if done.all():
                break
            last, state = model.step(xp.asarray(nxt.astype(np.int32)), state)
    return [(prime + "".join(o)).rstrip("\n") + "\n" for o in out]


def perplexity(ce: float) -> float:
    return math.exp(ce)
