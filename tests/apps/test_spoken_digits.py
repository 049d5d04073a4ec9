"""The spoken-digit app end to end on small real slices of FSDD (../shared/data/fsdd).

A few training steps lower the loss; the CLI writes summary.json, confusion.png, training.png and
a checkpoint that reloads to the same predictions; predict classifies a real file at another
sample rate (tests/apps/test_digits_predict.py does more); bad input (unreadable, empty, silent,
stereo with --mono-only, too long, a steady tone) gets a clear error.
The full-size trainings behind the accuracy figures are marked slow.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from apps import spoken_digits as sd
from apps.audio import fsdd
from apps.audio.features import FeatureConfig, Standardizer
from apps.audio.wav import resample
from apps.digits import train as digits_train
from apps.digits.data import DIGITS, load_dataset
from apps.digits.evaluate import confusion_matrix, error_distances
from apps.digits.model import (
    HParams,
    build_model,
    load_model,
    predict_proba,
    save_model,
    with_companions,
)
from apps.digits.train import train_model
from apps.digits.tta import pooled_log_proba
from conftest import SHARED_DATA

FSDD = os.path.join(SHARED_DATA, "fsdd")
pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD, "recordings")),
                                reason="FSDD not found in ../shared/data/fsdd")
TINY = ["--channels", "4", "8", "--dense", "16", "--hidden", "32", "--no-progress", "--no-cache",
        "--data", FSDD]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_ds():
    """Recordings with index < 8 of every speaker and digit: 480 files."""
    return load_dataset(FSDD, FeatureConfig(), limit_per_class=8, progress=False,
                        log=lambda *a: None)


# cnn_pool starts slower on 180 recordings (its pooled features start large: the first loss
# is 4.7 where ln 10 = 2.3), so it gets more filters, a smaller step and more epochs
SMALL_RUNS = {"cnn": dict(channels=(4, 8), epochs=5, lr=3e-3),
              "cnn_pool": dict(channels=(16, 32), epochs=8, lr=1e-3),
              "mlp": dict(channels=(4, 8), epochs=5, lr=3e-3)}


@pytest.mark.parametrize("model", list(SMALL_RUNS))
def test_a_few_training_steps_lower_the_loss(small_ds, model):
    train_idx, _ = fsdd.official_split(small_ds.recs)
    hp = HParams(model=model, dense=32, hidden=(64,), batch_size=32, dropout=0.1,
                 **SMALL_RUNS[model])
    norm = Standardizer(hp.norm).fit(small_ds.X[train_idx])
    _, history = train_model(hp, norm.transform(small_ds.X[train_idx]),
                             small_ds.digits[train_idx], 10, progress=False, log=None)
    losses = [h["loss"] for h in history]
    assert losses[-1] < 0.7 * losses[0], losses
    assert history[-1]["train_acc"] > 0.25  # chance: 0.1


def test_train_cli_writes_summary_png_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    rc = sd.main(["train", "--limit", "8", "--epochs", "3", "--lr", "3e-3", "--out", str(out),
                  *TINY])
    assert rc == 0
    text = capsys.readouterr().out
    assert "official split test accuracy" in text and "per-speaker accuracy" in text
    summary = json.loads((out / "summary.json").read_text())
    test = summary["test"]
    assert summary["task"] == "digit" and summary["model"] == "cnn" and summary["n_test"] == 300
    assert 0.0 <= test["accuracy"] <= 1.0 and len(test["per_speaker_accuracy"]) == 6
    assert np.array(test["confusion"]).sum() == 300 and len(test["confusion"]) == 10
    assert set(test["error_distance_percent"]) == {str(k) for k in range(1, 10)}
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]
    for name in ("confusion.png", "training.png"):
        assert (out / name).read_bytes()[:8] == PNG
    # the checkpoint reloads to the same predictions
    model, hp, cfg, norm, config = load_model(str(out / "model.npz"))
    assert config["classes"] == DIGITS and cfg == FeatureConfig()
    ds = load_dataset(FSDD, cfg, limit_per_class=5, progress=False, log=lambda *a: None)
    pred = predict_proba(model, hp, norm.transform(ds.X)).argmax(1)
    assert float((pred == ds.digits).mean()) == pytest.approx(test["accuracy"], abs=1e-4)

    # evaluate: the same accuracy from the checkpoint alone
    rc = sd.main(["evaluate", str(out / "model.npz"), "--limit", "8", "--no-progress", "--no-cache",
                  "--data", FSDD])
    assert rc == 0
    ev = json.loads((out / "evaluate.json").read_text())
    assert ev["accuracy"] == pytest.approx(test["accuracy"], abs=1e-4)

    # predict a real recording, resampled to 22.05 kHz with silence around it
    y, sr = sf.read(os.path.join(FSDD, "recordings", "3_theo_40.wav"))
    user = tmp_path / "my_three.wav"
    sf.write(user, np.concatenate([np.zeros(9000), resample(y, sr, 22050), np.zeros(15000)]), 22050)
    capsys.readouterr()
    rc = sd.main(["predict", str(user), "--checkpoint", str(out / "model.npz"), "--json"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{user}: digit ") and "p = " in lines[0]
    ranking = json.loads(lines[-1])[0]["ranking"]
    assert len(ranking) == 3 and all(c in DIGITS for c, _ in ranking)
    assert ranking[0][1] >= ranking[1][1] >= ranking[2][1]


def test_cnn_pool_reads_fixed_hop_features_and_any_number_of_frames(tmp_path, capsys):
    """cnn_pool: 'fixed' time mode unless asked otherwise, a checkpoint that reloads, and a
    network whose output does not depend on the number of frames it is given."""
    out = tmp_path / "pool"
    rc = sd.main(["train", "--model", "cnn_pool", "--limit", "8", "--epochs", "3", "--lr", "3e-3",
                  "--out", str(out), *TINY])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "cnn_pool"
    model, hp, cfg, norm, _ = load_model(str(out / "model.npz"))
    assert hp.model == "cnn_pool" and cfg.time_mode == "fixed"
    ds = load_dataset(FSDD, cfg, limit_per_class=5, progress=False, log=lambda *a: None)
    X = norm.transform(ds.X)
    pred = predict_proba(model, hp, X).argmax(1)
    assert float((pred == ds.digits).mean()) == pytest.approx(summary["test"]["accuracy"],
                                                              abs=1e-4)
    # the same words in a canvas twice as long (silence after them): same size of output, and
    # the max over time of a word followed by silence hardly moves
    silence = np.repeat(X.min(axis=2, keepdims=True), X.shape[2], axis=2)
    longer = predict_proba(model, hp, np.concatenate([X, silence], axis=2))
    assert longer.shape == (len(X), 10)
    assert float((longer.argmax(1) == pred).mean()) > 0.8
    # predict reads a recording through the checkpoint's own (fixed-hop) features
    capsys.readouterr()
    wav = os.path.join(FSDD, "recordings", "3_theo_40.wav")
    assert sd.main(["predict", wav, "--checkpoint", str(out / "model.npz"), "--json"]) == 0
    ranking = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]["ranking"]
    assert len(ranking) == 3 and all(c in DIGITS for c, _ in ranking)
    # with --time-mode stretch it stretches, as asked
    out2 = tmp_path / "pool_stretch"
    assert sd.main(["train", "--model", "cnn_pool", "--time-mode", "stretch", "--limit", "8",
                    "--epochs", "1", "--out", str(out2), *TINY]) == 0
    assert load_model(str(out2 / "model.npz"))[2].time_mode == "stretch"


def test_train_a_pair_of_front_ends_that_predict_pools(tmp_path, capsys, monkeypatch):
    """--scale db+pcen on the official split: one model per front end (model.npz on decibels,
    model_pcen.npz on PCEN, each with its own features); the test accuracy reported is the
    pair's, their log-probabilities averaged, which the two checkpoints reproduce; predict
    without --checkpoint pools the latest run's two models, as --checkpoint with both does."""
    monkeypatch.chdir(tmp_path)  # the run under ./runs/spoken_digits/, where predict looks
    out = tmp_path / "runs" / "spoken_digits" / "pair"
    assert sd.main(["train", "--scale", "db+pcen", "--limit", "8", "--epochs", "2", "--lr",
                    "3e-3", "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "[members] db alone" in text and "pcen alone" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scales"] == ["db", "pcen"]
    assert [m["scale"] for m in summary["members"]] == ["db", "pcen"]
    paths = [str(out / "model.npz"), str(out / "model_pcen.npz")]
    assert [m["checkpoint"] for m in summary["members"]] == paths
    members = [load_model(p) for p in paths]
    assert [cfg.scale for _, _, cfg, _, _ in members] == ["db", "pcen"]
    dss = [load_dataset(FSDD, cfg, limit_per_class=5, progress=False, log=lambda *a: None)
           for _, _, cfg, _, _ in members]  # recordings 0-4: the official test set
    alone = [float((predict_proba(m, hp, norm.transform(d.X)).argmax(1) == d.digits).mean())
             for (m, hp, _, norm, _), d in zip(members, dss)]
    ds = dss[0]
    assert alone == pytest.approx([m["test_accuracy"] for m in summary["members"]], abs=1e-4)
    pair = pooled_log_proba([m[:4] for m in members], ds.waveforms()).argmax(1)
    assert float((pair == ds.digits).mean()) == pytest.approx(summary["test"]["accuracy"],
                                                              abs=1e-4)
    assert with_companions(paths[0]) == paths
    (tmp_path / "single").mkdir()  # a run on one front end: its model.npz alone
    assert with_companions(str(tmp_path / "single" / "model.npz")) == \
        [str(tmp_path / "single" / "model.npz")]
    wav = os.path.join(FSDD, "recordings", "3_theo_40.wav")
    rankings = []
    for extra in ([], ["--checkpoint", *paths]):
        assert sd.main(["predict", wav, "--json", *extra]) == 0
        rankings.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0])
    assert rankings[0] == rankings[1]
    # a pair is trained on the official split only
    assert sd.main(["train", "--scale", "db+pcen", "--cv", "2", "--limit", "8",
                    "--out", str(tmp_path / "no"), *TINY]) == 2
    assert "official split only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sd.main(["train", "--scale", "db+db"])


def test_predict_bad_inputs_give_clear_errors(tmp_path, capsys, small_ds):
    hp = HParams(model="mlp", hidden=(8,), epochs=1)
    norm = Standardizer().fit(small_ds.X)
    model = build_model(hp, small_ds.cfg.shape, 10)
    ckpt = save_model(str(tmp_path / "m.npz"), model, hp, small_ds.cfg, norm, "digit", DIGITS)
    sr = 8000
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr)
    word, _ = sf.read(os.path.join(FSDD, "recordings", "7_jackson_32.wav"))
    cases = {
        "stereo.wav": (np.stack([word, word], 1), "stereo", ["--mono-only"]),
        "silent.wav": (np.zeros(sr), "silent", []),
        "empty.wav": (np.zeros(0), "no audio samples", []),
        "long.wav": (np.tile(tone, 11), "s long", []),
        "tone.wav": (tone, "no word stands out", []),
    }
    for name, (data, _, _) in cases.items():
        sf.write(tmp_path / name, data, sr)
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    cases["broken.wav"] = (None, "not a readable audio file", [])
    cases["missing.wav"] = (None, "no such file", [])
    for name, (_, pattern, extra) in cases.items():
        rc = sd.main(["predict", str(tmp_path / name), "--checkpoint", ckpt, *extra])
        err = capsys.readouterr().err
        assert rc == 2 and pattern in err and name in err, (name, err)
    # without --mono-only the stereo file is averaged to mono, with a note
    assert sd.main(["predict", str(tmp_path / "stereo.wav"), "--checkpoint", ckpt]) == 0
    assert "averaged to mono" in capsys.readouterr().err


def test_cli_argument_and_data_errors(tmp_path, monkeypatch, capsys):
    # bad values are argparse errors (exit 2); bad data and combinations are 'error: ...' and 2
    with pytest.raises(SystemExit):
        sd.main(["train", "--epochs", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        sd.main(["train", "--cv", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        sd.main(["train", "--model", "rnn"])
    capsys.readouterr()
    assert sd.main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
                    "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "NNSCRATCH_DATA_FSDD" in err, err
    assert sd.main(["speakers", "--split", "loso", "--out", str(tmp_path / "o2"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "speaker identification" in err, err
    monkeypatch.chdir(tmp_path)  # no runs/ here: predict without --checkpoint has nothing to use
    assert sd.main(["predict", "x.wav"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train" in err, err


def test_front_end_options_reach_the_feature_settings(tmp_path, capsys):
    """--trim-db (a number or none), --top-db and --fmin land in the FeatureConfig the features
    are computed with (and saved with, in the checkpoint); nonsense is an argparse error."""
    parser = sd.build_parser()
    default = digits_train.feature_config(parser.parse_args(["train"]))
    assert (default.trim_db, default.top_db, default.fmin) == (30.0, 80.0, 0.0)
    cfg = digits_train.feature_config(parser.parse_args(
        ["loso", "--trim-db", "none", "--top-db", "50", "--fmin", "125"]))
    assert (cfg.trim_db, cfg.top_db, cfg.fmin) == (None, 50.0, 125.0)
    cfg45 = digits_train.feature_config(parser.parse_args(["train", "--trim-db", "45"]))
    assert cfg45.trim_db == 45
    for bad in (["--trim-db", "0"], ["--trim-db", "loud"], ["--top-db", "-3"], ["--fmin", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", *bad])
    # values that parse but cannot work: one 'error:' line, exit 2, no run folder
    capsys.readouterr()
    for bad in (["--fmin", "4000"], ["--freq-pool", "30", "2"]):
        out = tmp_path / bad[0].strip("-")
        assert sd.main(["train", *bad, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and bad[1] in err, err
        assert not out.exists()
    assert sd.main(["loso", "--model", "cnn_pool", "--search-freq-pool", "2,2", "9,9",
                    "--out", str(tmp_path / "l"), "--no-progress"]) == 2
    assert "9,9" in capsys.readouterr().err and not (tmp_path / "l").exists()


def test_data_path_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(fsdd.ENV_VAR, FSDD)
    out = tmp_path / "env"
    rc = sd.main(["speakers", "--model", "mlp", "--limit", "6", "--epochs", "2", "--out", str(out),
                  "--no-progress", "--no-cache", "--hidden", "32"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "speaker" and summary["data"] == FSDD
    assert len(summary["test"]["confusion"]) == 6
    assert "error_distance_percent" not in summary["test"]


def test_loso_and_cv_on_a_tiny_slice(tmp_path):
    out = tmp_path / "loso"
    assert sd.main(["train", "--split", "loso", "--cv", "2", "--model", "mlp", "--limit", "6",
                    "--epochs", "1", "--out", str(out), *TINY]) == 0
    loso = json.loads((out / "summary.json").read_text())["loso"]
    vote = loso["cv_majority_vote"]
    assert vote["folds"] == 2 and len(vote["per_speaker_accuracy"]) == 6
    assert len(loso["per_speaker_accuracy"]) == 6
    assert loso["worst"] == min(loso["per_speaker_accuracy"].values())
    assert loso["mean"] == pytest.approx(np.mean(list(loso["per_speaker_accuracy"].values())),
                                         abs=1e-4)
    assert len(list(out.glob("model_without_*.npz"))) == 6
    out = tmp_path / "cv"
    assert sd.main(["train", "--cv", "2", "--model", "mlp", "--limit", "9", "--epochs", "1",
                    "--out", str(out), *TINY]) == 0
    cv = json.loads((out / "summary.json").read_text())["cv"]
    assert cv["folds"] == 2 and len(cv["val_acc"]) == 2 and 0 <= cv["test_majority_vote"] <= 1


def test_grid_search_on_a_tiny_slice(tmp_path, monkeypatch):
    monkeypatch.setattr(digits_train, "GRID", {"lr": [1e-3, 3e-3], "dropout": [0.1]})
    out = tmp_path / "grid"
    assert sd.main(["train", "--grid", "--cv", "2", "--model", "mlp", "--limit", "9",
                    "--epochs", "1", "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["grid"]["results"]) == 2
    assert summary["hparams"]["lr"] == summary["grid"]["best"]["lr"]


def test_error_distances_and_confusion():
    y_true = np.array([0, 1, 2, 3, 9])
    y_pred = np.array([0, 2, 0, 3, 0])
    assert confusion_matrix(y_true, y_pred, 10).sum() == 5
    d = error_distances(y_true, y_pred, 10)
    assert d["1"] == pytest.approx(100 / 3, abs=0.01) and d["2"] == pytest.approx(100 / 3, abs=0.01)
    assert d["9"] == pytest.approx(100 / 3, abs=0.01)


@pytest.mark.slow
def test_full_official_split_cnn_reaches_98_percent(tmp_path):
    """The acceptance figure (several minutes on 2 cores): CNN, official split, >= 98%."""
    out = tmp_path / "full"
    assert sd.main(["train", "--epochs", "20", "--out", str(out), "--no-progress",
                    "--data", FSDD]) == 0
    assert json.loads((out / "summary.json").read_text())["test"]["accuracy"] >= 0.98
