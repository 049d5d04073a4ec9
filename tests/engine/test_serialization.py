"""Checkpoints: exact round trips, atomic writes, clear errors for corrupt or mismatched files."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import optim
from nnscratch.serialization import (
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)


def _model():
    return nn.Sequential(nn.Dense(4, 8), nn.Tanh(), nn.Dense(8, 3))


def _train_steps(model, opt, rng, n=3):
    loss = nn.SoftmaxCrossEntropyLoss()
    for _ in range(n):
        x = rng.normal(size=(5, 4)).astype(np.float32)
        t = rng.integers(0, 3, size=5)
        loss(model(x), t)
        model.backward(loss.backward())
        opt.step()
        opt.zero_grad()


def test_round_trip_restores_predictions_and_optimizer_state(tmp_path):
    rng = np.random.default_rng(0)
    model = _model()
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    _train_steps(model, opt, rng)
    path = str(tmp_path / "ckpt.npz")
    save_checkpoint(path, model, opt, config={"sizes": [4, 8, 3]}, extra={"step": 3},
                    arrays={"rng_note": np.arange(3)})

    nn.manual_seed(99)  # a differently initialised model
    model2 = _model()
    opt2 = optim.AdamW(model2.parameters(), lr=1.0)
    ck = load_checkpoint(path, model2, opt2)
    assert ck.config == {"sizes": [4, 8, 3]} and ck.extra == {"step": 3}
    np.testing.assert_array_equal(ck.arrays["rng_note"], np.arange(3))
    x = rng.normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model2(x))
    assert opt2.lr == opt.lr and opt2.step_count == opt.step_count and opt2.betas == opt.betas
    for i in opt.state:
        for k in opt.state[i]:
            np.testing.assert_array_equal(opt.state[i][k], opt2.state[i][k])
    # both continue identically
    state = np.random.default_rng(5)
    _train_steps(model, opt, state)
    _train_steps(model2, opt2, np.random.default_rng(5))
    np.testing.assert_array_equal(model(x), model2(x))


def test_checkpoint_loads_without_pickle(tmp_path):
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, _model())
    with np.load(path, allow_pickle=False) as npz:
        assert "__meta__" in npz.files and any(k.startswith("model/") for k in npz.files)


def test_shape_mismatch_names_parameter_and_shapes(tmp_path):
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, _model())
    other = nn.Sequential(nn.Dense(4, 16), nn.Tanh(), nn.Dense(16, 3))
    # a CheckpointError (an app prints it as "error: ...") that is still a ValueError
    with pytest.raises(CheckpointMismatchError,
                       match=r"'0.weight' has shape \(16, 4\) in the model but \(8, 4\)"):
        load_checkpoint(path, other)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path, nn.Sequential(nn.Dense(4, 8)))
    assert issubclass(CheckpointMismatchError, ValueError)


def test_truncated_and_corrupt_files_give_clear_errors(tmp_path):
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, _model())
    data = open(path, "rb").read()
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(str(trunc), _model())
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(str(junk))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(str(tmp_path / "missing.npz"))
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(CheckpointError, match="not an nnscratch checkpoint"):
        load_checkpoint(str(plain))


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temp file behind."""
    path = str(tmp_path / "c.npz")
    model = _model()
    save_checkpoint(path, model, extra={"v": 1})
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, extra={"v": 2})
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["c.npz"]
    assert zipfile.is_zipfile(path)


# ----------------------------------------------------------------------------------------------
# Issue 22: metadata of the wrong type, foreign members, non-JSON configs
# ----------------------------------------------------------------------------------------------
def _archive(path, meta, **members):
    """An .npz with ``meta`` (a JSON value, or an array used as is) as __meta__."""
    raw = meta if isinstance(meta, np.ndarray) else np.array(json.dumps(meta))
    np.savez(path, __meta__=raw, **members)
    return str(path)


GOOD_META = {"format": "nnscratch-checkpoint", "version": 1, "config": {}, "extra": {}}


@pytest.mark.parametrize("meta,message", [
    ([1, 2], "a JSON array where an object was expected"),
    (None, "a JSON null where an object was expected"),
    ("nnscratch-checkpoint", "a JSON string where an object was expected"),
    (dict(GOOD_META, version="1"), "version '1' is not a whole number"),
    (dict(GOOD_META, version=True), "version True is not a whole number"),
    (dict(GOOD_META, version=None), "version None is not a whole number"),
    (dict(GOOD_META, optimizer=[1, 2]), "optimizer state must be an object"),
    (dict(GOOD_META, optimizer={"type": "Adam", "hyper": [], "step": 1}), "optimizer state"),
    (dict(GOOD_META, optimizer={"type": "Adam", "hyper": {}, "step": "3"}), "optimizer state"),
    (dict(GOOD_META, config=[1]), "config is a JSON array, not an object"),
    (dict(GOOD_META, extra="x"), "extra is a JSON string, not an object"),
    (np.arange(3), "__meta__ is not a text entry"),
])
def test_metadata_of_the_wrong_json_type_is_refused(tmp_path, meta, message):
    path = _archive(tmp_path / "c.npz", meta, **{"model/0.weight": np.zeros((8, 4))})
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path, _model(), optim.Adam(_model().parameters()))


def test_an_optimizer_entry_without_an_index_is_refused(tmp_path):
    meta = dict(GOOD_META, optimizer={"type": "Adam", "hyper": {}, "step": 1})
    path = _archive(tmp_path / "c.npz", meta, **{"optim/m": np.zeros(3)})
    with pytest.raises(CheckpointError, match="'m' is not '<state>.<index>'"):
        load_checkpoint(path)


def test_optimizer_state_of_another_optimizer_is_a_checkpoint_error(tmp_path):
    model = _model()
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, model, optim.Adam(model.parameters()))
    with pytest.raises(CheckpointMismatchError, match="does not fit the optimizer.*Adam"):
        load_checkpoint(path, model, optim.SGD(model.parameters(), lr=0.1))


def test_a_config_that_is_not_json_is_refused_before_the_disk_is_touched(tmp_path):
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, _model(), config={"v": 1})
    before = open(path, "rb").read()
    for config, where in (({"a": {"b": [1, object()]}},
                           r"config\['a'\]\['b'\]\[1\] is of type object"),
                          ({"a": {1, 2}}, r"config\['a'\] is of type set"),
                          ({("x", 1): 2}, r"config has a key of type tuple"),
                          ([1, 2], "config must be a dict")):
        with pytest.raises(TypeError, match=where):
            save_checkpoint(path, _model(), config=config)
    with pytest.raises(TypeError, match=r"extra\['f'\] is of type builtin_function"):
        save_checkpoint(path, _model(), extra={"f": print})
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["c.npz"]
    # NumPy scalars and arrays still become JSON numbers and lists
    save_checkpoint(path, config={"n": np.int64(3), "a": np.arange(2)})
    assert load_checkpoint(path).config == {"n": 3, "a": [0, 1]}


def test_a_member_outside_the_format_is_refused(tmp_path):
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, _model(), config={"v": 1})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("payload.npy", b"anything")
    with pytest.raises(CheckpointError, match="unexpected member 'payload.npy'"):
        load_checkpoint(path)
    raw = str(tmp_path / "raw.npz")
    save_checkpoint(raw, _model())
    with zipfile.ZipFile(raw, "a") as zf:
        zf.writestr("model/extra", b"not an array")  # np.load would hand back bytes
    with pytest.raises(CheckpointError, match="unexpected member 'model/extra'"):
        load_checkpoint(raw, _model(), strict=False)


def test_a_header_claiming_a_huge_array_is_refused_without_allocating_it(tmp_path):
    """A flipped digit in a shape: np.load would try to allocate terabytes (MemoryError)."""
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, _model())
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (10**12,)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("arrays/huge.npy", buf.getvalue() + b"\0" * 16)
    with pytest.raises(CheckpointError, match=r"'arrays/huge' declares shape \(1000000000000,\)"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------------------------
# Issue 22: temporaries of writers that died mid-save
# ----------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_dead_writers_are_removed_by_the_next_save_and_load(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".tmp-{dead}-0123abcd-c.npz"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / f".tmp-{os.getppid()}-89abcdef-c.npz"  # a live process: maybe writing
    live.write_bytes(b"being written")
    other = tmp_path / ".tmp-notes.txt"  # not a name nnscratch writes
    other.write_bytes(b"keep me")
    save_checkpoint(str(tmp_path / "c.npz"), _model())
    assert not stale.exists() and live.exists() and other.exists()
    stale.write_bytes(b"half a checkpoint")
    load_checkpoint(str(tmp_path / "c.npz"))
    assert not stale.exists() and live.exists() and other.exists()
    # a temporary nobody has written to for over an hour is stale whoever holds its pid
    old = time.time() - 2 * 3600
    os.utime(live, (old, old))
    assert remove_stale_temporaries(str(tmp_path)) == [str(live)]
    assert sorted(os.listdir(tmp_path)) == [".tmp-notes.txt", "c.npz"]


_SAVER = r"""
import sys
import numpy as np
from nnscratch.serialization import save_checkpoint
path, n = sys.argv[1], int(sys.argv[2])
versions = [np.full(n, v, dtype=np.float32) for v in (1.0, 2.0)]
print("ready", flush=True)
i = 0
while True:
    v = i % 2
    save_checkpoint(path, config={"version": v + 1}, arrays={"x": versions[v]})
    i += 1
"""


def _kill_during_saves(folder, kills: int, n: int = 3_000_000, seed: int = 0):
    """Start a process that saves a large checkpoint in a loop, SIGKILL it at a random moment,
    ``kills`` times. After each kill: the checkpoint loads as version 1 or 2 and at most one
    temporary file remains. Returns how many kills left a temporary behind (mid-save)."""
    import signal

    rng = np.random.default_rng(seed)
    path = str(folder / "c.npz")
    save_checkpoint(path, config={"version": 1}, arrays={"x": np.full(n, 1.0, np.float32)})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
         os.environ.get("PYTHONPATH", "")]))
    mid_save = 0
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, path, str(n)], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        temps = [f for f in os.listdir(folder) if f.startswith(".tmp-")]
        assert len(temps) <= 1, temps
        mid_save += len(temps)
        # the checkpoint is always a whole one, old or new (read without the loader's cleanup)
        with np.load(path, allow_pickle=False) as z:
            version = json.loads(str(z["__meta__"]))["config"]["version"]
            assert version in (1, 2)
            np.testing.assert_array_equal(z["arrays/x"], np.full(n, float(version), np.float32))
    ck = load_checkpoint(path)  # a load removes what the last kill left
    assert ck.config["version"] in (1, 2)
    assert [f for f in os.listdir(folder) if f.startswith(".tmp-")] == []
    return mid_save


def test_killed_saves_leave_a_whole_checkpoint_and_at_most_one_temporary(tmp_path):
    assert _kill_during_saves(tmp_path, kills=4) >= 1  # at least one kill landed mid-write


@pytest.mark.slow
def test_thirty_killed_saves_leave_a_whole_checkpoint_and_at_most_one_temporary(tmp_path):
    assert _kill_during_saves(tmp_path, kills=30, seed=1) >= 10
