"""apps/melody/judges.py: each judge on a case whose answer is known by hand, the suffix
automaton against brute force, the n-gram's probabilities summing to one, and the melody LSTM's
``judge`` command end to end on a few real Han songs (files opened by mido and soundfile)."""
from __future__ import annotations

import json
import os

import mido
import numpy as np
import pytest

from apps import melody_lstm as app
from apps import melody_vae, next_note_mlp
from apps.melody import judges
from apps.melody.data import split_halves, split_songs
from apps.music.render import render_hint
from conftest import SHARED_DATA

ESSEN = os.path.join(SHARED_DATA, "essen-folksong-abc")


def test_clean_merges_rests_and_notes_fold_them():
    m = [(60, 1.0), (None, 0.5), (None, 0.5), (62, 0.0), (64, 2.0)]
    assert judges.clean(m) == [(60, 1.0), (None, 1.0), (64, 2.0)]
    assert judges.notes([(None, 1.0), (60, 1.0), (None, 0.5), (62, 0.5)]) == [(60, 1.5), (62, 0.5)]


def test_in_key_share_counts_notes_not_rests():
    m = [(60, 1.0), (61, 1.0), (None, 1.0), (71, 1.0)]       # C in, C# out, B in
    assert judges.in_key_share([m]) == pytest.approx(2 / 3)
    assert judges.in_key_share([[(66, 1.0)], [(67, 1.0)]]) == pytest.approx(0.5)


def test_histograms_and_their_distance():
    a = [[(60, 1.0), (64, 1.0), (62, 1.0)]]                  # intervals +4, -2
    h = judges.interval_histogram(a)
    assert h.shape == (25,) and h[12 + 4] == h[12 - 2] == 0.5
    assert judges.interval_histogram([[(40, 1.0), (80, 1.0)]])[24] == 1.0   # clipped to +12
    pa = judges.pitch_class_histogram(a)
    assert pa[0] == pa[4] == pa[2] == pytest.approx(1 / 3)
    assert judges.tv_distance(pa, pa) == 0.0
    pb = judges.pitch_class_histogram([[(61, 1.0)]])
    assert judges.tv_distance(pa, pb) == pytest.approx(1.0)
    half = judges.pitch_class_histogram([[(60, 1.0), (61, 1.0)]])
    assert judges.tv_distance(half, pb) == pytest.approx(0.5)


def test_bar_fill_on_known_rhythms():
    # 2/4 bars of 2 beats: quarter, quarter | half -> both bars full
    assert judges.bar_fill_counts([(60, 1.0), (62, 1.0), (64, 2.0)], 2.0) == (2, 2)
    # quarter, half, quarter: the half crosses the bar line at beat 2; shifted by one beat (a
    # pickup), the bar lines fall at beats 1 and 3, and the bar between them is full
    assert judges.bar_fill_counts([(60, 1.0), (62, 2.0), (64, 1.0)], 2.0) == (1, 1)
    # four dotted quarters (6 beats) against 2/4: onsets every 1.5 beats never lie 2 beats
    # apart, so no bar is full at any phase; phase 0 has the most complete bars (3)
    assert judges.bar_fill_counts([(60, 1.5)] * 4, 2.0) == (0, 3)
    assert judges.bar_fill_share([[(60, 1.0), (62, 1.0), (64, 2.0)], [(60, 1.5)] * 4], 2.0) == \
        pytest.approx(2 / 5)
    assert judges.bar_fill_counts([(60, 0.5)], 2.0) == (0, 0)      # no complete bar


def test_suffix_automaton_finds_the_longest_copy_within_one_song():
    sam = judges.SuffixAutomaton([[1, 2, 3, 4, 5], [7, 8, 9]])
    assert sam.longest([0, 2, 3, 4, 9, 7, 8]) == 3
    assert sam.longest([4, 5, 7, 8]) == 2          # 5 -> 7 crosses two songs: not a copy
    assert sam.longest([]) == 0 and sam.longest([42]) == 0


def test_suffix_automaton_matches_brute_force():
    rng = np.random.default_rng(0)
    corpus = [list(rng.integers(0, 4, rng.integers(1, 30))) for _ in range(6)]
    sam = judges.SuffixAutomaton(corpus)

    def brute(q):
        best = 0
        for i in range(len(q)):
            for j in range(i + 1, len(q) + 1):
                sub = q[i:j]
                if any(any(s[k:k + len(sub)] == sub for k in range(len(s) - len(sub) + 1))
                       for s in corpus):
                    best = max(best, len(sub))
        return best

    for _ in range(40):
        q = list(rng.integers(0, 4, rng.integers(0, 25)))
        assert sam.longest(q) == brute(q), q


def test_note_ngram_is_a_distribution_and_prefers_what_it_saw():
    tune = [(60, 1.0), (62, 1.0), (64, 0.5), (None, 0.5), (65, 2.0), (67, 1.0)]
    model = judges.NoteNgram(order=3).fit([tune] * 5)
    hist = [judges.NoteNgram.START, (60, 4)]
    total = sum(model.prob((p, d), hist) for p in range(128) for d in range(1, 17))
    assert total == pytest.approx(1.0, abs=1e-9)
    assert model.prob((62, 4), hist) > 0.5             # seen five times after (60, 4)
    other = [(70, 0.25), (49, 3.0), (83, 0.75)]
    assert model.cross_entropy([tune]) < 0.5 < model.cross_entropy([other])
    assert judges.note_symbols(tune) == [(60, 4), (62, 4), (64, 4), (65, 8), (67, 4)]


def test_closeness_and_wins():
    assert judges.closeness(0.3, 0.0, "pitch_class_distance") == 0.3
    assert judges.closeness(0.8, 0.9, "in_key") == pytest.approx(0.1)
    table = {"a": {"closeness": dict.fromkeys(judges.JUDGES, 0.1)},
             "b": {"closeness": dict.fromkeys(judges.JUDGES, 0.2)}}
    table["a"]["closeness"]["cross_entropy"] = 0.5
    assert judges.wins(table, "a", "b") == [j for j in judges.JUDGES if j != "cross_entropy"]


def test_judge_scores_real_songs_as_real():
    rng = np.random.default_rng(1)
    real = [[(int(p), 1.0) for p in rng.choice([60, 62, 64, 65, 67], 16)] for _ in range(10)]
    j = judges.Judge(real, real[:5], real[5:], bar_ql=2.0)
    table = j.table({"same": real, "chromatic": [[(60 + k, 1.0) for k in range(12)]] * 10})
    assert table["same"]["closeness"]["pitch_class_distance"] == 0.0
    assert table["same"]["longest_copy"] == pytest.approx(table["real held-out"]["longest_copy"])
    assert table["chromatic"]["in_key"] == pytest.approx(7 / 12)
    assert table["chromatic"]["closeness"]["pitch_class_distance"] > 0.3
    assert judges.wins(table, "same", "chromatic")[:3] == list(judges.JUDGES[:3])


def test_halves_partition_the_training_songs():
    songs = list(range(101))
    train, held = split_songs(songs, 0.1, 0)
    a, b = split_halves(train, 0)
    assert sorted(a + b) == sorted(train) and abs(len(a) - len(b)) <= 1
    assert not set(a) & set(held) and split_halves(train, 0) == (a, b)


@pytest.mark.skipif(not os.path.isdir(ESSEN), reason=f"shared data missing: {ESSEN}")
def test_judge_command_end_to_end(data_cache, tmp_path):
    run = tmp_path / "lstm"
    assert app.main(["train", "--subset", "han", "--limit", "30", "--epochs", "2", "--hidden",
                     "32", "--batch", "16", "--lr", "1e-2", "--demo-steps", "32", "--train-half",
                     "a", "--out", str(run), "--no-progress"]) == 0
    out = tmp_path / "judge"
    assert app.main(["judge", "--lstm", str(run / "best.npz"), "--subset", "han", "--limit",
                     "30", "--n", "12", "--files", "1", "--max-steps", "256", "--out", str(out),
                     "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert list(s["judges"]) == ["real held-out", "melody LSTM", "bigram"]
    for name in ("melody LSTM", "bigram"):
        row = s["judges"][name]
        assert 0 < row["n"] <= 12 and set(judges.JUDGES) <= set(row["closeness"])
        assert 0 <= row["in_key"] <= 1 and row["cross_entropy"] > 0
    assert s["generators"]["melody LSTM"]["independent"] is True
    assert s["lstm_vs_bigram"]["count"] == len(s["lstm_vs_bigram"]["closer_on"])
    mids = [f for f in s["files"] if f.endswith(".mid")]
    assert len(mids) == 2
    for f in mids:
        assert mido.MidiFile(f).length > 0
    if render_hint() is None:
        import soundfile

        wavs = [f for f in s["files"] if f.endswith(".wav")]
        assert len(wavs) == 2 and all(soundfile.info(f).duration > 0.5 for f in wavs)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(ESSEN), reason=f"shared data missing: {ESSEN}")
def test_judge_command_with_every_generator(data_cache, tmp_path):
    """All four generators trained for a moment on half a of 30 Han songs, then judged."""
    common = ["--subset", "han", "--limit", "30", "--train-half", "a", "--no-progress"]
    assert app.main(["train", *common, "--epochs", "1", "--hidden", "32", "--demo-steps", "16",
                     "--out", str(tmp_path / "lstm")]) == 0
    assert melody_vae.main(["train", *common, "--epochs", "2", "--max-len", "32", "--samples",
                            "1", "--interp-pairs", "2", "--out", str(tmp_path / "vae")]) == 0
    assert next_note_mlp.main(["train", "--source", "essen", *common, "--epochs", "1",
                               "--context", "4", "--hidden", "32", "--gen-notes", "16",
                               "--out", str(tmp_path / "nn")]) == 0
    out = tmp_path / "judge"
    assert app.main(["judge", "--lstm", str(tmp_path / "lstm" / "best.npz"), "--vae",
                     str(tmp_path / "vae"), "--next-note", str(tmp_path / "nn" / "model.npz"),
                     "--subset", "han", "--limit", "30", "--n", "8", "--files", "1",
                     "--max-steps", "128", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    names = ["melody LSTM", "bigram", "melody VAE (seq)", "next-note MLP"]
    assert list(s["judges"]) == ["real held-out", *names]
    assert all(s["generators"][n]["independent"] for n in names)
    for n in names:
        assert set(judges.JUDGES) <= set(s["judges"][n]["closeness"])
    assert len([f for f in s["files"] if f.endswith(".mid")]) == 4
