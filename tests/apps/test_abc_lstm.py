"""End to end on a small slice of the folk tunes: the loss falls, resume is exact, sampling writes
ABC that music21 parses and MIDI that mido opens, bad input gets clear errors."""
from __future__ import annotations

import json
import os
import shutil

import mido
import numpy as np
import pytest

import nnscratch as nn
from apps import abc_lstm
from apps.char_lm import MusicRNN, ModelConfig, Vocab, evaluate, sample
from conftest import SHARED_DATA

TUNES = os.path.join(SHARED_DATA, "folk-abc", "tunes.jsonl")
TINY = dict(embedding=16, hidden=32, layers=1, dropout=0.1, batch=8, seq=64, lr=1e-2,
            weight_decay=1e-5, preset="cpu", seed=0, clip=1.0, patience=50, lr_patience=50)


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory):
    """The first 300 tunes of tunes.jsonl, prepared (15 validation tunes)."""
    root = tmp_path_factory.mktemp("abc")
    with open(TUNES, encoding="utf-8") as f:
        lines = [next(f) for _ in range(300)]
    (root / "slice.jsonl").write_text("".join(lines), encoding="utf-8")
    abc_lstm.prepare(str(root / "slice.jsonl"), str(root / "data"), log=lambda *_: None)
    return root


def _trainer(run_dir, data_dir, hp=TINY):
    train_text, val_text, vocab = abc_lstm.load_prepared(str(data_dir))
    return abc_lstm.Trainer(str(run_dir), train_text, val_text, vocab, dict(hp), log=lambda *_: None)


def test_prepare_writes_split_and_vocab(slice_dir):
    data = slice_dir / "data"
    train = (data / "train.txt").read_text(encoding="utf-8")
    val = (data / "val.txt").read_text(encoding="utf-8")
    assert train.startswith("X:1\nM:") and "\n\nX:1\n" in train
    assert val.count("X:1\n") == 15  # lines 0, 20, ..., 280
    vocab = Vocab.load(str(data / "vocab.json"))
    assert vocab.itos[0] == "<unk>" and set(train) <= set(vocab.itos)


def test_training_lowers_the_loss(slice_dir, tmp_path):
    t = _trainer(tmp_path / "run", slice_dir / "data")
    before, _ = t.evaluate()
    assert before == pytest.approx(np.log(len(t.vocab)), rel=0.1)  # an untrained model is ~uniform
    t.run(max_steps=60, max_minutes=None, eval_every=30, progress=False)
    after, acc = t.evaluate()
    assert after < before - 1.0, (before, after)
    assert np.mean(t.losses[-10:]) < np.mean(t.losses[:10])
    for name in ("metrics.csv", "curves.png", "best.npz", "last.npz"):
        assert (tmp_path / "run" / name).exists()
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,train_loss") and len(rows) == 3


def test_resume_reproduces_the_next_losses(slice_dir, tmp_path):
    straight = _trainer(tmp_path / "a", slice_dir / "data")
    straight.run(max_steps=8, max_minutes=None, eval_every=4, progress=False)
    first = _trainer(tmp_path / "b", slice_dir / "data")
    first.run(max_steps=4, max_minutes=None, eval_every=4, progress=False)
    resumed = _trainer(tmp_path / "b", slice_dir / "data")
    resumed.restore(str(tmp_path / "b" / "last.npz"))
    assert resumed.step == 4
    resumed.run(max_steps=8, max_minutes=None, eval_every=4, progress=False)
    np.testing.assert_allclose(first.losses + resumed.losses, straight.losses, rtol=1e-6)


def test_cli_train_resume_and_time_limit(slice_dir, tmp_path):
    out = tmp_path / "cli"
    common = ["--data-dir", str(slice_dir / "data"), "--out", str(out), "--quiet",
              "--embedding", "16", "--hidden", "32", "--layers", "1", "--batch", "8", "--seq", "32"]
    assert abc_lstm.main(["train", "--steps", "6", "--eval-every", "3", *common]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["stop_reason"] == "steps"
    assert abc_lstm.main(["train", "--resume", str(out / "last.npz"), "--steps", "9",
                          "--eval-every", "3", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 9
    assert abc_lstm.main(["train", "--steps", "100000", "--max-minutes", "0.001", "--eval-every", "1000",
                          *common[:2], "--out", str(tmp_path / "timed"), *common[4:]]) == 0
    assert json.loads((tmp_path / "timed" / "summary.json").read_text())["stop_reason"] == "time limit"


def test_sampling_writes_parseable_abc_and_midi(tmp_path):
    """A small model that has memorised a few simple tunes writes valid ABC and MIDI."""
    tunes = ["X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|\n",
             "X:1\nM:6/8\nL:1/8\nK:D\nDFA dAF|GBd gdB|AFA dAF|GEF D3|\n",
             "X:1\nM:3/4\nL:1/8\nK:Am\nA2 B2 c2|e4 d2|c2 B2 A2|E6|\n"] * 4
    (tmp_path / "simple.abc").write_text("\n".join(tunes))
    data = tmp_path / "data"
    abc_lstm.prepare(str(tmp_path / "simple.abc"), str(data), log=lambda *_: None)
    hp = dict(TINY, embedding=16, hidden=64, batch=16, seq=48, lr=1e-2, dropout=0.0)
    t = _trainer(tmp_path / "run", data, hp)
    t.run(max_steps=250, max_minutes=None, eval_every=250, progress=False)
    report = abc_lstm.sample_tunes(str(tmp_path / "run" / "best.npz"), str(tmp_path / "s"), n=4,
                                   temperature=0.5, prime="X:1\n", seed=3, log=lambda *_: None)
    text = (tmp_path / "s" / "samples.abc").read_text()
    assert text.count("X:1") == 4
    assert report["valid_share"] >= 0.5, text
    assert report["midi"], text
    for path in report["midi"]:
        midi = mido.MidiFile(path)
        assert sum(1 for tr in midi.tracks for m in tr if m.type == "note_on" and m.velocity > 0) >= 8


def test_prime_with_unseen_characters_warns(slice_dir):
    vocab = Vocab.load(str(slice_dir / "data" / "vocab.json"))
    model = MusicRNN(ModelConfig(len(vocab), 8, 16, 1, 0.0))
    with pytest.warns(UserWarning, match="never saw"):
        out = sample(model, vocab, "X:1\n\u00e9\u00e9", n=2, max_chars=5)
    assert len(out) == 2 and all(o.startswith("X:1\n") for o in out)


def test_bad_data_gives_clear_errors(tmp_path, capsys):
    (tmp_path / "empty.abc").write_text("")
    (tmp_path / "prose.abc").write_text("Dear reader, this is no tune.\n")
    (tmp_path / "latin1.abc").write_bytes(b"X:1\nT:Caf\xe9\nK:G\nGAB|\n")
    for name, message in (("empty.abc", "empty"), ("prose.abc", "no ABC tune found"),
                          ("latin1.abc", "not UTF-8")):
        rc = abc_lstm.main(["prepare", "--data", str(tmp_path / name), "--out", str(tmp_path / "o")])
        assert rc == 2
        assert message in capsys.readouterr().err
    rc = abc_lstm.main(["sample", "--checkpoint", str(tmp_path / "missing.npz")])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_help_works(capsys):
    with pytest.raises(SystemExit) as e:
        abc_lstm.main(["--help"])
    assert e.value.code == 0
    assert "main job" in capsys.readouterr().out


def test_main_job_trains_then_samples_into_one_run_folder(slice_dir, tmp_path):
    out = tmp_path / "main"
    rc = abc_lstm.main(["run", "--data-dir", str(slice_dir / "data"), "--out", str(out), "--quiet",
                        "--max-minutes", "0.05", "--eval-every", "5", "--embedding", "16",
                        "--hidden", "32", "--layers", "1", "--batch", "8", "--seq", "32"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] in ("time limit", "steps")
    assert summary["samples"]["n"] == 3
    assert (out / "samples.abc").read_text().count("X:1") == 3
    assert {"metrics.csv", "curves.png", "best.npz", "last.npz"} <= set(os.listdir(out))
