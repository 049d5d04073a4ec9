"""The ABC app's data: prepared corpus text, the character vocabulary, training windows and
validation batches.

    tunes.jsonl / .abc  --prepare-->  train.txt, val.txt (canonical tunes, one blank line apart)
                                      + vocab.json (the training text's characters + <unk>)
    train.txt  --Vocab.encode-->  ids (N,)  --WindowSampler-->  x, y (batch, seq) each
    val.txt    --val_tunes-->  one id array per tune  --tune_batches-->  x, y (b, L), padded

The canonical text itself (which fields stay, how keys and meters are spelled, the
train/validation split) is ``apps/music/abc_text.py``'s job; this module writes it to disk and
turns it into arrays.
"""
from __future__ import annotations

import json
import os

import numpy as np

from apps.common.errors import UsageError
from apps.music.abc_text import AbcInputError, join_tunes, prepare_corpus
from apps.music.data_paths import REPO_ROOT

DEFAULT_DATA = os.path.join(REPO_ROOT, "..", "shared", "data", "folk-abc", "tunes.jsonl")
UNK = "<unk>"
IGNORE = -100  # target id of padded positions: the loss and the accuracy skip it


def default_data_path() -> str:
    """$NNSCRATCH_DATA, else ../shared/data/folk-abc/tunes.jsonl beside the project."""
    return os.environ.get("NNSCRATCH_DATA") or os.path.normpath(DEFAULT_DATA)


# ----------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------
class Vocab:
    """Characters of the training text, plus ``<unk>`` (id 0) for characters never seen."""

    def __init__(self, chars):
        self.itos = [UNK] + sorted(set(chars) - {UNK})
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """Ids (len(text),) int32 and the number of characters mapped to <unk>."""
        ids = np.fromiter((self.stoi.get(c, 0) for c in text), dtype=np.int32, count=len(text))
        return ids, int((ids == 0).sum())

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] if int(i) != 0 else "\ufffd" for i in ids)

    def to_json(self) -> dict:
        return {"itos": self.itos, "unk": UNK}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        v = cls.__new__(cls)
        v.itos = list(d["itos"])
        v.stoi = {c: i for i, c in enumerate(v.itos)}
        return v

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, ensure_ascii=False, indent=0)

    @classmethod
    def load(cls, path: str) -> Vocab:
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))


# ----------------------------------------------------------------------------------------------
# Preparing the corpus on disk
# ----------------------------------------------------------------------------------------------
def prepare(data: str, out: str, log=print) -> dict:
    """Write train.txt, val.txt (tunes separated by one blank line) and vocab.json into ``out``.

    The folder is made only once the tunes have been read, so bad data leaves nothing behind.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out}: is a file, not a folder for the prepared data")
    corpus = prepare_corpus(data)
    os.makedirs(out, exist_ok=True)
    train_text, val_text = join_tunes(corpus.train), join_tunes(corpus.val)
    vocab = Vocab.from_text(train_text)
    _, n_unk = vocab.encode(val_text)
    for name, text in (("train.txt", train_text), ("val.txt", val_text)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    vocab.save(os.path.join(out, "vocab.json"))
    info = {"data": os.path.abspath(data), "train_tunes": len(corpus.train),
            "val_tunes": len(corpus.val), "dropped_tunes": len(corpus.dropped),
            "train_chars": len(train_text), "val_chars": len(val_text), "vocab_size": len(vocab),
            "val_unknown_chars": n_unk}
    log(f"prepared {info['train_tunes']} training and {info['val_tunes']} validation tunes "
        f"({info['train_chars']:,} / {info['val_chars']:,} characters, {info['dropped_tunes']} "
        f"dropped without key or music) into {out}; vocabulary {len(vocab)} symbols; "
        f"{n_unk} validation characters unseen in training map to <unk>")
    return info


def prepare_cmd(args) -> None:
    """The ``prepare`` command."""
    prepare(args.data or default_data_path(), args.out)


def load_prepared(folder: str) -> tuple[str, str, Vocab]:
    """The training text, the validation text and the vocabulary written by :func:`prepare`.

    A missing file is an OSError naming it; damaged contents (not UTF-8, a vocabulary that is
    not the JSON ``prepare`` writes) are an AbcInputError naming the folder."""
    try:
        with open(os.path.join(folder, "train.txt"), encoding="utf-8") as f:
            train_text = f.read()
        with open(os.path.join(folder, "val.txt"), encoding="utf-8") as f:
            val_text = f.read()
        vocab = Vocab.load(os.path.join(folder, "vocab.json"))
        if not all(isinstance(c, str) for c in vocab.itos) or vocab.itos[:1] != [UNK]:
            raise ValueError("vocab.json's itos must be a list of characters after <unk>")
    except (UnicodeDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise AbcInputError(f"{folder}: damaged prepared data, not as `prepare` writes it "
                            f"({type(exc).__name__}: {exc}); prepare it again") from None
    return train_text, val_text, vocab


def val_tunes(val_text: str, vocab: Vocab) -> list[np.ndarray]:
    """Each validation tune's ids (L_i,), with its terminating newline (the end-of-tune
    signal)."""
    tunes = [t + "\n" for t in val_text.split("\n\n") if t.strip()]
    return [vocab.encode(t)[0] for t in tunes]


# ----------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------
class WindowSampler:
    """Random windows of ``seq`` + 1 characters from the concatenated training ids (N,).

    Every window is real text (no padding waste): inputs are the first ``seq`` ids, targets the
    next ``seq``. An *epoch* is ``len(ids) / (batch * seq)`` steps. The generator's state is saved
    in checkpoints, so a resumed run draws the same windows.
    """

    def __init__(self, ids: np.ndarray, batch: int, seq: int, seed: int = 0):
        if len(ids) < seq + 2:
            raise UsageError(f"the training text has {len(ids)} characters, fewer than a window "
                             f"of {seq + 1} (--seq {seq}); use a shorter --seq or more tunes")
        self.ids, self.batch, self.seq = ids, batch, seq
        self.rng = np.random.default_rng(seed)
        self._offsets = np.arange(seq + 1)

    @property
    def steps_per_epoch(self) -> float:
        return len(self.ids) / (self.batch * self.seq)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets, (batch, seq) int32 each; targets are the inputs shifted by one."""
        starts = self.rng.integers(0, len(self.ids) - self.seq - 1, size=self.batch)
        win = self.ids[starts[:, None] + self._offsets]  # (batch, seq + 1)
        return win[:, :-1], win[:, 1:]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


class StreamSampler:
    """``batch`` streams reading the training ids (N,) in order, ``seq`` characters per step:
    truncated backprop through time with the state carried from one window to the next.

    Row r starts at a random place and each ``next()`` moves it on by ``seq``, so the model's
    state at the start of a window is the one left by the previous window of the same row: the
    model sees context far beyond ``seq`` characters while backprop stays ``seq`` long (char-rnn
    trains this way). A row that would run past the end starts again at a random place;
    ``next()`` says which rows did (their state must be zeroed). The generator and cursors are
    saved in checkpoints, so a resumed run reads the same windows.
    """

    def __init__(self, ids: np.ndarray, batch: int, seq: int, seed: int = 0):
        if len(ids) < 2 * (seq + 1):
            raise UsageError(f"the training text has {len(ids)} characters, too few for windows "
                             f"of {seq + 1} (--seq {seq}); use a shorter --seq or more tunes")
        self.ids, self.batch, self.seq = ids, batch, seq
        self.rng = np.random.default_rng(seed)
        self._offsets = np.arange(seq + 1)
        self.cursors = self._starts(batch)

    def _starts(self, n: int) -> np.ndarray:
        return self.rng.integers(0, len(self.ids) - self.seq - 1, size=n)

    @property
    def steps_per_epoch(self) -> float:
        return len(self.ids) / (self.batch * self.seq)

    def next(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inputs and targets (batch, seq) int32, and the rows that start afresh (batch,) bool."""
        fresh = self.cursors + self.seq + 1 > len(self.ids)
        if fresh.any():
            self.cursors[fresh] = self._starts(int(fresh.sum()))
        win = self.ids[self.cursors[:, None] + self._offsets]  # (batch, seq + 1)
        self.cursors = self.cursors + self.seq
        return win[:, :-1], win[:, 1:], fresh

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "cursors": self.cursors.tolist()}

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.cursors = np.asarray(state["cursors"], dtype=np.int64)


def tune_batches(tunes_ids: list[np.ndarray], batch_tunes: int = 32):
    """Validation batches: each tune on its own row from a zero state, padded at the end.

    Tunes are sorted by length so padding is small; padded targets are IGNORE. Because padding is
    only at the end and the model is causal, it never changes a real position's prediction.
    Yields (inputs (b, L) int32, targets (b, L) int64), L = the longest tune's length - 1.
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
