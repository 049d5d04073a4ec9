"""apps/melody_lstm.py on a few real Han songs: vocabulary and windows, the model's hand-chained
backward (gradient check), a few steps lower the loss, the CLI trains and resumes, and
``generate`` continues token and ABC primes into MIDI that mido and music21 open; bad primes
get clear errors."""
from __future__ import annotations

import json
import os

import mido
import numpy as np
import pytest

import nnscratch as nn
from apps import melody_lstm as app
from apps.melody import data
from apps.melody.lstm_generate import sample_chain, sample_songs
from apps.melody.lstm_model import MelodyLSTM, load_model
from apps.melody.lstm_train import bigram_probs, evaluate
from apps.music import esac
from apps.music.render import render_hint
from conftest import SHARED_DATA
from nnscratch.testing import check_layer

ESSEN = os.path.join(SHARED_DATA, "essen-folksong-abc")
pytestmark = pytest.mark.skipif(not os.path.isdir(ESSEN), reason=f"shared data missing: {ESSEN}")


@pytest.fixture(scope="module")
def songs(data_cache):
    return esac.load_songs("han", limit=12)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_cache):
    """A tiny model trained for 2 epochs through the CLI (shared by the generate tests)."""
    out = tmp_path_factory.mktemp("run")
    rc = app.main(["train", "--subset", "han", "--limit", "12", "--epochs", "2", "--hidden", "32",
                   "--batch", "16", "--lr", "1e-2", "--demo-steps", "96", "--out", str(out),
                   "--no-progress"])
    assert rc == 0
    return out


def test_vocab_stream_and_windows(songs):
    vocab = data.Vocab.from_songs(s.tokens for s in songs)
    assert vocab.symbols[:3] == ["/", "r", "_"] and len(vocab) < 45
    ids = data.stream([s.tokens for s in songs[:3]], vocab)
    assert ids[0] == 0 and ids[-1] == 0 and (ids == 0).sum() == 4
    w = data.windows(ids, 64, offset=5)
    assert w.shape[1] == 65 and np.array_equal(w[0], ids[5:70]) and np.array_equal(w[1, 0], ids[69])
    with pytest.raises(ValueError, match=r"pitch 20 \(token 1\) is not in the vocabulary"):
        vocab.encode(["60", "20"])


def test_model_backward_gradient_check():
    with nn.default_dtype(np.float64):
        model = MelodyLSTM(vocab_size=5, hidden=3, dropout=0.0)
    ids = np.array([[0, 3, 2, 4], [1, 1, 2, 0]])
    results = check_layer(model, [ids])
    assert len(results) == 5 and max(r.max_rel_error for r in results) < 1e-6


def test_a_few_steps_lower_the_loss(songs):
    vocab = data.Vocab.from_songs(s.tokens for s in songs)
    win = data.windows(data.stream([s.tokens for s in songs], vocab), 64)[:16]
    model = MelodyLSTM(len(vocab), hidden=64)
    opt = nn.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    before = evaluate(model, win)["cross_entropy"]
    for _ in range(15):
        loss_fn(model(win[:, :-1]), win[:, 1:])
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    after = evaluate(model, win)["cross_entropy"]
    assert after < before - 1.0, (before, after)


def _notes(path):
    mf = mido.MidiFile(str(path))
    return [m.note for tr in mf.tracks for m in tr if m.type == "note_on" and m.velocity > 0]


def _check_beside(midi_path):
    """PNG, MusicXML (music21 opens it) and, where a renderer is installed, the WAV
    (soundfile opens it) written beside a generated MIDI file."""
    stem = os.path.splitext(str(midi_path))[0]
    with open(stem + ".png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    music21 = pytest.importorskip("music21")
    assert len(music21.converter.parse(stem + ".musicxml").flatten().notes) > 0
    if render_hint() is None:
        import soundfile

        assert soundfile.info(stem + ".wav").duration >= mido.MidiFile(str(midi_path)).length


def test_cli_writes_summary_demo_and_resumes(trained, capsys):
    s = json.loads((trained / "summary.json").read_text())
    assert {"accuracy", "cross_entropy"} <= set(s["held_out"])
    assert {"accuracy", "cross_entropy"} <= set(s["bigram"])
    assert s["history"][-1]["train_loss"] < s["history"][0]["train_loss"]
    demo = trained / "demo.mid"
    notes = _notes(demo)
    lo, hi = int(s["data"]["vocab"][3]), int(s["data"]["vocab"][-1])
    assert len(notes) >= 14 and lo <= min(notes) and max(notes) <= hi
    # the prime (Ah vous dirai-je maman, C major: C C G G A A G) comes first
    assert notes[:7] == [60, 60, 67, 67, 69, 69, 67]
    music21 = pytest.importorskip("music21")
    assert len(music21.converter.parse(str(demo)).flatten().notes) >= 14
    _check_beside(demo)
    assert str(trained / "demo.png") in s["files"] and s["demo"]["musicxml"]
    rc = app.main(["train", "--subset", "han", "--limit", "12", "--epochs", "3", "--hidden", "32",
                   "--batch", "16", "--lr", "1e-2", "--demo-steps", "16", "--out", str(trained),
                   "--resume", str(trained / "model.npz"), "--no-progress"])
    assert rc == 0 and "resumed from" in capsys.readouterr().out
    hist = json.loads((trained / "summary.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_generate_from_token_and_abc_primes(trained, tmp_path):
    ck = str(trained / "best.npz")
    out = tmp_path / "tok.mid"
    assert app.main(["generate", "--checkpoint", ck, "--prime", "62 _ _ _ 64 _ 67 _",
                     "--steps", "64", "--temperature", "0.9", "--out", str(out)]) == 0
    toks = esac.midi_to_tokens(str(out))
    assert toks[:8] == ["62", "_", "_", "_", "64", "_", "67", "_"] and len(toks) == 8 + 64
    _check_beside(out)
    out = tmp_path / "abc.mid"
    abc = "X:1\\nM:2/4\\nL:1/8\\nK:G\\nGA Bc | d2 B2 |"    # G major -> C major
    assert app.main(["generate", "--checkpoint", ck, "--prime", abc, "--steps", "48",
                     "--out", str(out)]) == 0
    assert _notes(out)[:4] == [72, 74, 76, 77]               # G4 A4 B4 C5, up a fourth
    ts = [m for m in mido.MidiFile(str(out)).tracks[0] if m.type == "time_signature"]
    assert (ts[0].numerator, ts[0].denominator) == (2, 4)        # the prime's meter is kept


def test_bad_primes_give_clear_errors(trained, capsys):
    ck = str(trained / "best.npz")
    assert app.main(["generate", "--checkpoint", ck, "--prime", "hello world"]) == 2
    assert "cannot appear in ABC music" in capsys.readouterr().err
    assert app.main(["generate", "--checkpoint", ck, "--prime", "60 _ 20 _"]) == 2
    assert "pitch 20 (token 3) is not in the vocabulary" in capsys.readouterr().err
    assert app.main(["generate", "--checkpoint", ck, "--prime", "_ 60"]) == 2
    assert "starts with a hold" in capsys.readouterr().err
    assert app.main(["generate", "--checkpoint", ck, "--temperature", "0"]) == 2
    assert "temperature must be positive" in capsys.readouterr().err


def test_whole_songs_from_the_lstm_and_the_bigram(trained, songs):
    model, vocab, _ = load_model(str(trained / "best.npz"))
    rng = np.random.default_rng(0)
    out = sample_songs(model, vocab, 6, rng, temperature=1.0, max_steps=40)
    assert len(out) == 6 and all(len(t) <= 40 for t in out)
    for toks in out:
        assert data.DELIM not in toks and (not toks or toks[0] != esac.HOLD)
        esac.decode(toks)                                   # a valid melody
    ids = data.stream([s.tokens for s in songs], vocab)
    prob = bigram_probs(ids, len(vocab))
    np.testing.assert_allclose(prob.sum(1), 1.0)
    chain = sample_chain(prob, vocab, 30, rng, max_steps=400)
    lengths = [len(t) for t in chain]
    assert max(lengths) > 0 and all(n <= 400 for n in lengths)
    # songs end: the bigram learnt that '/' follows song endings, so not every song hits the cap
    assert min(lengths) < 400
    steps = [t for toks in chain for t in toks]
    assert data.DELIM not in steps and set(steps) <= set(vocab.symbols)
    with pytest.raises(ValueError, match="temperature"):
        sample_songs(model, vocab, 2, rng, temperature=0)
