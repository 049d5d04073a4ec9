"""Augmentations wired into training, and the `loso` command, on tiny real slices of FSDD.

The held-out speaker of a leave-one-speaker-out fold must never be seen while the settings are
chosen: every call that trains or scores during the inner cross-validation is recorded and
checked. The figures themselves come from full runs (docs/digits.md), not from these tests.
"""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from apps import spoken_digits as sd
from apps.audio import fsdd
from apps.audio.features import FeatureConfig
from apps.digits import loso as loso_mod
from apps.digits.augment import AUGMENTS, Augmenter
from apps.digits.data import load_dataset
from apps.digits.evaluate import predict_files
from apps.digits.model import HParams, fit_normaliser, load_model, prepare
from apps.digits.train import make_augmenter, train_model
from conftest import SHARED_DATA

FSDD = os.path.join(SHARED_DATA, "fsdd")
pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD, "recordings")),
                                reason="FSDD not found in ../shared/data/fsdd")
TINY = ["--model", "mlp", "--hidden", "32", "--no-progress", "--no-cache", "--data", FSDD]


@pytest.fixture(scope="module")
def small_ds():
    return load_dataset(FSDD, FeatureConfig(), limit_per_class=6, progress=False,
                        log=lambda *a: None)


def test_training_with_every_augmentation_lowers_the_loss(small_ds):
    hp = HParams(model="mlp", hidden=(64,), epochs=6, lr=3e-3, batch_size=32, dropout=0.1,
                 augment=AUGMENTS, cmvn="utterance")
    idx = np.arange(len(small_ds.recs))
    norm = fit_normaliser(hp, small_ds.X)
    aug = make_augmenter(small_ds, hp, norm, idx)
    assert isinstance(aug, Augmenter) and aug.per_example and len(aug.signals) == len(idx)
    _, hist = train_model(hp, prepare(hp, norm, small_ds.X), small_ds.digits, 10,
                          progress=False, log=None, augmenter=aug)
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"], [h["loss"] for h in hist]
    assert make_augmenter(small_ds, HParams(augment=("shift",)), norm, idx) is None


def test_train_cli_with_augmentations_and_utterance_cmvn(tmp_path, capsys):
    out = tmp_path / "aug"
    rc = sd.main(["train", "--limit", "6", "--epochs", "2", "--out", str(out), "--augment",
                  ",".join(AUGMENTS), "--cmvn", "utterance", *TINY])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["augment"]) == set(AUGMENTS) | {"p_apply"}
    assert summary["hparams"]["augment"] == list(AUGMENTS) and summary["cmvn"] == "utterance"
    model, hp, cfg, norm, _ = load_model(str(out / "model.npz"))
    assert hp.cmvn == "utterance" and hp.augment == AUGMENTS
    # evaluate applies the same CMVN: the same test accuracy from the checkpoint alone
    rc = sd.main(["evaluate", str(out / "model.npz"), "--limit", "6", "--no-progress",
                  "--no-cache", "--data", FSDD])
    assert rc == 0
    ev = json.loads((out / "evaluate.json").read_text())
    assert ev["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-4)
    with pytest.raises(SystemExit):
        sd.main(["train", "--augment", "speed,echo"])
    assert "unknown augmentation(s) echo" in capsys.readouterr().err


def test_loso_never_looks_at_the_held_out_speaker_while_choosing(tmp_path, monkeypatch):
    calls = []
    real = loso_mod.fit_and_test

    def spy(ds, task, hp, train_idx, test_idx, *a, **k):
        calls.append((k.get("desc", ""), set(ds.speakers[train_idx]), set(ds.speakers[test_idx]),
                      (tuple(hp.augment), hp.cmvn)))
        return real(ds, task, hp, train_idx, test_idx, *a, **k)

    monkeypatch.setattr(loso_mod, "fit_and_test", spy)
    out = tmp_path / "loso"
    rc = sd.main(["loso", "--limit", "2", "--epochs", "1", "--val-fraction", "0.5",
                  "--search-augment", "shift", "shift,specaugment", "--search-cmvn", "dataset",
                  "utterance", "--inner-folds", "2", "--held-out", "george", "theo",
                  "--out", str(out), *TINY])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    names = fsdd.speaker_names(fsdd.list_recordings(FSDD))
    assert [f["held_out"] for f in summary["folds"]] == ["george", "theo"]
    assert summary["complete"] is True
    assert len(calls) == 2 * (4 * 2 + 1)  # per fold: 4 candidates x 2 inner folds, 1 final fit
    for f, fold_calls in zip(summary["folds"], (calls[:9], calls[9:])):
        held = names.index(f["held_out"])
        inner, final = fold_calls[:-1], fold_calls[-1]
        for _, tr, te, _ in inner:
            assert held not in tr and held not in te
        assert final[2] == {held} and held not in final[1]
        assert (list(final[3][0]), final[3][1]) == (f["chosen"]["augment"], f["chosen"]["cmvn"])
        assert len(f["inner_cv"]) == 4
        for row in f["inner_cv"]:
            assert set(row["per_speaker_accuracy"]) == set(names) - {f["held_out"]}
        best = max(f["inner_cv"], key=lambda r: r["mean"])
        assert f["chosen"] == {"augment": best["augment"], "cmvn": best["cmvn"],
                               "freq_pool": [2, 2], "scales": ["db"]}
        assert (out / f"confusion_without_{f['held_out']}.png").exists()
        assert np.array(f["confusion"]).sum() == f["n_test"] == 20
    accs = summary["per_speaker_accuracy"]
    assert summary["mean"] == pytest.approx(np.mean(list(accs.values())), abs=1e-4)
    assert summary["worst"] == min(accs.values()) and (out / "confusion.png").exists()
    assert np.array(summary["confusion"]).sum() == 40


def test_loso_with_one_candidate_skips_the_inner_cv_and_refuses_unknown_speakers(tmp_path,
                                                                               capsys):
    out = tmp_path / "one"
    assert sd.main(["loso", "--limit", "2", "--epochs", "1", "--held-out", "lucas",
                    "--out", str(out), *TINY]) == 0
    fold = json.loads((out / "summary.json").read_text())["folds"][0]
    assert fold["inner_cv"] == [] and fold["chosen"] == {"augment": ["shift"], "cmvn": "dataset",
                                                         "freq_pool": [2, 2], "scales": ["db"]}
    capsys.readouterr()
    assert sd.main(["loso", "--held-out", "nobody", "--out", str(tmp_path / "x"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "nobody" in err and "not an FSDD speaker" in err
    assert not (tmp_path / "x").exists()


def test_loso_chooses_the_frequency_pooling_by_inner_cv(tmp_path, capsys):
    """--search-freq-pool: one inner-CV row per pooling, the best one retrained and saved;
    --ensemble 2 --tta: two final models, both saved, the fold scored by their pooled answer
    beside the first model's own."""
    out = tmp_path / "pool"
    assert sd.main(["loso", "--limit", "2", "--epochs", "1", "--val-fraction", "0.5",
                    "--model", "cnn_pool", "--channels", "4", "4", "--dense", "8",
                    "--search-freq-pool", "2,2", "3,2", "--inner-folds", "2",
                    "--ensemble", "2", "--tta",
                    "--held-out", "george", "--out", str(out), "--no-progress", "--no-cache",
                    "--data", FSDD]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ensemble"] == 2 and summary["tta_speeds"] == [0.9, 0.95, 1.0, 1.05, 1.1]
    fold = summary["folds"][0]
    assert 0 <= fold["single_model_accuracy"] <= 1 and np.array(fold["confusion"]).sum() == 20
    assert np.trace(np.array(fold["confusion"])) / 20 == pytest.approx(fold["accuracy"])
    assert (out / "model_without_george_member2.npz").exists()
    assert [r["freq_pool"] for r in fold["inner_cv"]] == [[2, 2], [3, 2]]
    best = max(fold["inner_cv"], key=lambda r: r["mean"])
    assert fold["chosen"]["freq_pool"] == best["freq_pool"]
    _, hp, *_ = load_model(str(out / "model_without_george.npz"))
    assert list(hp.freq_pool) == best["freq_pool"]
    assert "freq_pool=3,2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        sd.main(["loso", "--search-freq-pool", "3"])


def test_loso_chooses_the_front_end_and_averages_a_model_per_scale(tmp_path, monkeypatch,
                                                                   capsys):
    """--search-scale db pcen db+pcen: the inner CV trains one model per scale and speaker
    group (the db+pcen row averages those same models' log-probabilities), never on or for
    the held-out speaker; a chosen pair is retrained as one model per scale, both saved with
    their own features, and the fold scored by their pooled answer."""
    calls = []
    real = loso_mod.fit_and_test

    def spy(ds, task, hp, train_idx, test_idx, *a, **k):
        calls.append((ds.cfg.scale, set(ds.speakers[train_idx]), set(ds.speakers[test_idx])))
        return real(ds, task, hp, train_idx, test_idx, *a, **k)

    monkeypatch.setattr(loso_mod, "fit_and_test", spy)
    out = tmp_path / "scales"
    assert sd.main(["loso", "--limit", "2", "--epochs", "2", "--val-fraction", "0.5",
                    "--search-scale", "db", "pcen", "db+pcen", "--inner-folds", "2",
                    "--held-out", "jackson", "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    fold = summary["folds"][0]
    held = fsdd.speaker_names(fsdd.list_recordings(FSDD)).index("jackson")
    inner = calls[:4]
    assert [c[0] for c in inner] == ["db", "db", "pcen", "pcen"]
    assert all(held not in tr and held not in te for _, tr, te in inner)
    assert [r["scales"] for r in fold["inner_cv"]] == [["db"], ["pcen"], ["db", "pcen"]]
    best = max(fold["inner_cv"], key=lambda r: r["mean"])
    assert fold["chosen"]["scales"] == best["scales"]
    final = calls[4:]
    assert [c[0] for c in final] == best["scales"]
    assert all(c[2] == {held} for c in final)
    assert summary["feature_scales"] == ["db", "pcen"]
    if len(best["scales"]) == 2:
        _, _, cfg, _, _ = load_model(str(out / "model_without_jackson_pcen.npz"))
        assert cfg.scale == "pcen"
    _, _, cfg, _, _ = load_model(str(out / "model_without_jackson.npz"))
    assert cfg.scale == best["scales"][0]
    assert "scale=db+pcen" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        sd.main(["loso", "--search-scale", "db+db"])
    assert "each once" in capsys.readouterr().err


def test_inner_cv_scores_a_pair_of_front_ends_by_their_averaged_log_probabilities(monkeypatch):
    """Two speakers (one group each), two classes: each scale's model is right on half of
    each speaker's words, their averaged log-probabilities on three of four."""
    proba = {"db": np.array([[.9, .1], [.9, .1], [.6, .4], [.6, .4]]),
             "pcen": np.array([[.4, .6], [.2, .8], [.45, .55], [.3, .7]])}

    def fake_fit(ds, task, hp, train_idx, test_idx, *a, **k):
        assert not set(train_idx) & set(test_idx)
        return SimpleNamespace(extra={"proba": proba[ds.cfg.scale][test_idx]})

    def dataset(scale):
        return SimpleNamespace(cfg=SimpleNamespace(scale=scale), recs=[0, 1, 2, 3],
                               speakers=np.array([0, 0, 1, 1]), speaker_names=["a", "b"],
                               digits=np.array([0, 1, 0, 1]), class_names=lambda t: ["0", "1"])

    monkeypatch.setattr(loso_mod, "fit_and_test", fake_fit)
    args = SimpleNamespace(val_fraction=0.1, seed=0, progress=False)
    rows = loso_mod.inner_cv({"db": dataset("db"), "pcen": dataset("pcen")}, HParams(),
                             [("db",), ("pcen",), ("db", "pcen")], np.arange(4), 2, args,
                             log=lambda *a: None)
    assert [r["per_speaker_accuracy"] for r in rows] == [
        {"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 1.0}]
    assert [r["mean"] for r in rows] == [0.5, 0.5, 0.75]


def test_a_front_end_pair_is_saved_as_two_checkpoints_that_predict_pools(tmp_path):
    """--search-scale db+pcen alone: no inner CV; the fold's two models are saved with their
    own features, and `predict` given both pools them (each hears the word through its own
    front end)."""
    out = tmp_path / "pair"
    assert sd.main(["loso", "--limit", "2", "--epochs", "1", "--search-scale", "db+pcen",
                    "--held-out", "theo", "--out", str(out), *TINY]) == 0
    fold = json.loads((out / "summary.json").read_text())["folds"][0]
    assert fold["inner_cv"] == [] and fold["chosen"]["scales"] == ["db", "pcen"]
    ckpts = [str(out / "model_without_theo.npz"), str(out / "model_without_theo_pcen.npz")]
    assert [load_model(c)[2].scale for c in ckpts] == ["db", "pcen"]
    wav = sorted(r.path for r in fsdd.list_recordings(FSDD) if r.speaker == "theo")[0]
    alone = [predict_files([wav], c, top=10)[0][0][1] for c in ckpts]
    pooled = dict(predict_files([wav], ckpts, top=10)[0][0][1])
    p = np.array([[dict(a)[k] for k in sorted(pooled)] for a in alone])
    geo = np.exp(np.log(p).mean(0))
    assert np.allclose([pooled[k] for k in sorted(pooled)], geo / geo.sum(), atol=1e-5)
