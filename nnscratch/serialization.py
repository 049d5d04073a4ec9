"""Checkpoints: one ``.npz`` holding parameters, optimizer state, extra arrays and JSON metadata.

Layout of the archive (every entry a plain array, so it loads with ``allow_pickle=False``):

    __meta__            0-d unicode array: JSON {format, version, config, extra, optimizer meta}
    model/<name>        one entry per parameter, by dotted name
    optim/<key>         optimizer state arrays ('m.0', 'v.0', ...)
    arrays/<key>        anything else the caller wants to keep

Nothing else may be in the archive: ``load_checkpoint`` refuses a member outside these groups
(nnscratch never writes one, so it means the file was altered or written by another program),
metadata of the wrong JSON type, and arrays whose header does not match their size, all with a
``CheckpointError`` naming the file and the problem.

Writes are atomic: the archive goes to a temporary file in the same folder, is flushed to disk,
then renamed over the target, so a crash or Ctrl-C never leaves a half-written checkpoint in
place of a good one. The temporary is named ``.tmp-<pid>-<random>-<name>``; a process killed
mid-write (SIGKILL, power loss) cannot remove its own, so every later write or load in that
folder removes the temporaries whose process is gone (or that nothing has touched for an hour).
This assumes the processes writing into one folder run on one machine (one process-id space).
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .backend import to_cpu

FORMAT = "nnscratch-checkpoint"
VERSION = 1
GROUPS = ("model", "optim", "arrays")
TMP_PREFIX = ".tmp-"
#: a temporary nothing has written to for this long is stale even if its pid is alive again
STALE_TMP_SECONDS = 3600.0
_TMP_NAME = re.compile(r"^\.tmp-(\d+)-[0-9a-f]{8}-.+$")


class CheckpointError(Exception):
    """A checkpoint is missing, truncated, corrupt, or does not fit the model."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A readable checkpoint whose arrays do not fit the model or optimizer given to it (the
    message names the parameter and both shapes)."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` read: config and extra (JSON), and the raw array groups."""

    path: str
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    optimizer: dict | None = None
    arrays: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Temporary files: atomic writes, and removing what a killed writer left behind
# ----------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this machine (a zombie counts as gone)."""
    if os.name != "posix":
        return True  # no cheap, safe probe: only the age rule applies
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    try:  # Linux: a killed child its parent has not reaped yet is a zombie, not a writer
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(folder: str, max_age_s: float = STALE_TMP_SECONDS) -> list[str]:
    """Remove the ``.tmp-<pid>-...`` files in ``folder`` left by writers that died mid-write:
    their process is gone, or nothing has written to them for ``max_age_s`` seconds (a pid the
    system reused). This process's own temporaries are kept. Returns the paths removed; a folder
    that cannot be listed or written is left alone."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = _TMP_NAME.match(name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        path = os.path.join(folder, name)
        try:
            age = now - os.stat(path).st_mtime
            if not _pid_alive(int(m.group(1))) or age > max_age_s:
                os.remove(path)
                removed.append(path)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def atomic_write_bytes(path: str, write) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync it, then rename it over
    path. Stale temporaries of dead writers in that folder are removed first."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(folder)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
                               f"{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


# ----------------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------------
def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _check_json(value, where: str, seen: set) -> None:
    """Raise TypeError naming the first entry of ``value`` that JSON cannot hold."""
    if value is None or isinstance(value, (str, bool, int, float, np.generic, np.ndarray)):
        if isinstance(value, np.ndarray) and value.dtype.hasobject:
            raise TypeError(f"{where} is an object array, which JSON cannot hold")
        return
    if isinstance(value, (list, tuple, dict)):
        if id(value) in seen:
            raise TypeError(f"{where} contains itself (a circular reference)")
        seen = seen | {id(value)}
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise TypeError(f"{where} has a key of type {type(k).__name__} ({k!r}); "
                                    "JSON keys are strings")
                _check_json(v, f"{where}[{k!r}]", seen)
        else:
            for i, v in enumerate(value):
                _check_json(v, f"{where}[{i}]", seen)
        return
    raise TypeError(f"{where} is of type {type(value).__name__} ({value!r:.60}), which JSON "
                    "cannot hold: use str, int, float, bool, None, list or dict")


def save_checkpoint(path: str, model=None, optimizer=None, config: dict | None = None,
                    extra: dict | None = None, arrays: dict | None = None) -> str:
    """Write model parameters, optimizer state, a JSON config and extras atomically to ``path``.

    ``config`` and ``extra`` must be dicts of JSON values (NumPy scalars and arrays become
    numbers and lists); anything else raises TypeError naming the entry, before the disk is
    touched.
    """
    for name, value in (("config", config), ("extra", extra)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"save_checkpoint: {name} must be a dict, got "
                            f"{type(value).__name__}")
        _check_json(value, f"save_checkpoint: {name}", set())
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


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def _check_members(path: str) -> None:
    """Every member an .npy array whose header agrees with its size, in a known group.

    Reads only the headers, so a flipped digit in a shape (a header claiming terabytes) is
    refused here instead of being allocated by np.load."""
    with zipfile.ZipFile(path) as zf:
        if "__meta__.npy" not in zf.namelist():
            raise CheckpointError(f"{path}: no __meta__ entry: this .npz is not an "
                                  "nnscratch checkpoint")
        for info in zf.infolist():
            name = info.filename
            key = name[:-4] if name.endswith(".npy") else name
            group, _, entry = key.partition("/")
            if not name.endswith(".npy") or not (key == "__meta__" or (group in GROUPS
                                                                        and entry)):
                raise CheckpointError(
                    f"{path}: unexpected member {name!r}: an nnscratch checkpoint holds only "
                    f"__meta__ and {', '.join(g + '/<name>' for g in GROUPS)} arrays (was the "
                    "file altered, or written by another program?)")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                header = f.tell()
            if dtype.hasobject:
                raise CheckpointError(f"{path}: member {key!r} holds Python objects (pickled "
                                      "data), which a checkpoint never holds")
            size = header + math.prod(shape) * dtype.itemsize
            if size != info.file_size:
                raise CheckpointError(
                    f"{path}: member {key!r} declares shape {shape} of {dtype} ({size} bytes "
                    f"with its header) but holds {info.file_size} bytes")


def _json_kind(value) -> str:
    """A parsed JSON value's type as JSON names it."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def _read_meta(path: str, raw) -> dict:
    """The __meta__ entry as a dict, every field of the type the format says."""
    if not (isinstance(raw, np.ndarray) and raw.ndim == 0 and raw.dtype.kind == "U"):
        raise CheckpointError(f"{path}: corrupt metadata: __meta__ is not a text entry")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt metadata: a JSON {_json_kind(meta)} where an "
                              "object was expected")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown format {meta.get('format')!r}")
    version = meta.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: corrupt metadata: version {version!r} is not a whole "
                              "number >= 1")
    if version > VERSION:
        raise CheckpointError(f"{path}: written by a newer nnscratch (version {version})")
    for key in ("config", "extra"):
        if not isinstance(meta.get(key, {}), dict):
            raise CheckpointError(f"{path}: corrupt metadata: {key} is a JSON "
                                  f"{_json_kind(meta[key])}, not an object")
    if "optimizer" in meta:
        opt = meta["optimizer"]
        ok = (isinstance(opt, dict) and isinstance(opt.get("type"), str)
              and isinstance(opt.get("hyper"), dict) and isinstance(opt.get("step"), int)
              and not isinstance(opt.get("step"), bool))
        if not ok:
            raise CheckpointError(f"{path}: corrupt metadata: the optimizer state must be an "
                                  "object with a type (text), hyper (object) and step (whole "
                                  f"number), got {json.dumps(opt)[:80]}")
    return meta


def load_checkpoint(path: str, model=None, optimizer=None, strict: bool = True) -> Checkpoint:
    """Read a checkpoint; if ``model``/``optimizer`` are given, restore them in place.

    Raises CheckpointError for a missing, truncated, corrupt or foreign file, and
    CheckpointMismatchError (a CheckpointError and a ValueError) naming the parameter and both
    shapes when the saved arrays do not fit the model or the optimizer. Stale temporaries of
    writers killed mid-save in the same folder are removed.
    """
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError,
            RuntimeError, OverflowError, zlib.error) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method;
        # zlib.error: a corrupt deflated member
        raise CheckpointError(
            f"{path}: not a readable nnscratch checkpoint (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if "__meta__" not in data:
        raise CheckpointError(f"{path}: no __meta__ entry: this .npz is not an "
                              "nnscratch checkpoint")
    meta = _read_meta(path, data.pop("__meta__"))

    ckpt = Checkpoint(path=path, config=meta.get("config", {}), extra=meta.get("extra", {}))
    optim_arrays = {}
    for key, arr in data.items():
        group, _, name = key.partition("/")
        if group == "model":
            ckpt.model[name] = arr
        elif group == "optim":
            if not re.fullmatch(r".+\.\d+", name):
                raise CheckpointError(f"{path}: optimizer entry {name!r} is not '<state>.<index>'")
            optim_arrays[name] = arr
        else:
            ckpt.arrays[name] = arr
    if "optimizer" in meta:
        ckpt.optimizer = dict(meta["optimizer"], arrays=optim_arrays)

    if model is not None:
        try:
            model.load_state_dict(ckpt.model, strict=strict)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointMismatchError(f"{path}: does not fit the model: "
                                          f"{exc.args[0] if exc.args else exc}") from exc
    if optimizer is not None:
        if ckpt.optimizer is None:
            raise CheckpointError(f"{path}: holds no optimizer state")
        try:
            optimizer.load_state_dict(ckpt.optimizer)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointMismatchError(f"{path}: does not fit the optimizer: "
                                          f"{exc.args[0] if exc.args else exc}") from exc
    return ckpt
