"""apps/melody_vae.py: encodings of real Essen songs (codes, classes, cuts, transpositions), the
hand-written backwards of the three VAEs (the slides' sigmoid MLP, the categorical MLP, the
sequence VAE) checked numerically in float64 (models alone and with their losses), a few steps
lower the loss, and the CLI trains (both archs), resumes, samples and interpolates to MIDI that
mido and music21 open, with a WAV that soundfile opens where a renderer is installed."""
from __future__ import annotations

import json
import os

import mido
import numpy as np
import pytest

import nnscratch as nn
from apps import melody_vae as app
from apps.melody import data, vae_build, vae_generate, vae_model, vae_seq_model, vae_train
from apps.music import esac
from apps.music.render import render_hint
from conftest import SHARED_DATA
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
    return len(ons)


def _check_files(midi_path):
    """The PNG, MusicXML and (where a renderer is installed) WAV beside a MIDI file."""
    stem = os.path.splitext(str(midi_path))[0]
    with open(stem + ".png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    music21 = pytest.importorskip("music21")
    assert len(music21.converter.parse(stem + ".musicxml").flatten().notes) > 0
    if render_hint() is None:
        import soundfile

        info = soundfile.info(stem + ".wav")
        assert info.samplerate == 44100 and info.duration >= mido.MidiFile(str(midi_path)).length


@needs_data
def test_cli_train_resume_sample_interpolate(data_cache, tmp_path, capsys):
    # the default (seq) VAE: ten epochs on 40 songs are enough for melodies of >= 8 notes
    out = tmp_path / "run"
    args = ["train", "--subset", "kinder", "--limit", "40", "--epochs", "10", "--max-len", "32",
            "--samples", "2", "--interp-steps", "3", "--interp-pairs", "5", "--log-every", "1",
            "--out", str(out), "--no-progress"]
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
    assert s["arch"] == "seq" and s["categorical"] is True
    ip = s["interpolation"]
    assert len(ip["first_pair"]["change_per_step"]) == 2 and ip["pairs"] == 5
    assert 0 <= ip["mean_change_per_step"] <= ip["max_change_per_step"] <= 1
    assert 0 <= ip["mean_path_efficiency"] <= 1 and 0 <= ip["first_pair"]["path_efficiency"] <= 1
    assert set(ip["streams"]) == {"notes", "rhythm"}
    for f in ("sample_0.mid", "sample_1.mid", "interp_0.mid", "interp_2.mid"):
        _check_midi(out / f, 8)
        _check_files(out / f)
    more = list(args)
    more[more.index("--epochs") + 1] = "11"
    assert app.main(more + ["--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert len(json.loads((out / "summary.json").read_text())["history"]["notes"]) == 11
    assert app.main(["sample", "--run", str(out), "--n", "2", "--seed", "5"]) == 0
    # a sample can end after a note or two (each VAE draws its own end, the first one cuts the
    # melody; at latent 512 this seed's second sample does): the two together hold a melody
    counts = [_check_midi(out / f"sample_5_{i}.mid", 1) for i in range(2)]
    assert sum(counts) >= 8, counts
    _check_files(out / "sample_5_1.mid")
    assert app.main(["interpolate", "--run", str(out), "--a", "0", "--b", "1", "--steps", "3"]) == 0
    _check_midi(out / "interp_0_1_2.mid", 8)
    _check_files(out / "interp_0_1_2.mid")
    assert "share of events changed per step" in capsys.readouterr().out
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


# ----------------------------------------------------------------------------------------------
# The categorical VAEs: classes, cuts, transpositions
# ----------------------------------------------------------------------------------------------
@needs_data
def test_classes_round_trip_and_end(songs):
    N, R, L, _, _ = data.segments(songs, 32)
    for kind, codes in (("notes", N), ("rhythm", R)):
        cls = data.to_classes(codes, L, kind)
        assert cls.min() >= 0 and cls.max() < data.N_CLASSES[kind]
        assert np.all((cls == data.END_CLASS[kind]) == (np.arange(32)[None] >= L[:, None]))
        back, lengths = data.from_classes(cls, kind)
        np.testing.assert_array_equal(back, codes)
        np.testing.assert_array_equal(lengths, L)
    # a decoder that ends early: everything after the first end is padding
    cls = np.array([[3, data.END_CLASS["notes"], 5, 6]])
    codes, lengths = data.from_classes(cls, "notes")
    assert lengths.tolist() == [1] and codes.tolist() == [[53, 99, 99, 99]]
    assert data.to_melody([60, 62, 64], [3, 3, 5], length=2) == ([60, 62], [1.0, 1.0])


@needs_data
def test_random_cuts_keep_every_event_once(songs):
    codes, _ = data.all_song_codes(songs)
    rng = np.random.default_rng(0)
    for _ in range(3):
        N, R, L, idx = data.cut(codes, 16, rng)
        assert L.min() >= 1 and L.max() <= 16
        for k, notes, classes in codes:
            rows = np.flatnonzero(idx == k)
            joined = [c for r in rows for c in N[r, :L[r]].tolist()]
            assert joined == notes
            assert [c for r in rows for c in R[r, :L[r]].tolist()] == classes


@needs_data
def test_transpositions_keep_intervals_rests_and_range(songs):
    N, _, L, _, _ = data.segments(songs, 32)
    T = data.transpose_segments(N, L, 5, np.random.default_rng(0))
    real = np.arange(32)[None] < L[:, None]
    rest = N == data.REST_CODE
    assert np.array_equal(T[rest | ~real], N[rest | ~real])
    pitch = real & ~rest
    assert T[pitch].min() >= data.PITCH_LOW and T[pitch].max() <= data.PITCH_HIGH
    shift = [np.unique(T[k][pitch[k]] - N[k][pitch[k]]) for k in range(len(N)) if pitch[k].any()]
    assert all(len(s) == 1 and abs(s[0]) <= 5 for s in shift)
    assert len({int(s[0]) for s in shift}) > 3


# ----------------------------------------------------------------------------------------------
# Gradients of the categorical MLP VAE and of the sequence VAE (float64, tiny sizes)
# ----------------------------------------------------------------------------------------------
def _tiny(kind):
    nn.manual_seed(5)
    with nn.default_dtype(np.float64):
        if kind == "seq":
            model = vae_seq_model.SeqVAE(length=5, classes=4, embed=3, enc_hidden=3, dec_hidden=4,
                                         latent=2, cond=3)
        else:
            model = vae_model.CategoricalMLPVAE(length=5, classes=4, hidden=6, latent=2)
    rng = np.random.default_rng(2)
    return model, rng.integers(0, 4, (3, 5)), rng.standard_normal((3, 2))


@pytest.mark.parametrize("kind", ["mlp", "seq"])
def test_categorical_vae_backward_matches_numerical_gradients(kind):
    model, ids, eps = _tiny(kind)
    kwargs = {"eps": eps}
    if kind == "seq":   # word dropout's mask passed in, so that the check is deterministic
        kwargs["keep"] = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 0, 1], [0, 1, 1, 1, 1]], bool)
    results = check_layer(model, [ids], forward_kwargs=kwargs)
    n_params = len([p for p in model.parameters() if p.requires_grad])
    assert len(results) == n_params and n_params == (21 if kind == "seq" else 14)
    assert max(r.max_rel_error for r in results) < 1e-6


@pytest.mark.parametrize("kind", ["mlp", "seq"])
def test_categorical_vae_loss_gradient_recon_plus_kl(kind):
    model, ids, eps = _tiny(kind)
    loss_fn = vae_model.CategoricalVAELoss(beta=0.3)
    model.zero_grad()
    loss_fn(model(ids, eps), ids)
    model.backward(loss_fn.backward())

    def total():
        with nn.no_grad():
            out = model(ids, eps)
        return loss_fn(out, ids)[0]

    for name, p in model.named_parameters():
        num = numerical_grad(total, p.data)
        err = np.abs(num - p.grad).max() / max(np.abs(num).max(), 1e-8)
        assert err < 1e-7, (name, err)


def test_seq_vae_decodes_step_by_step_like_teacher_forcing():
    """Greedy decoding feeds back each step's argmax: where it equals the teacher-forced input,
    both paths must give the same logits, so the decoded ids are the argmax of a forward pass
    fed with them."""
    model, _, _ = _tiny("seq")
    model.eval()
    z = np.random.default_rng(3).standard_normal((4, 2))
    ids = model.decode(z)
    with nn.no_grad():
        h0, c0 = model._initial_state(z)
        prev = np.concatenate([np.full((4, 1), model.start), ids[:, :-1]], 1)
        x = np.concatenate([model.dec_embed(prev), model._conduct(z)], axis=2)
        y, _ = model.decoder(x, (h0, c0))
        np.testing.assert_array_equal(model.out(y).argmax(-1), ids)
    # sampling at a very low temperature is greedy decoding
    np.testing.assert_array_equal(model.decode(z, np.random.default_rng(0), 1e-4), ids)


def test_seq_vae_with_every_input_dropped_decodes_from_start_alone():
    """Word dropout 1.0: training never feeds a previous class, only START, so decoding feeds
    START at every step too; its greedy ids are the argmax of a forward pass fed START
    throughout, whatever the classes chosen before."""
    model, _, _ = _tiny("seq")
    model.eval()
    rng = np.random.default_rng(4)
    emb = model.dec_embed.weight.data
    emb[...] = 3 * rng.standard_normal(emb.shape)  # the fed class weighs on every step
    z = rng.standard_normal((8, 2))
    fed_back = model.decode(z)
    model.word_dropout = 1.0
    ids = model.decode(z)
    assert np.any(ids != fed_back)  # feeding START instead changes what is decoded
    with nn.no_grad():
        h0, c0 = model._initial_state(z)
        prev = np.full(ids.shape, model.start)
        x = np.concatenate([model.dec_embed(prev), model._conduct(z)], axis=2)
        y, _ = model.decoder(x, (h0, c0))
        np.testing.assert_array_equal(model.out(y).argmax(-1), ids)


@needs_data
@pytest.mark.parametrize("arch", ["mlp", "seq"])
def test_categorical_vae_steps_lower_the_loss(songs, arch):
    N, _, L, _, _ = data.segments(songs, 32)
    cfg = dict(vae_train.PRESETS[vae_train.ARCH_PRESET[arch]]["notes"])
    cfg.update(hidden=64, latent=16)
    model = vae_build.build_vae(cfg, "notes", 32)
    x = vae_build.model_input(model, N, L, "notes")
    opt = nn.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = vae_build.make_loss(model, 0.01)
    first = [vae_train.train_step(model, loss_fn, opt, x, clip=5.0)[0] for _ in range(3)]
    for _ in range(25):
        last = vae_train.train_step(model, loss_fn, opt, x, clip=5.0)[0]
    assert last < min(first) - 10.0, (first, last)


def test_interpolation_change_share():
    a = ([60, 62, 64, 65], [1.0, 1.0, 1.0, 1.0])
    assert vae_generate.change_share(a, a) == 0.0
    assert vae_generate.change_share(a, ([60, 62, 64], [1.0, 1.0, 1.0])) == pytest.approx(0.25)
    assert vae_generate.change_share(a, ([60, 62, 64, 65], [1.0, 1.0, 1.0, 2.0])) == 0.25
    assert vae_generate.change_share(a, ([62, 64, 65], [1.0, 1.0, 1.0])) == 0.25   # a deletion
    assert vae_generate.change_share(a, ([70], [3.0])) == 1.0
    assert vae_generate.change_share(([], []), ([], [])) == 0.0


def test_path_efficiency_counts_detours():
    a, b = [1, 2, 3, 4], [1, 2, 5, 6]
    assert vae_generate.edit_distance(a, b) == 2
    assert vae_generate.edit_distance([1, 2, 3], [2, 3]) == 1              # one deletion
    assert vae_generate.path_efficiency([a, [1, 2, 5, 4], b]) == 1.0       # every step goes on
    assert vae_generate.path_efficiency([a, a, a]) == 1.0                  # nothing moves
    # a detour through an unrelated sequence: 2 edits direct, 4 + 4 walked
    assert vae_generate.path_efficiency([a, [7, 8, 9, 0], b]) == pytest.approx(2 / 8)
    # the triangle inequality keeps it in [0, 1] whatever the lengths
    rng = np.random.default_rng(0)
    for _ in range(50):
        path = [rng.integers(0, 3, rng.integers(0, 6)).tolist() for _ in range(4)]
        assert 0.0 <= vae_generate.path_efficiency(path) <= 1.0


class _IdentityVAE:
    """A stand-in VAE whose code is the class ids themselves and whose decoder rounds: a
    straight line in its latent space moves every position from one class towards the other."""

    def encode(self, x):
        x = np.asarray(x, dtype=np.float64)
        return x, np.zeros_like(x)

    def decode(self, z, rng=None, temperature=1.0):
        return np.rint(z).astype(np.int64)


@pytest.mark.parametrize("far", [True, False])
def test_interpolation_report_figures(tmp_path, far):
    """Far ends (pitch 60 -> 70 at every position) pass through 12, 15 and 18 classes on the
    way: every step changes every note (path efficiency 1/4); near ends (60 -> 61) flip once,
    at the step where the rounded line crosses over (efficiency 1). The rhythm is the same at
    both ends and never changes."""
    L = 8
    N = np.array([[60] * L, [70 if far else 61] * L])
    R = np.full((2, L), 3)
    ip = vae_generate.interpolation_report(_IdentityVAE(), _IdentityVAE(), N, R,
                                           np.array([L, L]), 5, 4, str(tmp_path),
                                           np.random.default_rng(0), files=False)
    notes, rhythm = ip["streams"]["notes"], ip["streams"]["rhythm"]
    assert rhythm == {"mean_change_per_step": 0.0, "mean_end_to_end_change": 0.0,
                      "mean_path_efficiency": 1.0}
    assert notes["mean_end_to_end_change"] == ip["mean_end_to_end_change"] == 1.0
    if far:
        assert ip["first_pair"]["change_per_step"] == [1.0] * 4
        assert ip["mean_change_per_step"] == notes["mean_change_per_step"] == 1.0
        assert ip["mean_path_efficiency"] == notes["mean_path_efficiency"] == 0.25
        assert ip["steps_changing_over_half"] == 1.0
        # 60, 62, 65, 68, 70: every step differs from both ends except the ends themselves
        assert ip["distance_from_start"] == [0.0, 1.0, 1.0, 1.0, 1.0]
        assert ip["distance_from_end"] == [1.0, 1.0, 1.0, 1.0, 0.0]
    else:
        assert ip["first_pair"]["change_per_step"] == [0.0, 0.0, 1.0, 0.0]
        assert ip["mean_change_per_step"] == notes["mean_change_per_step"] == 0.25
        assert ip["mean_path_efficiency"] == ip["median_path_efficiency"] == 1.0
        assert ip["steps_changing_nothing"] == 0.75
        # 60, 60, 60, 61, 61 (or 61, 61, 60, 60, 60 for a pair drawn the other way round):
        # a switch, every melody on the way equal to one end or the other
        start, end = ip["distance_from_start"], ip["distance_from_end"]
        assert start[:2] == [0.0, 0.0] and start[3:] == [1.0, 1.0] and 0 < start[2] < 1
        assert np.allclose(np.add(start, end), 1.0)
        line = vae_generate.interpolation_summary(ip)
        assert "0.25 of the events change per step (an even path: 0.25)" in line
        assert line.endswith(f"by step 0.00 0.00 {start[2]:.2f} 1.00 1.00")
    assert (tmp_path / "interp_4.mid").is_file()


@needs_data
def test_cli_mlp_arch_and_presets(data_cache, tmp_path):
    out = tmp_path / "mlp"
    assert app.main(["train", "--arch", "mlp", "--subset", "kinder", "--limit", "20", "--epochs",
                     "2", "--max-len", "32", "--samples", "1", "--interp-steps", "2",
                     "--interp-pairs", "3", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["preset"] == "mlp" and s["arch"] == "mlp" and s["categorical"] is True
    assert isinstance(vae_build.load_vae(str(out / "notes.npz"))[0], vae_model.CategoricalMLPVAE)
    assert mido.MidiFile(str(out / "sample_0.mid")).length > 0
    _check_files(out / "sample_0.mid")
    assert app.parse_args(["train"]).preset == "tuned"
    assert app.parse_args(["train", "--arch", "mlp"]).preset == "mlp"
    assert app.parse_args(["train", "--preset", "regression"]).arch == "mlp"
    with pytest.raises(SystemExit):
        app.parse_args(["train", "--arch", "seq", "--preset", "slides"])
