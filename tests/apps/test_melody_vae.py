"""apps/melody_vae.py: encodings of real Essen songs, the VAE's hand-written backward checked
numerically in float64 (model alone and with the BCE + KL loss), a few steps lower the loss,
and the CLI trains, resumes, samples and interpolates to MIDI that mido and music21 open."""
from __future__ import annotations

import json
import os

import mido
import numpy as np
import pytest
from conftest import SHARED_DATA

import nnscratch as nn
from apps import melody_vae as app
from apps.melody import data, vae_model, vae_train
from apps.music import esac
from nnscratch.testing import check_layer, numerical_grad

ESSEN = os.path.join(SHARED_DATA, "essen-folksong-abc")
needs_data = pytest.mark.skipif(not os.path.isdir(ESSEN), reason=f"shared data missing: {ESSEN}")


@pytest.fixture(scope="module")
def songs(data_cache):
    if not os.path.isdir(ESSEN):
        pytest.skip(f"shared data missing: {ESSEN}")
    return esac.load_songs("kinder", limit=16)[0]


# ----------------------------------------------------------------------------------------------
# Encodings
# ----------------------------------------------------------------------------------------------
@needs_data
def test_segments_pad_and_normalise(songs):
    N, R, L, idx, skipped = data.segments(songs, 32)
    assert skipped == 0 and N.shape == R.shape == (len(L), 32) and len(L) >= len(songs)
    for k in range(len(L)):
        assert np.all(N[k, L[k]:] == data.PAD_NOTE) and np.all(R[k, L[k]:] == data.PAD_CLASS)
    real = N[np.arange(32)[None] < L[:, None]]
    assert np.all(((real >= 50) & (real <= 97)) | (real == 99))
    for kind, codes in (("notes", N), ("rhythm", R)):
        x = data.normalise(codes, kind)
        assert x.min() >= 0 and x.max() <= 1
        np.testing.assert_array_equal(data.denormalise(x, kind), codes)   # exact round trip
    first = songs[0]
    notes, classes = data.song_codes(first)
    assert len(notes) == len(first.events)
    assert [data.DURATIONS[c] for c in classes] == [e[1] for e in first.events]


def test_out_of_range_pitches_are_refused():
    song = esac.Song(ref="t", events=[(30, 1.0, False), (60, 1.0, False)])
    with pytest.raises(ValueError, match="pitch 30 is outside the notes VAE's range 50-97"):
        data.song_codes(song)
    N, _, _, _, skipped = data.segments([song], 8)
    assert skipped == 1 and len(N) == 0
    with pytest.raises(ValueError, match="pitch 40 is outside the notes VAE's vocabulary"):
        data.check_note_codes([60, 40])
    pitches, durs = data.to_melody([60, 99, 62, 99, 99], [3, 1, 7, 7, 7])
    assert pitches == [60, None, 62] and durs == [1.0, 0.5, 4.0]


# ----------------------------------------------------------------------------------------------
# Gradients of the hand-written backward (float64, tiny sizes)
# ----------------------------------------------------------------------------------------------
def _tiny_vae():
    nn.manual_seed(3)
    with nn.default_dtype(np.float64):
        model = vae_model.MelodyVAE(input_dim=6, hidden=5, latent=3)
    rng = np.random.default_rng(0)
    return model, rng.uniform(0.05, 0.95, (4, 6)), rng.standard_normal((4, 3))


def test_vae_backward_matches_numerical_gradients():
    model, x, eps = _tiny_vae()
    model.encoder[0].input_grad = True   # check dL/dx too
    results = check_layer(model, [x], forward_kwargs={"eps": eps})
    names = {r.name for r in results}
    assert len(results) == 1 + 14 and any("fc_log_var" in n for n in names)
    assert max(r.max_rel_error for r in results) < 1e-6


def test_vae_loss_gradient_recon_plus_kl():
    model, x, eps = _tiny_vae()
    loss_fn = vae_model.VAELoss(beta=0.7)
    model.zero_grad()
    loss_fn(model(x, eps), x)
    model.backward(loss_fn.backward())

    def total():
        with nn.no_grad():
            out = model(x, eps)
        return loss_fn(out, x)[0]

    for name, p in model.named_parameters():
        num = numerical_grad(total, p.data)
        err = np.abs(num - p.grad).max() / max(np.abs(num).max(), 1e-8)
        assert err < 1e-7, (name, err)


def test_eval_mode_encodes_to_mu():
    model, x, _ = _tiny_vae()
    model.eval()
    with nn.no_grad():
        out = model(x.astype(np.float64))
    np.testing.assert_allclose(nn.functions.sigmoid(out.logits), model.decode(out.mu))


# ----------------------------------------------------------------------------------------------
# Training and the CLI
# ----------------------------------------------------------------------------------------------
@needs_data
def test_a_few_steps_lower_the_loss(songs):
    N, _, _, _, _ = data.segments(songs, 64)
    x = data.normalise(N, "notes").astype(np.float32)
    model = vae_model.MelodyVAE(64, 128, 32)
    opt = nn.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = vae_model.VAELoss()
    first = [vae_train.train_step(model, loss_fn, opt, x)[0] for _ in range(3)]
    for _ in range(25):
        last = vae_train.train_step(model, loss_fn, opt, x)[0]
    assert last < min(first) - 1.0, (first, last)


def _check_midi(path, min_notes):
    mf = mido.MidiFile(str(path))
    ons = [m.note for tr in mf.tracks for m in tr if m.type == "note_on" and m.velocity > 0]
    assert len(ons) >= min_notes and 50 <= min(ons) and max(ons) <= 97
    music21 = pytest.importorskip("music21")
    assert len(music21.converter.parse(str(path)).flatten().notes) >= min_notes


@needs_data
def test_cli_train_resume_sample_interpolate(data_cache, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--subset", "kinder", "--limit", "40", "--epochs", "3", "--max-len", "32",
            "--samples", "2", "--interp-steps", "3", "--log-every", "1", "--out", str(out),
            "--no-progress"]
    assert app.main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    for kind in ("notes", "rhythm"):
        r = s["reconstruction"][kind]
        assert 0 <= r["held_out"]["accuracy"] <= 1 and r["held_out"]["tokens"] > 0
        h = s["history"][kind]
        assert h[-1]["train"]["loss"] < h[0]["train"]["loss"]
    assert s["config"]["notes"]["lr"] == 1e-3 and s["preset"] == "tuned"
    for f in ("curves.png", "reconstruction.png", "notes.npz", "rhythm.npz", "heldout.npz"):
        assert (out / f).stat().st_size > 0
    for f in ("sample_0.mid", "sample_1.mid", "interp_0.mid", "interp_2.mid"):
        _check_midi(out / f, 8)
    more = list(args)
    more[more.index("--epochs") + 1] = "4"
    assert app.main(more + ["--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert len(json.loads((out / "summary.json").read_text())["history"]["notes"]) == 4
    assert app.main(["sample", "--run", str(out), "--n", "2", "--seed", "5"]) == 0
    _check_midi(out / "sample_5_1.mid", 8)
    assert app.main(["interpolate", "--run", str(out), "--a", "0", "--b", "1", "--steps", "3"]) == 0
    _check_midi(out / "interp_0_1_2.mid", 8)
    assert app.main(["interpolate", "--run", str(out), "--a", "0", "--b", "999"]) != 0


def test_slides_preset_is_selectable():
    args = app.parse_args(["train", "--preset", "slides"])
    cfg = vae_train.PRESETS[args.preset]
    assert cfg["notes"] == {"hidden": 500, "latent": 250, "lr": 1e-5, "weight_decay": 1e-6,
                            "epochs": 200, "batch": 32, "beta": 1.0, "lr_step": 0, "lr_gamma": 1.0}
    assert cfg["rhythm"]["latent"] == 300 and cfg["rhythm"]["lr"] == 1e-3
    assert cfg["rhythm"]["epochs"] == 8 and cfg["rhythm"]["batch"] == 64
    with pytest.raises(SystemExit):
        app.parse_args(["train", "--resume"])   # needs --out
