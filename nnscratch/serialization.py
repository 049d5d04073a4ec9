"""Checkpoints: one ``.npz`` holding parameters, optimizer state, extra arrays and JSON metadata.

Layout of the archive (every entry a plain array, so it loads with ``allow_pickle=False``):

    __meta__            0-d unicode array: JSON {format, version, config, extra, optimizer meta}
    model/<name>        one entry per parameter, by dotted name
    optim/<key>         optimizer state arrays ('m.0', 'v.0', ...)
    arrays/<key>        anything else the caller wants to keep

Writes are atomic: the archive goes to a temporary file in the same folder, is flushed to disk,
then renamed over the target, so a crash or Ctrl-C never leaves a half-written checkpoint in
place of a good one.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .backend import to_cpu

FORMAT = "nnscratch-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, truncated, corrupt, or does not fit the model."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` read: config and extra (JSON), and the raw array groups."""

    path: str
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    optimizer: dict | None = None
    arrays: dict = field(default_factory=dict)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def atomic_write_bytes(path: str, write) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync it, then rename it over
    path."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_checkpoint(path: str, model=None, optimizer=None, config: dict | None = None,
                    extra: dict | None = None, arrays: dict | None = None) -> str:
    """Write model parameters, optimizer state, a JSON config and extras atomically to ``path``."""
    entries: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "version": VERSION, "config": config or {}, "extra": extra or {}}
    if model is not None:
        for name, arr in model.state_dict().items():
            entries[f"model/{name}"] = arr
    if optimizer is not None:
        st = optimizer.state_dict()
        meta["optimizer"] = {k: v for k, v in st.items() if k != "arrays"}
        for key, arr in st["arrays"].items():
            entries[f"optim/{key}"] = arr
    for key, arr in (arrays or {}).items():
        entries[f"arrays/{key}"] = to_cpu(arr)
    entries["__meta__"] = np.array(json.dumps(meta, default=_json_default))
    atomic_write_bytes(path, lambda f: np.savez(f, **entries))
    return path


def load_checkpoint(path: str, model=None, optimizer=None, strict: bool = True) -> Checkpoint:
    """Read a checkpoint; if ``model``/``optimizer`` are given, restore them in place.

    Raises CheckpointError for a missing, truncated or corrupt file, and ValueError/KeyError (with
    the parameter name and both shapes) when the saved arrays do not fit the model.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: not a readable nnscratch checkpoint (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if "__meta__" not in data:
        raise CheckpointError(f"{path}: no __meta__ entry: this .npz is not an "
                              "nnscratch checkpoint")
    try:
        meta = json.loads(str(data.pop("__meta__")))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt metadata: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown format {meta.get('format')!r}")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: written by a newer nnscratch (version {meta['version']})")

    ckpt = Checkpoint(path=path, config=meta.get("config", {}), extra=meta.get("extra", {}))
    optim_arrays = {}
    for key, arr in data.items():
        group, _, name = key.partition("/")
        if group == "model":
            ckpt.model[name] = arr
        elif group == "optim":
            optim_arrays[name] = arr
        elif group == "arrays":
            ckpt.arrays[name] = arr
    if "optimizer" in meta:
        ckpt.optimizer = dict(meta["optimizer"], arrays=optim_arrays)

    if model is not None:
        model.load_state_dict(ckpt.model, strict=strict)
    if optimizer is not None:
        if ckpt.optimizer is None:
            raise CheckpointError(f"{path}: holds no optimizer state")
        optimizer.load_state_dict(ckpt.optimizer)
    return ckpt
