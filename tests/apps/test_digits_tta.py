"""Test-time augmentation and ensembles of digit classifiers (apps/digits/tta.py), and the
`predict --tta` / several `--checkpoint` paths, on a few real FSDD recordings."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from apps import spoken_digits as sd
from apps.audio.features import FeatureConfig, Standardizer
from apps.digits.data import DIGITS, load_dataset
from apps.digits.model import HParams, build_model, predict_proba, prepare, save_model
from apps.digits.tta import TTA_SPEEDS, pooled_log_proba, speed_views
from conftest import SHARED_DATA

FSDD = os.path.join(SHARED_DATA, "fsdd")
pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD, "recordings")),
                                reason="FSDD not found in ../shared/data/fsdd")


@pytest.fixture(scope="module")
def fixed_ds():
    cfg = FeatureConfig(time_mode="fixed")
    return load_dataset(FSDD, cfg, limit_per_class=2, progress=False, log=lambda *a: None)


def _member(ds, seed, freq_pool=(2, 2)):
    hp = HParams(model="cnn_pool", channels=(4, 4), dense=8, freq_pool=freq_pool)
    nn_rng = np.random.default_rng(seed)
    model = build_model(hp, ds.cfg.shape, 10)
    for p in model.parameters():  # distinct members: fresh random weights per seed
        p.data[...] = nn_rng.normal(0, 0.3, p.data.shape).astype(p.data.dtype)
    return model, hp, ds.cfg, Standardizer().fit(ds.X)


def test_speed_views_at_speed_one_are_the_training_features(fixed_ds):
    sig = fixed_ds.waveforms([0, 7])
    views = speed_views(sig[0], fixed_ds.cfg)
    assert views.shape == (len(TTA_SPEEDS),) + fixed_ds.cfg.shape
    np.testing.assert_array_equal(views[TTA_SPEEDS.index(1.0)], fixed_ds.X[0])
    # a faster word (fixed hop, silence around it) fills fewer frames above the floor
    floor = views.min()
    voiced = (views > floor + 1.0).any(axis=1).sum(axis=1)   # frames with any band above floor
    assert voiced[TTA_SPEEDS.index(1.1)] < voiced[TTA_SPEEDS.index(1.0)] < \
        voiced[TTA_SPEEDS.index(0.9)]


def test_pooled_log_proba_is_the_mean_of_the_members_and_views(fixed_ds):
    a, b = _member(fixed_ds, 0), _member(fixed_ds, 1, freq_pool=(3, 2))
    idx = np.arange(6)
    sig = fixed_ds.waveforms(idx)
    la = np.log(predict_proba(a[0], a[1], prepare(a[1], a[3], fixed_ds.X[idx])))
    lb = np.log(predict_proba(b[0], b[1], prepare(b[1], b[3], fixed_ds.X[idx])))
    one = pooled_log_proba([a], sig)
    np.testing.assert_allclose(one, la, atol=1e-6)
    two = pooled_log_proba([a, b], sig, images=[fixed_ds.X[idx], None])
    expect = (la + lb) / 2
    expect -= np.log(np.exp(expect).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(two, expect, atol=1e-6)
    np.testing.assert_allclose(np.exp(two).sum(axis=1), 1.0, atol=1e-9)
    # with the speeds: the mean over every (member, speed) of the log-probabilities
    views = [np.stack([speed_views(y, a[2], (s,))[0] for y in sig]) for s in TTA_SPEEDS]
    logs = [np.log(predict_proba(m[0], m[1], prepare(m[1], m[3], X))) for m in (a, b)
            for X in views]
    expect = np.mean(logs, axis=0)
    expect -= np.log(np.exp(expect).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(pooled_log_proba([a, b], sig, tta=True), expect, atol=1e-5)


def test_predict_with_an_ensemble_and_tta(tmp_path, fixed_ds, capsys):
    paths = []
    for seed in (0, 1):
        model, hp, cfg, norm = _member(fixed_ds, seed)
        paths.append(save_model(str(tmp_path / f"m{seed}.npz"), model, hp, cfg, norm, "digit",
                                DIGITS))
    wav = os.path.join(FSDD, "recordings", "3_theo_40.wav")
    capsys.readouterr()
    assert sd.main(["predict", wav, "--checkpoint", *paths, "--tta", "--json"]) == 0
    ranking = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]["ranking"]
    assert len(ranking) == 3 and all(c in DIGITS for c, _ in ranking)
    # a speaker model cannot join a digit ensemble: one clear error, exit 2
    model, hp, cfg, norm = _member(fixed_ds, 2)
    spk = save_model(str(tmp_path / "spk.npz"), model, hp, cfg, norm, "speaker",
                     [f"s{i}" for i in range(10)])
    assert sd.main(["predict", wav, "--checkpoint", paths[0], spk]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "spk.npz" in err and "ensemble" in err
