"""End to end on a small slice of the folk tunes: the loss falls, resume is exact, sampling writes
ABC that music21 parses and MIDI that mido opens, bad input gets clear errors."""
from __future__ import annotations

import io
import json
import os
import time

import mido
import numpy as np
import pytest

from apps import abc_lstm
from apps.abc_tunes.data import StreamSampler, Vocab, load_prepared, prepare
from apps.abc_tunes.model import ModelConfig, MusicRNN
from apps.abc_tunes.sample import sample, sample_tunes
from apps.abc_tunes.train import Progress, Trainer, bar_position, hyperparameters
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
    prepare(str(root / "slice.jsonl"), str(root / "data"), log=lambda *_: None)
    return root


def _trainer(run_dir, data_dir, hp=TINY):
    train_text, val_text, vocab = load_prepared(str(data_dir))
    return Trainer(str(run_dir), train_text, val_text, vocab, dict(hp), log=lambda *_: None)


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


def test_stateful_training_carries_the_state_and_resumes_exactly(slice_dir, tmp_path):
    hp = dict(TINY, stateful=True)
    straight = _trainer(tmp_path / "a", slice_dir / "data", hp)
    straight.run(max_steps=8, max_minutes=None, eval_every=4, progress=False)
    assert straight.carry is not None and straight.carry[0].shape[1] == hp["batch"]
    first = _trainer(tmp_path / "b", slice_dir / "data", hp)
    first.run(max_steps=4, max_minutes=None, eval_every=4, progress=False)
    resumed = _trainer(tmp_path / "b", slice_dir / "data", hp)
    resumed.restore(str(tmp_path / "b" / "last.npz"))
    np.testing.assert_array_equal(resumed.carry[0], first.carry[0])
    resumed.run(max_steps=8, max_minutes=None, eval_every=4, progress=False)
    np.testing.assert_allclose(first.losses + resumed.losses, straight.losses, rtol=1e-6)


def test_stream_sampler_reads_in_order_and_restarts_rows_at_the_end():
    ids = np.arange(100, dtype=np.int32)
    s = StreamSampler(ids, batch=3, seq=10, seed=0)
    x1, y1, fresh1 = s.next()
    x2, _, fresh2 = s.next()
    np.testing.assert_array_equal(y1, x1 + 1)                 # targets are the next characters
    kept = ~fresh2
    np.testing.assert_array_equal(x2[kept, 0], x1[kept, -1] + 1)   # each row goes on in order
    for _ in range(20):
        x, _, fresh = s.next()
        assert x.max() < 100 and x.shape == (3, 10)
    assert fresh1.dtype == bool


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
    assert abc_lstm.main(["train", "--steps", "100000", "--max-minutes", "0.001",
                          "--eval-every", "1000", *common[:2], "--out", str(tmp_path / "timed"),
                          *common[4:]]) == 0
    timed = json.loads((tmp_path / "timed" / "summary.json").read_text())
    assert timed["stop_reason"] == "time limit"


def test_sampling_writes_parseable_abc_and_midi(tmp_path):
    """A small model that has memorised a few simple tunes writes valid ABC and MIDI."""
    tunes = ["X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|\n",
             "X:1\nM:6/8\nL:1/8\nK:D\nDFA dAF|GBd gdB|AFA dAF|GEF D3|\n",
             "X:1\nM:3/4\nL:1/8\nK:Am\nA2 B2 c2|e4 d2|c2 B2 A2|E6|\n"] * 4
    (tmp_path / "simple.abc").write_text("\n".join(tunes))
    data = tmp_path / "data"
    prepare(str(tmp_path / "simple.abc"), str(data), log=lambda *_: None)
    hp = dict(TINY, embedding=16, hidden=64, batch=16, seq=48, lr=1e-2, dropout=0.0)
    t = _trainer(tmp_path / "run", data, hp)
    t.run(max_steps=250, max_minutes=None, eval_every=250, progress=False)
    report = sample_tunes(str(tmp_path / "run" / "best.npz"), str(tmp_path / "s"), n=4,
                          temperature=0.5, prime="X:1\n", seed=3, log=lambda *_: None)
    text = (tmp_path / "s" / "samples.abc").read_text()
    assert text.count("X:1") == 4
    assert report["valid_share"] >= 0.5, text
    assert report["midi"], text
    for path in report["midi"]:
        midi = mido.MidiFile(path)
        notes = sum(1 for tr in midi.tracks for m in tr if m.type == "note_on" and m.velocity > 0)
        assert notes >= 8


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
        rc = abc_lstm.main(["prepare", "--data", str(tmp_path / name),
                            "--out", str(tmp_path / "o")])
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


def test_presets_choose_their_schedule_and_flags_override_them():
    """main decays the lr linearly to 0, the other presets by a cosine; --schedule and
    --forget-bias win over the preset, and the trainer builds what the settings say."""
    parser = abc_lstm.build_parser()
    hp = hyperparameters(parser.parse_args(["train", "--preset", "main"]))
    assert hp["schedule"] == "linear" and "forget_bias" not in hp
    assert hyperparameters(parser.parse_args(["train", "--preset", "cpu"]))["schedule"] == "cosine"
    hp = hyperparameters(parser.parse_args(["train", "--schedule", "cosine", "--forget-bias", "1"]))
    assert hp["schedule"] == "cosine" and hp["forget_bias"] == 1.0
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--forget-bias", "nan"])


def test_linear_schedule_reaches_zero_at_the_end_of_the_steps(slice_dir, tmp_path):
    t = _trainer(tmp_path / "run", slice_dir / "data",
                 dict(TINY, schedule="linear", warmup=2, forget_bias=1.0))
    H = TINY["hidden"]
    b = t.model.lstm.bias_l0.data
    assert np.all(b[H:2 * H] > 1.0 - 1.0 / np.sqrt(H) - 1e-6)   # forget bias 1 + U(+-1/sqrt H)
    t.run(max_steps=10, max_minutes=None, eval_every=10, progress=False)
    assert t.opt.lr == pytest.approx(TINY["lr"] * 0.1)           # set before the 10th step
    assert t.cosine.shape == "linear" and t.cosine.final_ratio == 0.0


def test_progress_counts_towards_the_time_budget():
    """With --max-minutes the bar stands at the larger share done (time or steps) of the budget,
    so its ETA is the budget's remaining time, not that of the main job's 100,000-step cap."""
    assert bar_position(step=40, elapsed_s=999.0, max_steps=3000) == 40  # no budget: steps
    budget = 15 * 60.0
    at = bar_position(step=300, elapsed_s=300.0, max_steps=100_000, budget_s=budget)
    assert at == pytest.approx(300.0)  # a third of the budget spent: a third of the bar
    assert bar_position(10, 0.0, 20, budget_s=budget) == pytest.approx(budget / 2)  # steps lead
    # a resumed run counts the steps it has left, from where it resumed
    assert bar_position(15, 0.0, 20, start_step=10, budget_s=budget) == pytest.approx(budget / 2)
    assert bar_position(5, 2000.0, 10, budget_s=budget) == budget  # never past the end
    # the bar itself: 300 s into a 15-minute budget it reads 33 %, 300/900 s, with the step count
    shown = io.StringIO()
    timed = Progress(100_000, 0, budget, t0=time.monotonic() - 300.0, file=shown)
    timed.update(300, loss=2.5, acc=0.4, tokens_per_s=8000.0, lr=2e-3)
    timed.close()
    assert timed.bar.total == budget and " 33%|" in shown.getvalue()
    assert "300/900 s" in shown.getvalue() and "step=300" in shown.getvalue()
    stepped = Progress(3000, 250, None, t0=time.monotonic(), enabled=False)
    assert stepped.bar.total == 3000 and stepped.bar.n == 250
    stepped.close()


@pytest.mark.parametrize("flag,value", [("--temperature", "0"), ("--temperature", "-1"),
                                        ("--temperature", "nan"), ("--temperature", "inf"),
                                        ("--n", "0"), ("--max-chars", "-5"), ("--n", "two")])
def test_bad_sampling_arguments_are_refused_by_argparse(flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        abc_lstm.main(["sample", "--checkpoint", "x.npz", flag, value])
    assert e.value.code == 2 and f"argument {flag}" in capsys.readouterr().err


def test_bad_prime_is_a_usage_error(tmp_path, capsys):
    rc = abc_lstm.main(["sample", "--checkpoint", str(tmp_path / "x.npz"), "--prime", "X:1\\"])
    assert rc == 2 and "--prime" in capsys.readouterr().err
