"""Fuzzing the checkpoint loader (issue 22): damaged archives, metadata of every JSON shape and
foreign members end in a CheckpointError, never another exception; a damaged file that loads
holds exactly what was saved; loading changes nothing on the disk."""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnscratch as nn
from fuzzing import budgets, fuzz_settings, mutated, snapshot
from nnscratch import optim
from nnscratch.serialization import CheckpointError, load_checkpoint, save_checkpoint


def _model():
    nn.manual_seed(0)
    return nn.Sequential(nn.Dense(4, 8), nn.Tanh(), nn.Dense(8, 3))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small model and AdamW state after one step, with config, extra and arrays: its bytes
    and what it holds."""
    model = _model()
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    loss = nn.SoftmaxCrossEntropyLoss()
    loss(model(np.ones((2, 4), np.float32)), np.array([0, 2]))
    model.backward(loss.backward())
    opt.step()
    path = str(tmp_path_factory.mktemp("ckpt") / "c.npz")
    save_checkpoint(path, model, opt, config={"sizes": [4, 8, 3], "name": "x"},
                    extra={"step": 1, "history": [1.5, 1.25]}, arrays={"note": np.arange(5)})
    with open(path, "rb") as f:
        data = f.read()
    return {"bytes": data, "model": model.state_dict(), "ck": load_checkpoint(path)}


def _load_everything(path):
    """Load as an app does: the metadata alone, then into a model and an optimizer."""
    ck = load_checkpoint(path)
    model = _model()
    opt = optim.AdamW(model.parameters())
    load_checkpoint(path, model, opt)
    return ck, model


def _check_refused_or_unchanged(path, saved):
    before = snapshot(os.path.dirname(path))
    try:
        ck, model = _load_everything(path)
    except CheckpointError:
        pass
    else:  # the zip's checksums catch damaged data: whatever loads is what was saved
        assert ck.config == saved["ck"].config and ck.extra == saved["ck"].extra
        for name, arr in model.state_dict().items():
            np.testing.assert_array_equal(arr, saved["model"][name])
        np.testing.assert_array_equal(ck.arrays["note"], saved["ck"].arrays["note"])
    assert snapshot(os.path.dirname(path)) == before


@budgets(ci=300, slow=6000)
def test_damaged_checkpoints_are_refused_or_load_unchanged(saved, tmp_path, budget):
    @fuzz_settings(budget)
    @given(data=mutated([saved["bytes"]]))
    def check(data):
        path = os.path.join(tempfile.mkdtemp(dir=tmp_path), "c.npz")
        with open(path, "wb") as f:
            f.write(data)
        _check_refused_or_unchanged(path, saved)

    check()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=3),
    max_leaves=8)
FIELDS = ["format", "version", "config", "extra", "optimizer"]


@st.composite
def metadata(draw, good: dict):
    """The saved metadata with some fields replaced by, or the whole replaced by, any JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    meta = dict(good)
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        if name == "optimizer" and draw(st.booleans()):
            opt = dict(good["optimizer"])
            opt[draw(st.sampled_from(["type", "hyper", "step"]))] = draw(JSON)
            meta[name] = opt
        elif draw(st.integers(0, 5)) == 0:
            meta.pop(name, None)
        else:
            meta[name] = draw(JSON)
    return meta


@budgets(ci=150, slow=5000)
def test_metadata_of_any_json_shape_is_refused_or_loads(saved, tmp_path, budget):
    path = os.path.join(tmp_path, "c.npz")
    with open(path, "wb") as f:
        f.write(saved["bytes"])
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    good = json.loads(str(members.pop("__meta__")))

    @fuzz_settings(budget)
    @given(meta=metadata(good))
    def check(meta):
        path = os.path.join(tempfile.mkdtemp(dir=tmp_path), "c.npz")
        np.savez(path, __meta__=np.array(json.dumps(meta)), **members)
        before = snapshot(path)
        try:
            _load_everything(path)
        except CheckpointError:
            pass
        assert snapshot(path) == before

    check()


MEMBER_NAMES = st.one_of(
    st.sampled_from(["model/0.weight", "model/0.bias", "model/2.weight", "optim/m.0",
                     "optim/v.3", "optim/m", "arrays/note", "__meta__", "model/", "stray",
                     "model/0.weight/extra", "optim/x.99"]),
    st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s))
ARRAYS = st.one_of(
    st.builds(lambda shape, v: np.full(shape, v, np.float32),
              st.lists(st.integers(0, 9), max_size=3).map(tuple), st.floats(-2, 2)),
    st.sampled_from([np.array("text"), np.array([b"bytes"]), np.zeros((8, 4), np.int64),
                     np.array(True), np.zeros(3, np.complex64)]))


@budgets(ci=100, slow=4000)
def test_archives_with_any_members_are_refused_or_load(saved, tmp_path, budget):
    """Members renamed, added, dropped or replaced by arrays of any shape and dtype."""
    path = os.path.join(tmp_path, "c.npz")
    with open(path, "wb") as f:
        f.write(saved["bytes"])
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}

    @fuzz_settings(budget)
    @given(drop=st.lists(st.sampled_from(sorted(members)), max_size=2),
           add=st.dictionaries(MEMBER_NAMES, ARRAYS, max_size=3))
    def check(drop, add):
        entries = {k: v for k, v in members.items() if k not in drop}
        entries.update(add)
        path = os.path.join(tempfile.mkdtemp(dir=tmp_path), "c.npz")
        try:
            np.savez(path, **entries)
        except (OSError, ValueError):
            return  # names NumPy itself cannot write
        before = snapshot(path)
        try:
            _load_everything(path)
        except CheckpointError:
            pass
        assert snapshot(path) == before

    check()
