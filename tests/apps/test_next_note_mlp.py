"""apps/next_note_mlp.py on a small real slice of the CRE MIDI tunes (and a few Essen songs):
features, baselines, a few steps lower the loss, the CLI trains, resumes and writes MIDI that
mido and music21 open, and bad primes get clear errors."""
from __future__ import annotations

import json
import os

import mido
import numpy as np
import pytest

import nnscratch as nn
from apps import next_note_mlp as app
from apps.music.render import render_hint
from apps.next_note import data
from apps.next_note.generate import generate
from apps.next_note.model import build_model
from apps.next_note.train import baselines
from conftest import SHARED_DATA

CRE = os.path.join(SHARED_DATA, "cre-irish-midi")
pytestmark = pytest.mark.skipif(not os.path.isdir(CRE), reason=f"shared data missing: {CRE}")


@pytest.fixture(scope="module")
def cre_slice():
    tunes = data.load_cre(limit=30)
    tr, va = data.split_tunes(tunes, 0.2, seed=0)
    return tunes, data.make_examples(tr, 4), data.make_examples(va, 4)


def test_cre_tunes_are_transposed_to_c_and_have_bar_positions(cre_slice):
    tunes, _, _ = cre_slice
    assert len(tunes) == 30
    for t in tunes:
        assert len(t.pitches) == len(t.durs) == len(t.pos) > 50
        assert np.all(t.durs > 0) and np.all((t.pos >= 0) & (t.pos < t.bar_len + 1e-9))
    # tonic C after transposition: C is among the most used pitch classes of most tunes
    top3 = [np.argsort(np.bincount(t.pitches % 12, minlength=12))[-3:] for t in tunes]
    assert np.mean([0 in k for k in top3]) > 0.7


def test_features_are_one_hot_blocks(cre_slice):
    _, tr, _ = cre_slice
    X = data.features(tr, np.arange(50), context=4)
    assert X.shape == (50, data.n_features(4)) == (50, 4 * 100 + 44)
    assert np.all(X.sum(1) == 4 * 2 + 2)
    # the first note of a tune sees "no note" in every context slot
    first = np.flatnonzero(np.all(tr.prev_p == data.NO_NOTE, axis=1))[0]
    assert X[first, data.NO_NOTE] == 1 and X[first, 3 * 100 + data.NO_NOTE] == 1


def test_baselines_on_a_toy_corpus():
    ex = data.Examples(prev_p=np.array([[5], [5], [5], [7]]), prev_d=np.zeros((4, 1), int),
                       cur_d=np.zeros(4, int), cur_pos=np.zeros(4, int),
                       target=np.array([7, 7, 9, 9]))
    b = baselines(ex, ex)
    assert b["bigram"]["top1"] == pytest.approx(0.75)     # 5 -> 7 (right 2 of 3), 7 -> 9
    assert b["most_frequent"]["top1"] == pytest.approx(0.5)
    assert b["most_frequent"]["top5"] == pytest.approx(1.0)


def test_a_few_steps_lower_the_loss(cre_slice):
    _, tr, _ = cre_slice
    model = build_model(4, [64])
    assert isinstance(model[1], nn.Sigmoid)
    opt = nn.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    rows = np.arange(512)
    X, t = data.features(tr, rows, 4), tr.target[rows]
    with nn.no_grad():
        before = loss_fn(model(X), t)
    for _ in range(30):
        loss_fn(model(X), t)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    with nn.no_grad():
        after = loss_fn(model(X), t)
    assert after < before - 1.0, (before, after)


def _check_midi(path, min_notes, low, high):
    mf = mido.MidiFile(path)
    ons = [m.note for tr in mf.tracks for m in tr if m.type == "note_on" and m.velocity > 0]
    assert len(ons) >= min_notes and low <= min(ons) and max(ons) <= high
    music21 = pytest.importorskip("music21")
    score = music21.converter.parse(path)
    assert len(score.flatten().notes) >= min_notes


def test_cli_trains_resumes_generates(tmp_path, capsys):
    out = tmp_path / "run"
    rc = app.main(["train", "--limit", "40", "--epochs", "2", "--context", "4", "--hidden", "64",
                   "--batch", "64", "--lr", "3e-3", "--gen-notes", "48", "--out", str(out),
                   "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "baseline bigram" in printed and "top-5" in printed
    s = json.loads((out / "summary.json").read_text())
    assert set(s["val"]) == {"cross_entropy", "top1", "top5"}
    assert s["history"][1]["train_loss"] < s["history"][0]["train_loss"]
    assert s["val"]["top5"] > s["baselines"]["most_frequent"]["top5"]
    for f in ("model.npz", "curves.png", "generated.png"):
        assert (out / f).stat().st_size > 0
    _check_midi(str(out / "generated.mid"), 48, 21, 108)
    # resume: one more epoch from the checkpoint
    rc = app.main(["train", "--limit", "40", "--epochs", "3", "--context", "4", "--hidden", "64",
                   "--batch", "64", "--lr", "3e-3", "--gen-notes", "16", "--out", str(out),
                   "--resume", str(out / "model.npz"), "--no-progress"])
    assert rc == 0
    assert "resumed from" in capsys.readouterr().out
    history = json.loads((out / "summary.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    # generate from the checkpoint with a prime
    mid = tmp_path / "gen.mid"
    rc = app.main(["generate", "--checkpoint", str(out / "model.npz"), "--notes", "40",
                   "--prime", "60 62 64", "--temperature", "0.7", "--out", str(mid)])
    assert rc == 0
    _check_midi(str(mid), 40, 21, 108)
    first = [m.note for m in mido.MidiFile(str(mid)).tracks[1] if m.type == "note_on"][:3]
    assert first == [60, 62, 64]
    for stem in (out / "generated", tmp_path / "gen"):     # train's and generate's files
        with open(f"{stem}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        music21 = pytest.importorskip("music21")
        assert len(music21.converter.parse(f"{stem}.musicxml").flatten().notes) >= 16
        if render_hint() is None:
            import soundfile

            assert soundfile.info(f"{stem}.wav").duration >= mido.MidiFile(f"{stem}.mid").length
    # --train-half splits Essen songs the melody apps' way: refused for the CRE tunes
    assert app.main(["train", "--limit", "20", "--epochs", "1", "--train-half", "a", "--out",
                     str(tmp_path / "half"), "--no-progress"]) == 2
    assert "--train-half" in capsys.readouterr().err


def test_bad_prime_pitch_and_temperature(tmp_path, capsys):
    model = build_model(2, [8])
    template = {"name": "t", "pitches": [60, 62], "durs": [1.0, 0.5], "pos": [0.0, 1.0],
                "bar_len": 4.0, "tempo": 120.0, "meter": [4, 4]}
    with pytest.raises(ValueError, match="prime pitch 12 is outside the 88 piano keys"):
        generate(model, 2, template, 8, prime=[60, 12])
    with pytest.raises(ValueError, match="temperature"):
        generate(model, 2, template, 8, temperature=0)
    pitches, durs = generate(model, 2, template, 9)
    assert len(pitches) == 9 and list(durs[:4]) == [1.0, 0.5, 1.0, 0.5]   # rhythm cycles
    assert app.main(["generate", "--checkpoint", str(tmp_path / "none.npz")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_essen_source_on_a_few_songs(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_CACHE", str(tmp_path / "cache"))
    tunes = data.load_essen("kinder", limit=8)
    assert len(tunes) == 8
    ex = data.make_examples(tunes, 4)
    assert len(ex) == sum(len(t.pitches) for t in tunes)
    assert all(not np.isnan(t.pos).any() for t in tunes)
