"""Checkpoints: exact round trips, atomic writes, clear errors for corrupt or mismatched files."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import optim
from nnscratch.serialization import CheckpointError, load_checkpoint, save_checkpoint


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
    with pytest.raises(ValueError,
                       match=r"'0.weight' has shape \(16, 4\) in the model but \(8, 4\)"):
        load_checkpoint(path, other)
    with pytest.raises(KeyError, match="missing"):
        load_checkpoint(path, nn.Sequential(nn.Dense(4, 8)))


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
