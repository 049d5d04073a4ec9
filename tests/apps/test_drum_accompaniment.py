"""apps/drum_accompaniment.py end to end on small real slices: pretrain on Groove MIDI, train on
Lakh (layer-wise, from the pretrained decoder), resume exactly, evaluate against the baselines,
and accompany a held-out song into a MIDI file that mido and music21 open, with a drum track on
channel 10; bad inputs (truncated MIDI, no piano/guitar/bass, not 4/4) get clear errors."""
from __future__ import annotations

import json
import os

import mido
import numpy as np
import pytest

from apps import drum_accompaniment as app
from apps.drums import data as dd
from apps.drums.model import load_model
from apps.drums.tasks import transpose
from apps.drums.train import STAGE_ORDER
from apps.music import midi, render
from conftest import SHARED_DATA

LAKH = os.path.join(SHARED_DATA, "lakh-beatles-midi")
GROOVE = os.path.join(SHARED_DATA, "groove-midi")
pytestmark = pytest.mark.skipif(not (os.path.isdir(LAKH) and os.path.isdir(GROOVE)),
                                reason="shared data missing: lakh-beatles-midi / groove-midi")
LIMIT = "16"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny humanisation run and a tiny accompaniment run built on it (module-wide)."""
    base = tmp_path_factory.mktemp("drums")
    cache = str(base / "cache")
    common = ["--cache", cache, "--preset", "tiny", "--no-progress", "--seed", "3"]
    g = str(base / "groove")
    assert app.main(["pretrain-groove", "--limit", "6", "--bars", "2", "--epochs", "1",
                     "--out", g, *common]) == 0
    a = str(base / "accomp")
    assert app.main(["train", "--limit", LIMIT, "--epochs", "1", "--stage-epochs", "1",
                     "--ss-rate", "3", "--position", "--local", "--bar-rhythm",
                     "--judge-epochs", "2", "--roll-mode", "velocity",
                     "--pretrained", os.path.join(g, "best.npz"), "--out", a, *common]) == 0
    return {"base": base, "cache": cache, "groove": g, "accomp": a, "common": common}


def test_pretrain_groove_reports_humanisation(runs):
    s = json.loads(open(os.path.join(runs["groove"], "summary.json")).read())
    h = s["humanisation"]
    for name in ("model_teacher_forced", "model_free_running_given_hits", "constant_baseline",
                 "per_class_mean_baseline"):
        assert h[name]["velocity_mse"] > 0 and h[name]["timing_mse"] > 0
        assert h[name]["timing_rmse_ms"] > 0
    assert s["task"] == "humanisation" and s["model"]["inputs"] == [9]
    for f in ("best.npz", "last.npz", "metrics.csv", "curves.png"):
        assert os.path.getsize(os.path.join(runs["groove"], f)) > 0


def test_train_layer_wise_and_evaluation(runs, capsys):
    s = json.loads(open(os.path.join(runs["accomp"], "summary.json")).read())
    stages = [h["stage"] for h in s["history"]]
    assert stages == list(STAGE_ORDER) + ["fine-tune"]        # output -> input, then all
    assert s["history"][-1]["lr"] == pytest.approx(2e-3 * 0.25)
    ev = s["evaluation"]
    for name in ("model_teacher_forced", "model_free_running", "drum_machine",
                 "nearest_training_beat_by_inputs", "nearest_training_beat_by_hits_oracle"):
        m = ev[name]
        assert 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1 and 0 < m["accuracy"] <= 1
        assert m["velocity_mse_hits"] >= 0 and m["timing_mse_hits"] >= 0
    assert ev["seed"]["precision"] == 0.6382 and set(ev["thresholds"]) == {"tf", "free"}
    assert ev["model_teacher_forced"]["note_loss"] > 0
    for f in ("best.npz", "last.npz", "metrics.csv", "curves.png", "example.png", "judge.npz",
              "judge_hits.npz"):
        assert os.path.getsize(os.path.join(runs["accomp"], f)) > 0
    # scheduled sampling ran (the teacher-forcing ratio fell below 1), the best epoch was chosen
    # by the free-running F1 on validation
    assert s["history"][-1]["tf_ratio"] < 1 and 0 <= s["history"][-1]["val_free_f1"] <= 1
    assert s["hyperparameters"]["architecture"]["local"] is True
    assert s["hyperparameters"]["architecture"]["bar_rhythm"] is True
    assert s["model"]["bar_rhythm"] is True
    assert s["hyperparameters"]["roll_mode"] == "velocity"
    # the one table: every row, the judges' AUCs in [0, 1] for every generated row
    keys = [r["key"] for r in ev["table"]]
    assert keys == ["model_teacher_forced", "model_free_running",
                    "model_free_running_judge_ranked", "drum_machine",
                    "nearest_training_beat_by_inputs", "seed"]
    for r in ev["table"][:-1]:
        assert 0 <= r["f1"] <= 1 and 0 <= r["judge_auc"] <= 1 and 0 <= r["judge_hits_auc"] <= 1
        assert r["velocity_mse_hits"] >= 0 and r["timing_mse_hits"] >= 0
    assert ev["table"][-1]["judge_auc"] is None and ev["table"][-1]["f1"] == pytest.approx(
        2 * 0.6382 * 0.7764 / (0.6382 + 0.7764))
    assert set(s["judges"]) >= {"hvo", "h"} and s["judges"]["hvo"]["train_windows"]["real"] > 0
    real = ev["groove"]["real drums"]
    assert len(real["hits_per_bar"]) == 9 and real["hits_per_bar_total"] > 0
    assert ev["groove"]["drum machine (rock beat)"]["hihat_velocity_spread"] == 0.0
    out = str(runs["base"] / "evaluation.json")
    capsys.readouterr()
    assert app.main(["evaluate", "--checkpoint", os.path.join(runs["accomp"], "best.npz"),
                     "--cache", runs["cache"], "--no-progress", "--out", out,
                     "--split-seed", "3"]) == 0
    assert "--split-seed 3 ignored" in capsys.readouterr().out   # scored on its own split
    again = json.loads(open(out).read())["evaluation"]
    assert again["thresholds"] == ev["thresholds"]
    assert again["drum_machine"] == pytest.approx(ev["drum_machine"])
    for feat in ("hvo", "h"):
        assert again["judge_auc"][feat] == pytest.approx(ev["judge_auc"][feat])
    assert [r["key"] for r in again["table"]] == keys
    # thresholds per drum class, chosen on validation: the common one is kept for information
    out = str(runs["base"] / "evaluation_per_class.json")
    assert app.main(["evaluate", "--checkpoint", os.path.join(runs["accomp"], "best.npz"),
                     "--cache", runs["cache"], "--no-progress", "--class-thresholds",
                     "--out", out]) == 0
    per_class = json.loads(open(out).read())["evaluation"]
    assert len(per_class["thresholds"]["free"]) == 9
    assert per_class["threshold_common_free"] == ev["thresholds"]["free"]
    assert per_class["model_free_running_common_threshold"]["f1"] == pytest.approx(
        ev["model_free_running"]["f1"])


def test_resume_is_exact(runs, tmp_path):
    """Stopped after one batch and resumed, a run ends with the same weights and optimizer
    state as an uninterrupted one (dropout, teacher-forcing dropout, transposition and
    scheduled sampling on)."""
    args = ["train", "--limit", LIMIT, "--schedule", "joint", "--epochs", "2", "--dropout", "0.2",
            "--input-dropout", "0.2", "--transpose", "3", "--ss-rate", "2", "--judge-epochs", "0",
            *runs["common"]]
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    assert app.main(args + ["--out", full]) == 0
    assert app.main(args + ["--out", cut, "--max-minutes", "1e-9"]) == 0     # stops after 1 batch
    state = np.load(os.path.join(cut, "last.npz"))
    assert json.loads(str(state["__meta__"]))["extra"]["state"]["batch"] == 1
    assert app.main(["train", "--resume", os.path.join(cut, "last.npz"), "--cache", runs["cache"],
                     "--no-progress"]) == 0
    a, b = np.load(os.path.join(full, "last.npz")), np.load(os.path.join(cut, "last.npz"))
    keys = [k for k in a.files if k.startswith(("model/", "optim/"))]
    assert keys
    for k in keys:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_transposition_keeps_the_rolls():
    x = np.zeros((3, 2, 4, 10), np.float32)
    x[:, :, :, 4] = 1
    x[:, 1, 0, 9] = 1
    y = transpose(x, [2, -3, 0])
    assert y[0, 0, 0, 6] == 1 and y[0].sum() == x[0].sum() - 1      # 9 + 2 falls off the top
    assert y[1, 0, 0, 1] == 1 and y[1, 1, 0, 6] == 1 and y[1].sum() == x[1].sum()
    np.testing.assert_array_equal(y[2], x[2])


def _held_out_song(runs) -> str:
    s = json.loads(open(os.path.join(runs["accomp"], "summary.json")).read())
    ck = load_model(os.path.join(runs["accomp"], "best.npz"))[1]
    assert ck.config["task"] == "accompaniment"
    data = dd.load_lakh(cache=runs["cache"], limit=int(LIMIT), log=lambda *a: None)
    test_songs = [x["name"] for x in data.songs if x["split"] == "test"]
    assert test_songs and s["data"]["songs_per_split"]["test"] == len(test_songs)
    return os.path.join(LAKH, test_songs[0])


def _drum_onsets_in_beats(mf) -> np.ndarray:
    """Start times (beats) of the note-ons of the file's last track (the new drums)."""
    now, starts = 0, []
    for m in mf.tracks[-1]:
        now += m.time
        if m.type == "note_on" and m.velocity > 0:
            starts.append(now / mf.ticks_per_beat)
    return np.array(starts)


def test_accompany_a_held_out_song(runs, tmp_path, capsys, monkeypatch):
    song = _held_out_song(runs)
    out = str(tmp_path / "out.mid")
    ckpt = os.path.join(runs["accomp"], "best.npz")
    assert app.main(["accompany", song, "--checkpoint", ckpt, "--out", out,
                     "--candidates", "3"]) == 0
    printed = capsys.readouterr().out
    assert "drum notes over" in printed and "ranked by judge" in printed   # the run's judge
    src, mf = mido.MidiFile(song), mido.MidiFile(out)
    assert mf.type == 1 and len(mf.tracks) == len(src.tracks) + 1
    drum = mf.tracks[-1]
    assert drum[0].type == "track_name" and "drums" in drum[0].name
    ons = [m for m in drum if m.type == "note_on" and m.velocity > 0]
    assert len(ons) > 16 and all(m.channel == 9 for m in ons)
    # drums in every 4/4 section of at least a bar (an offset may start a note half a step early)
    starts = _drum_onsets_in_beats(mf)
    sections = [(s, e) for s, e in dd.four_four_sections(midi.read_midi(song)) if e - s >= 16]
    assert sections
    for s, e in sections:
        inside = (starts >= (s - 0.5) / 4) & (starts < e / 4)
        assert inside.any(), f"no drums in the 4/4 section of steps {s}-{e}"
    assert starts.max() < max(e for _, e in sections) / 4
    # the piano roll beside it; the WAV when a renderer is installed, else the one-line hint
    png = str(tmp_path / "out.png")
    assert os.path.getsize(png) > 10_000 and open(png, "rb").read(4) == b"\x89PNG"
    if render.renderer():
        sf = pytest.importorskip("soundfile")
        info = sf.info(str(tmp_path / "out.wav"))
        assert info.samplerate == 44100 and info.frames > 44100
    else:
        assert render.HINT in printed
    # the original pitched parts are all there; the original drums are replaced
    def pitched(f):
        return sum(1 for tr in f.tracks[:len(src.tracks)] for m in tr
                   if m.type == "note_on" and m.velocity > 0 and m.channel != 9)
    assert pitched(mf) == pitched(src)
    assert not any(m.type == "note_on" and m.channel == 9 for tr in mf.tracks[:-1] for m in tr)
    read = midi.read_midi(out)
    assert read.tempos == midi.read_midi(song).tempos and len(read.drums()) == len(ons)
    music21 = pytest.importorskip("music21")
    score = music21.converter.parse(out)
    assert len(score.parts) >= 2 and len(score.parts[-1].flatten().notes) > 0
    assert len(score.flatten().notes) > 100
    # the other options: one code per section, likelihood ranking, sampled hits, keep drums
    # (and, with no renderer, the MIDI and PNG are written and one line says how to get WAVs)
    out2 = str(tmp_path / "whole.mid")
    with monkeypatch.context() as m:
        m.setenv("NNSCRATCH_RENDERER", "none")
        assert app.main(["accompany", song, "--checkpoint", ckpt, "--out", out2, "--mode",
                         "whole", "--rank", "likelihood", "--candidates", "2", "--temperature",
                         "0.8", "--keep-drums"]) == 0
    printed = capsys.readouterr().out
    assert render.HINT in printed and "ranked by likelihood" in printed
    assert os.path.isfile(str(tmp_path / "whole.png"))
    assert not os.path.exists(str(tmp_path / "whole.wav"))
    kept = mido.MidiFile(out2)
    assert any(m.type == "note_on" and m.channel == 9 for tr in kept.tracks[:-1] for m in tr)
    out3 = str(tmp_path / "template.mid")
    assert app.main(["accompany", song, "--checkpoint", ckpt, "--out", out3, "--rank",
                     "template", "--no-wav"]) == 0
    assert "ranked by template" in capsys.readouterr().out
    assert not os.path.exists(str(tmp_path / "template.wav"))


def test_accompany_bad_inputs(runs, tmp_path, capsys):
    ckpt = os.path.join(runs["accomp"], "best.npz")
    out = str(tmp_path / "x.mid")
    truncated = os.path.join(LAKH, "midi", "04_-_Beatles_for_Sale",
                             "11_-_Every_Little_Thing.v0.mid")
    assert app.main(["accompany", truncated, "--checkpoint", ckpt, "--out", out]) == 2
    assert "truncated MIDI file" in capsys.readouterr().err
    drums_only = os.path.join(GROOVE, "drummer1", "eval_session", "1_funk-groove1_138_beat_4-4.mid")
    assert app.main(["accompany", drums_only, "--checkpoint", ckpt, "--out", out]) == 2
    assert "needs piano, guitar or bass" in capsys.readouterr().err
    waltz = str(tmp_path / "waltz.mid")
    midi.write_midi(waltz, [midi.Track([midi.Note(60 + b % 5, b, b + 1) for b in range(24)]),
                            midi.Track([midi.Note(40, b, b + 1) for b in range(24)], program=33)],
                    time_signature=(3, 4))
    assert app.main(["accompany", waltz, "--checkpoint", ckpt, "--out", out]) == 2
    assert "4/4 only" in capsys.readouterr().err
    groove_ckpt = os.path.join(runs["groove"], "best.npz")
    song = _held_out_song(runs)
    assert app.main(["accompany", song, "--checkpoint", groove_ckpt, "--out", out]) == 2
    assert "humanisation model" in capsys.readouterr().err
    assert app.main(["accompany", str(tmp_path / "missing.mid"), "--checkpoint", ckpt,
                     "--out", out]) == 2
    assert "cannot open" in capsys.readouterr().err
    assert not os.path.exists(out)
