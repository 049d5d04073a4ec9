"""Voice auto-encoders and VAEs (apps/voice_vae.py and its parts in apps/voice/: data, model,
checkpoint, train, summary, plots, generate, judge) on small real slices of FSDD.

* the KL term (the VariationalBottleneck's, in the loss) matches its closed form (and a
  numerical integral) on random inputs;
* every hand-written model backward passes a float64 gradient check at tiny size (dense and
  convolutional; AE, VAE, conditional VAE; odd and even image sizes);
* a few training steps lower the loss;
* the CLI trains, writes checkpoints, plots and summary.json; generation writes WAV files that
  soundfile opens at 8 kHz with the expected length; the digit-and-voice CVAE says a chosen digit
  in a chosen voice (`generate`) and walks from voice to voice (`interpolate`); the judges (a
  digit and a speaker classifier) run end to end;
* bad input (missing checkpoint, wrong latent size, digit out of range...) gives clear errors.
The full-size trainings behind the reported figures are not run here (see the app's docstring).
"""
from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest
import soundfile as sf

import nnscratch as nn
from apps import voice_vae as vv
from apps.audio.features import FeatureConfig, Standardizer
from apps.audio.inverse import SpectrogramScaler
from apps.audio.wav import read_wav
from apps.common.errors import UsageError
from apps.digits.data import load_dataset
from apps.digits.model import HParams, save_model
from apps.digits.train import train_model
from apps.voice.checkpoint import Loaded
from apps.voice.data import (
    condition,
    feature_config,
    features_of,
    hop_stats,
    load_data,
    one_hot,
    pair_grid,
    speaker_names,
)
from apps.voice.judge import Judge, judge_run
from apps.voice.latent_mixture import SIZES
from apps.voice.model import MODELS, RECIPES, AELoss, AEOutput, SpectrogramAE
from apps.voice.train import evaluate, fit, train_step
from conftest import SHARED_DATA
from nnscratch.testing import check_layer

FSDD = os.path.join(SHARED_DATA, "fsdd")
needs_fsdd = pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD, "recordings")),
                                reason="FSDD not found in ../shared/data/fsdd")
TINY = ["--channels", "4", "8", "8", "--hidden", "16", "--dense-hidden", "32", "16",
        "--no-progress", "--no-cache", "--data", FSDD]


# ----------------------------------------------------------------------------------------------
# The KL term
# ----------------------------------------------------------------------------------------------
def _bottleneck_output(y, mu, log_var) -> AEOutput:
    """What a VAE's forward returns for these mu and log_var: the KL computed by the model's
    VariationalBottleneck, fed h = [mu, log_var] through heads that copy their half of h."""
    Z = mu.shape[1]
    with nn.default_dtype(np.float64):
        bn = nn.VariationalBottleneck(2 * Z, Z)
    eye, zero = np.eye(Z), np.zeros((Z, Z))
    bn.fc_mu.weight.data[...] = np.hstack([eye, zero])
    bn.fc_log_var.weight.data[...] = np.hstack([zero, eye])
    bn.fc_mu.bias.data[...] = bn.fc_log_var.bias.data[...] = 0.0
    with nn.no_grad():
        b = bn(np.hstack([mu, log_var]), eps=np.zeros_like(mu))
    np.testing.assert_array_equal(b.mu, mu)
    np.testing.assert_array_equal(b.log_var, log_var)
    return AEOutput(y, b.mu, b.log_var, np.float64(b.kl))


def test_kl_term_matches_closed_form():
    rng = np.random.default_rng(0)
    mu, log_var = rng.normal(0, 1.5, (7, 5)), rng.normal(0, 1.0, (7, 5))
    x = rng.uniform(0, 1, (7, 4, 3))
    y = rng.uniform(0, 1, (7, 4, 3))
    lam = 250.0
    loss, parts = AELoss(True, lam)(_bottleneck_output(y, mu, log_var), x)
    var = np.exp(log_var)
    # KL(N(mu, var) || N(0, 1))
    closed = np.mean(np.sum(0.5 * (var + mu ** 2 - 1.0 - log_var), axis=1))
    assert parts["kl"] == pytest.approx(closed, rel=1e-12)
    assert loss == pytest.approx(lam * np.mean((y - x) ** 2) + closed, rel=1e-12)
    # one coordinate by numerical integration of p log(p / q)
    from scipy.integrate import quad
    from scipy.stats import norm

    m, s = mu[0, 0], np.exp(0.5 * log_var[0, 0])
    p = norm(m, s)
    kl_num = quad(lambda t: p.pdf(t) * (p.logpdf(t) - norm.logpdf(t)), m - 12 * s, m + 12 * s)[0]
    assert kl_num == pytest.approx(0.5 * (var[0, 0] + m ** 2 - 1 - log_var[0, 0]), rel=1e-7)
    # the log-variance convention (keras #3283): log_var = 0 and mu = 0 give KL = 0
    assert AELoss(True, 1.0)(_bottleneck_output(y, 0 * mu, 0 * log_var), x)[1]["kl"] == 0.0


def test_evaluate_reports_the_same_kl():
    nn.manual_seed(0)
    model = SpectrogramAE((6, 6), latent=3, kind="dense", variational=True, dense_hidden=(8,))
    x = np.random.default_rng(1).uniform(0, 1, (5, 6, 6)).astype(np.float32)
    mu, lv = model.encode(x)
    got = evaluate(model, x, lam=10.0)
    closed = np.mean(np.sum(0.5 * (np.exp(lv) + mu ** 2 - 1.0 - lv), axis=1))
    assert got["kl"] == pytest.approx(closed, rel=1e-5)
    assert got["loss"] == pytest.approx(10.0 * got["mse"] + got["kl"], rel=1e-6)
    # the per-dimension KL adds up to the KL; a dimension whose mean never moves is inactive
    assert sum(got["kl_per_dim"]) == pytest.approx(got["kl"], abs=3e-4)
    assert got["active_units"] == int(np.sum(mu.var(axis=0) > 0.01))
    model.bottleneck.fc_mu.weight.data[...] = 0.0           # mu = its bias for every input
    assert evaluate(model, x)["active_units"] == 0


# ----------------------------------------------------------------------------------------------
# Gradient checks of the hand-written backward
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,shape", [("dense", (6, 5)), ("conv", (6, 5)), ("conv", (7, 6))])
@pytest.mark.parametrize("variational,n_classes", [(False, 0), (True, 0), (True, 3), (False, 3)])
def test_model_backward_gradient_check(kind, variational, n_classes, shape):
    """Odd and even sizes: stride-2 stages with 3 x 3 and 4 x 4 kernels, output_padding 0 and 1."""
    # a seed of its own per case, the same in every process (hash() of a str is salted per run)
    rng = np.random.default_rng(zlib.crc32(repr((kind, variational, n_classes, shape)).encode()))
    nn.manual_seed(1)
    model = SpectrogramAE(shape, latent=2, kind=kind, variational=variational, n_classes=n_classes,
                          channels=(2, 3, 2), hidden=4, dense_hidden=(7, 5))
    model.to(dtype=np.float64)
    model.encoder[0].input_grad = True  # check dx too
    for name, p in model.named_parameters():  # positive biases: ReLUs away from their kink at 0
        if name.endswith("bias"):
            p.data[...] = rng.uniform(0.05, 0.3, p.shape)
    x = rng.uniform(0.1, 0.9, (3, *shape))
    c = one_hot([0, 2, 1], 3).astype(np.float64) if n_classes else None
    eps = rng.standard_normal((3, 2)) if variational else None
    results = check_layer(model, [x], forward_kwargs={"c": c, "eps": eps}, check_inputs=[0],
                          eps=1e-5, tol=1e-5)
    assert len(results) == 1 + len(model.parameters())


def test_backward_adds_the_kl_gradient_to_mu_and_log_var():
    """The two paths into mu and log_var (decoder via z, and the KL term) add up."""
    nn.manual_seed(2)
    model = SpectrogramAE((6, 6), latent=3, kind="dense", variational=True, dense_hidden=(8,))
    model.to(dtype=np.float64)
    x = np.random.default_rng(0).uniform(0, 1, (4, 6, 6))
    eps = np.random.default_rng(1).standard_normal((4, 3))
    loss_fn = AELoss(True, 50.0)

    def total_loss():
        model.clear_contexts()
        return loss_fn(model(x, eps=eps), x)[0]

    total_loss()
    model.zero_grad()
    loss_fn(model(x, eps=eps), x)
    model.backward(loss_fn.backward())
    p = model.bottleneck.fc_log_var.bias
    analytic = p.grad.copy()
    h = 1e-6
    numeric = np.zeros_like(analytic)
    for i in range(p.data.size):
        p.data[i] += h
        up = total_loss()
        p.data[i] -= 2 * h
        down = total_loss()
        p.data[i] += h
        numeric[i] = (up - down) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("variational", [True, False])
def test_the_auxiliary_digit_classifier_adds_its_gradient_on_mu(variational):
    """--digit-aux: gamma * CE(aux_head(mu), digit) joins the loss (variational.md (9)); its
    gradient reaches the head, the code heads and the encoder (10), by central differences."""
    nn.manual_seed(3)
    model = SpectrogramAE((6, 6), latent=3, kind="dense", variational=variational,
                          dense_hidden=(8,), aux_classes=4)
    model.to(dtype=np.float64)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (5, 6, 6))
    labels = np.array([0, 3, 1, 1, 2])
    eps = rng.standard_normal((5, 3)) if variational else None
    loss_fn = AELoss(variational, 50.0, aux_weight=2.5, aux_head=model.aux_head)

    def total_loss():
        model.clear_contexts()
        loss_fn.aux_head.clear_contexts()
        return loss_fn(model(x, eps=eps), x, labels)[0]

    model.zero_grad()
    loss, parts = loss_fn(model(x, eps=eps), x, labels)
    assert loss == pytest.approx(50.0 * parts["mse"] + parts["kl"] + 2.5 * parts["aux_ce"]
                                 if variational else parts["mse"] + 2.5 * parts["aux_ce"])
    assert parts["aux_ce"] > 0.5   # an untrained head: about log 4
    model.backward(loss_fn.backward())
    code_bias = model.bottleneck.fc_mu.bias if variational else model.fc_z.bias
    for p in (model.aux_head.weight, model.aux_head.bias, code_bias, model.encoder[0].bias):
        analytic = p.grad.copy().ravel()
        flat = p.data.reshape(-1)
        numeric = np.zeros_like(analytic)
        for i in range(flat.size):
            flat[i] += 1e-6
            up = total_loss()
            flat[i] -= 2e-6
            down = total_loss()
            flat[i] += 1e-6
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    assert np.abs(model.aux_head.weight.grad).max() > 1e-3   # the term is not silently off
    assert SpectrogramAE.from_config(model.config()).aux_classes == 4
    with pytest.raises(ValueError, match="needs the batch's labels"):
        loss_fn(model(x, eps=eps), x)
    with pytest.raises(ValueError, match="aux_head"):
        AELoss(True, 1.0, aux_weight=1.0)


def test_one_hot_and_model_errors():
    np.testing.assert_array_equal(one_hot([1, 0], 3), [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="digit 12 is out of range"):
        one_hot([3, 12])
    model = SpectrogramAE((6, 6), latent=3, kind="dense", dense_hidden=(8,))
    with pytest.raises(ValueError, match="latent codes must have shape"):
        model.decode(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="expected spectrograms"):
        model(np.zeros((2, 5, 6), np.float32))
    cond = SpectrogramAE((6, 6), latent=3, kind="dense", variational=True, n_classes=10,
                         dense_hidden=(8,))
    with pytest.raises(ValueError, match="condition vectors"):
        cond(np.zeros((2, 6, 6), np.float32))
    with pytest.raises(ValueError, match="latent size"):
        SpectrogramAE((6, 6), latent=0)


def test_dropout_in_the_conv_models():
    """--dropout puts Dropout after the dense hidden layers (train mode only), survives the
    config, and is refused outside [0, 1)."""
    model = SpectrogramAE((8, 8), latent=3, channels=(2, 2, 2), hidden=8, dropout=0.5)
    assert sum(isinstance(m, nn.Dropout) for m in [*model.encoder, *model.decoder]) == 2
    again = SpectrogramAE.from_config(model.config())
    assert again.dropout == 0.5
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8)).astype(np.float32)
    model.eval()
    np.testing.assert_array_equal(model(x).y, model(x).y)   # eval: no dropout
    with pytest.raises(ValueError, match="dropout"):
        SpectrogramAE((8, 8), dropout=1.0)


def test_kl_weight_and_free_bits():
    """A KL warm-up weighs the KL by w in the loss and in the gradient handed to the
    bottleneck; free bits reach the bottleneck, survive the config, and are never negative."""
    fn = AELoss(True, 10.0)
    fn.kl_weight = 0.25
    rng = np.random.default_rng(0)
    y, x = rng.uniform(0, 1, (2, 3, 3)), rng.uniform(0, 1, (2, 3, 3))
    mu, log_var = rng.standard_normal((2, 4)), 0.1 * rng.standard_normal((2, 4))
    loss, parts = fn(_bottleneck_output(y, mu, log_var), x)
    assert loss == pytest.approx(10.0 * parts["mse"] + 0.25 * parts["kl"])
    assert fn.backward().dkl == 0.25
    model = SpectrogramAE((8, 8), latent=3, channels=(2, 2, 2), hidden=8, variational=True,
                          free_bits=0.5)
    assert model.bottleneck.free_bits == 0.5
    assert SpectrogramAE.from_config(model.config()).bottleneck.free_bits == 0.5
    with pytest.raises(ValueError, match="free bits"):
        SpectrogramAE((8, 8), variational=True, free_bits=-1)


def test_condition_vectors_and_hops_by_voice():
    names = speaker_names(["theo", "george", "theo"])
    assert names == ["george", "theo"]
    c = condition([3, 0], ["theo", "george"], names)
    np.testing.assert_array_equal(c[:, :10], one_hot([3, 0]))
    np.testing.assert_array_equal(c[:, 10:], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(condition([3], None, ()), one_hot([3]))  # digit only
    with pytest.raises(UsageError, match="unknown speaker 'bob': this model knows george, theo"):
        condition([1], ["bob"], names)
    with pytest.raises(UsageError, match="needs one speaker per digit"):
        condition([1, 2], ["theo"], names)
    hops = np.array([100, 120, 200, 80])
    st = hop_stats(hops, np.array([1, 1, 1, 2]), np.array(["a", "a", "b", "b"]), ["a", "b"])
    assert st["hop_by_pair"].shape == (10, 2)
    assert st["hop_by_pair"][1].tolist() == [110, 200] and st["hop_by_pair"][2, 1] == 80
    assert st["hop_by_pair"][2, 0] == st["hop_by_digit"][2] == 80  # no such pair: the digit's
    assert "hop_by_pair" not in hop_stats(hops, np.array([1, 1, 1, 2]))
    d, v = pair_grid(["a", "b"], 2, digits=[3, 5])      # digit by digit, each pair n times
    assert d.tolist() == [3, 3, 3, 3, 5, 5, 5, 5]
    assert v.tolist() == ["a", "a", "b", "b", "a", "a", "b", "b"]
    assert pair_grid([None], 1)[1].tolist() == [None] * 10


# ----------------------------------------------------------------------------------------------
# Training on real data
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_data():
    """Recordings with index < 6 (360 files): the 300 test ones and 60 for training."""
    return load_data(FSDD, FeatureConfig(), limit=6, progress=False, log=lambda *a: None)


@needs_fsdd
@pytest.mark.parametrize("kind,variational,n_classes", [("dense", False, 0), ("conv", True, 0),
                                                        ("conv", True, 10)])
def test_a_few_training_steps_lower_the_loss(small_data, kind, variational, n_classes):
    X = SpectrogramScaler().fit(small_data.S_db).transform(small_data.S_db)[:128]
    c = one_hot(small_data.digits[:128]) if n_classes else None
    nn.manual_seed(0)
    model = SpectrogramAE(X.shape[1:], latent=3, kind=kind, variational=variational,
                          n_classes=n_classes, channels=(4, 8, 8), hidden=32,
                          dense_hidden=(64, 16))
    loss_fn, opt = AELoss(variational, 100.0), nn.optim.Adam(model.parameters(), lr=3e-3)
    losses = [train_step(model, loss_fn, opt, X, c)[0] for _ in range(12)]
    assert losses[-1] < 0.85 * losses[0] and np.mean(losses[-3:]) < np.mean(losses[:3]), losses


@needs_fsdd
def test_fit_keeps_the_best_epoch_and_resumes(small_data):
    X = SpectrogramScaler().fit(small_data.S_db).transform(small_data.S_db)
    nn.manual_seed(0)
    model = SpectrogramAE(X.shape[1:], latent=3, kind="dense", dense_hidden=(32,))
    saved = {}
    model, state = fit(model, X[:200], X[200:260], epochs=2, progress=False, log=None,
                       on_epoch=lambda m, o, st: saved.update(st))
    assert [h["epoch"] for h in state["history"]] == [1, 2] and saved["epoch"] == 2
    model, state = fit(model, X[:200], X[200:260], epochs=3, progress=False, log=None, state=saved)
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3]
    best = min(state["history"], key=lambda h: h["val_loss"])
    assert evaluate(model, X[200:260])["mse"] == pytest.approx(best["val_mse"], rel=1e-5)


@needs_fsdd
def test_kl_warmup_raises_the_weight_epoch_by_epoch(small_data):
    X = SpectrogramScaler().fit(small_data.S_db).transform(small_data.S_db)
    nn.manual_seed(0)
    model = SpectrogramAE(X.shape[1:], latent=3, kind="dense", variational=True,
                          dense_hidden=(16,))
    _, state = fit(model, X[:128], X[200:260], epochs=3, lam=100.0, progress=False, log=None,
                   kl_warmup=2)
    assert [h["kl_weight"] for h in state["history"]] == [0.5, 1.0, 1.0]
    for h in state["history"]:  # validation: always the whole KL
        assert h["val_loss"] == pytest.approx(100.0 * h["val_mse"] + h["val_kl"], rel=1e-6)


@needs_fsdd
def test_weight_decay_shrinks_the_weights(small_data):
    """--weight-decay trains with AdamW: from the same start, the weights end up smaller."""
    X = SpectrogramScaler().fit(small_data.S_db).transform(small_data.S_db)
    norms = []
    for wd in (0.0, 20.0):  # lr 1e-3: each step multiplies the weights by 1 - 0.02
        nn.manual_seed(0)
        model = SpectrogramAE(X.shape[1:], latent=3, kind="dense", dense_hidden=(32,))
        fit(model, X[:200], X[200:260], epochs=2, progress=False, log=None, weight_decay=wd)
        norms.append(sum(float(np.sum(p.data ** 2)) for p in model.parameters()))
    assert norms[1] < 0.9 * norms[0], norms


# ----------------------------------------------------------------------------------------------
# The command line, end to end
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if not os.path.isdir(os.path.join(FSDD, "recordings")):
        pytest.skip("FSDD not found")
    out = tmp_path_factory.mktemp("voice") / "run"
    rc = vv.main(["train", "--limit", "6", "--epochs", "2", "--out", str(out), "--no-judge",
                  *TINY])
    assert rc == 0
    return out


def test_train_writes_checkpoints_plots_and_summary(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert set(summary["models"]) == set(MODELS)
    for name, m in summary["models"].items():
        assert 0 < m["test_mse"] < 0.2 and m["epochs"] == 2
        assert (tiny_run / f"{name}.npz").exists() and (tiny_run / f"{name}_last.npz").exists()
        assert (tiny_run / f"latent_{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tiny_run / f"{name}_metrics.csv").read_text().count("\n") == 3
    assert summary["test_mse_vs_seed"]["conv3"]["seed"] == 0.0059
    assert (tiny_run / "curves.png").exists() and (tiny_run / "reconstructions.png").exists()
    assert summary["data"]["test"] == 300
    loaded = Loaded(str(tiny_run / "conv3.npz"))
    assert loaded.arrays["centroids"].shape == (10, 3)
    assert loaded.arrays["hop_by_digit"].shape == (10,)
    assert "mix_means" not in loaded.arrays               # the mixture prior: the VAE's only
    vae = Loaded(str(tiny_run / "vae.npz"))
    k = len(vae.arrays["mix_weights"])
    assert k == summary["models"]["vae"]["mixture_components"] and k in SIZES
    assert vae.arrays["mix_means"].shape == (k, 10)
    assert vae.arrays["mix_chol"].shape == (k, 10, 10)
    assert vae.arrays["mix_weights"].sum() == pytest.approx(1.0)
    voiced = Loaded(str(tiny_run / "cvae_speaker.npz"))   # the digit and the voice
    assert voiced.speakers == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert voiced.model.n_classes == 16 and summary["models"]["cvae_speaker"]["speakers"]
    assert summary["models"]["cvae_speaker"]["lambda"] == 2000.0    # its own recipe
    assert summary["models"]["conv3"]["dropout"] == 0.2                # conv3's recipe
    assert summary["models"]["conv3"]["lr_decay_epoch"] == 150
    assert summary["models"]["conv10"]["dropout"] == 0.0
    assert summary["models"]["conv10"]["lr_decay_epoch"] is None
    assert summary["models"]["vae"]["lambda"] == summary["models"]["cvae"]["lambda"] == 5000.0
    assert voiced.arrays["hop_by_pair"].shape == (10, 6)
    assert voiced.hop_for(7, "theo") == round(float(voiced.arrays["hop_by_pair"][7, 4]))


def test_train_resume_continues(tiny_run, tmp_path):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(tiny_run, out)
    rc = vv.main(["train", "--models", "dense3", "--limit", "6", "--epochs", "3", "--out",
                  str(out), "--resume", "--no-judge", *TINY])
    assert rc == 0
    hist = nn.load_checkpoint(str(out / "dense3_last.npz")).extra["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert (out / "dense3_metrics.csv").read_text().count("\n") == 4  # header + 3 epochs


def test_train_with_the_auxiliary_digit_classifier(tmp_path):
    """--digit-aux trains the head beside the VAE: its loss and validation accuracy are logged
    every epoch, its test accuracy summarised, and the checkpoint rebuilds it."""
    if not os.path.isdir(os.path.join(FSDD, "recordings")):
        pytest.skip("FSDD not found")
    out = tmp_path / "aux"
    assert vv.main(["train", "--models", "vae", "--limit", "6", "--epochs", "2", "--out",
                    str(out), "--no-judge", "--digit-aux", "5", *TINY]) == 0
    hist = nn.load_checkpoint(str(out / "vae_last.npz")).extra["history"]
    assert all(h["aux_ce"] > 0 and 0 <= h["val_aux_accuracy"] <= 1 for h in hist)
    entry = json.loads((out / "summary.json").read_text())["models"]["vae"]
    assert entry["digit_aux"] == 5.0 and 0 <= entry["test_aux_accuracy"] <= 1
    assert Loaded(str(out / "vae.npz")).model.aux_classes == 10
    assert "aux_ce" in (out / "vae_metrics.csv").read_text().splitlines()[0]


def test_the_vae_recipe_turns_the_classifier_on_and_the_others_keep_it_off(tiny_run):
    models = json.loads((tiny_run / "summary.json").read_text())["models"]
    assert models["vae"]["digit_aux"] == RECIPES["vae"]["digit_aux"] == 10.0
    assert Loaded(str(tiny_run / "vae.npz")).model.aux_classes == 10
    for name in set(models) - {"vae"}:
        assert "digit_aux" not in models[name], name


def test_a_run_resumed_keeps_its_classifier_or_its_absence(tmp_path):
    """A VAE trained without the classifier (before the recipe, or --digit-aux 0) resumes
    without it, one trained with it resumes with it, when --digit-aux is not given again."""
    if not os.path.isdir(os.path.join(FSDD, "recordings")):
        pytest.skip("FSDD not found")
    for gamma, classes in (("0", 0), ("3", 10)):
        out = tmp_path / f"aux{gamma}"
        common = ["train", "--models", "vae", "--limit", "6", "--out", str(out), "--no-judge",
                  *TINY]
        assert vv.main([*common, "--epochs", "1", "--digit-aux", gamma]) == 0
        assert vv.main([*common, "--epochs", "2", "--resume"]) == 0
        last = nn.load_checkpoint(str(out / "vae_last.npz"))
        assert [h["epoch"] for h in last.extra["history"]] == [1, 2]
        assert last.extra["digit_aux"] == float(gamma)
        assert Loaded(str(out / "vae.npz")).model.aux_classes == classes


def _wav_checks(folder, expected_lengths=None):
    wavs = sorted(p for p in os.listdir(folder) if p.endswith(".wav"))
    assert wavs, f"no WAV in {folder}"
    for k, name in enumerate(wavs):
        info = sf.info(os.path.join(folder, name))
        assert info.samplerate == 8000 and info.channels == 1
        if expected_lengths is not None:
            assert info.frames == expected_lengths[k], (name, info.frames)
        y, _ = sf.read(os.path.join(folder, name))
        assert np.all(np.isfinite(y)) and np.abs(y).max() > 0.5
    assert any(p.endswith(".png") for p in os.listdir(folder))
    return wavs


@pytest.mark.parametrize("argv,model", [
    (["sample", "--from", "centroid", "--digit", "7", "--n", "3"], "conv3"),
    (["sample", "--from", "prior", "--n", "2"], "vae"),
    (["sample", "--from", "mixture", "--n", "2"], "vae"),
    (["sample", "--cvae", "--digit", "3", "--n", "2"], "cvae"),
    (["sample", "--from", "point", "--z", "0.1", "-0.2", "0.3", "--model", "dense3"], "dense3"),
    (["generate", "--digit", "7", "--speaker", "jackson", "--n", "2", "--no-judge"],
     "cvae_speaker"),
    (["generate", "--digit", "4", "--n", "2", "--model", "cvae", "--no-judge"], "cvae"),
])
def test_generation_writes_wavs_at_the_right_rate_and_length(tiny_run, tmp_path, argv, model):
    out = tmp_path / "gen"
    assert vv.main([*argv, "--run", str(tiny_run), "--out", str(out)]) == 0
    loaded = Loaded(str(tiny_run / f"{model}.npz"))
    digit = int(argv[argv.index("--digit") + 1]) if "--digit" in argv else None
    speaker = argv[argv.index("--speaker") + 1] if "--speaker" in argv else None
    hop = loaded.hop_for(digit, speaker)
    n = int(argv[argv.index("--n") + 1]) if "--n" in argv else 1
    _wav_checks(out, [hop * 49 + 1] * n)


def test_reconstruct_and_interpolate(tiny_run, tmp_path):
    a = os.path.join(FSDD, "recordings", "7_jackson_3.wav")
    b = os.path.join(FSDD, "recordings", "2_theo_1.wav")
    assert vv.main(["reconstruct", a, "--run", str(tiny_run), "--model", "conv10", "--out",
                    str(tmp_path / "rec")]) == 0
    assert len(_wav_checks(tmp_path / "rec")) == 2
    assert vv.main(["reconstruct", a, "--run", str(tiny_run), "--model", "cvae", "--digit", "7",
                    "--out", str(tmp_path / "rec_c")]) == 0
    assert vv.main(["interpolate", a, b, "--steps", "3", "--run", str(tiny_run), "--out",
                    str(tmp_path / "interp")]) == 0
    assert len(_wav_checks(tmp_path / "interp")) == 3


@pytest.mark.parametrize("argv,message", [
    (["sample", "--from", "centroid", "--digit", "12"], "digit 12 is out of range"),
    (["sample", "--from", "centroid", "--digit", "-1"], "out of range"),
    (["sample", "--cvae", "--digit", "10"], "out of range"),
    (["sample", "--cvae"], "needs --digit"),
    (["sample", "--from", "point", "--z", "1", "2"], "wrong latent size: --z has 2 values"),
    (["sample", "--from", "centroid", "--digit", "1", "--latent", "5"],
     "wrong latent size: --latent 5"),
    (["sample", "--cvae", "--digit", "1", "--model", "vae"], "needs a conditional VAE"),
    (["sample", "--from", "prior", "--model", "cvae"], "conditional VAE"),
    (["sample", "--from", "mixture", "--model", "conv3"], "holds no mixture prior"),
    (["reconstruct", "no_such_file.wav"], "no such file"),
    (["reconstruct", os.path.join(FSDD, "recordings", "7_jackson_3.wav"), "--model", "cvae"],
     "needs --digit"),
    (["reconstruct", os.path.join(FSDD, "recordings", "7_jackson_3.wav"), "--model",
      "cvae_speaker", "--digit", "7"], "needs --speaker"),
    (["sample", "--cvae", "--digit", "1", "--model", "cvae_speaker"], "use 'generate"),
    (["generate", "--digit", "1", "--speaker", "bob"], "unknown speaker 'bob'"),
    (["generate", "--digit", "11"], "out of range"),
    (["generate", "--digit", "1", "--speaker", "theo", "--model", "cvae"],
     "conditioned on the digit only"),
    (["generate", "--model", "vae"], "needs a conditional VAE"),
    (["interpolate", "--speakers", "theo", "lucas"], "needs --digit"),
    (["interpolate", "--digits", "1", "2"], "give --speaker"),
    (["interpolate", "--speakers", "theo", "lucas", "--digit", "1", "--model", "cvae"],
     "conditioned on the digit only"),
    (["interpolate", "--digits", "1", "2", "--model", "vae"], "not conditional"),
    (["interpolate", "a.wav", "b.wav", "--digits", "1", "2"], "not both"),
    (["interpolate", "a.wav"], "needs two recordings"),
])
def test_bad_input_gives_clear_errors(tiny_run, tmp_path, capsys, argv, message):
    assert vv.main([*argv, "--run", str(tiny_run), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err


def test_missing_checkpoint_and_wrong_files(tmp_path, capsys):
    assert vv.main(["sample", "--from", "prior", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "vae.npz" in err and "train" in err
    assert vv.main(["sample", "--checkpoint", str(tmp_path / "nope.npz"), "--digit", "1"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    other = tmp_path / "other.npz"
    nn.save_checkpoint(str(other), nn.Sequential(nn.Dense(2, 2)),
                       config={"app": "spoken_digits"})
    assert vv.main(["sample", "--checkpoint", str(other), "--digit", "1"]) == 2
    assert "not a voice_vae checkpoint" in capsys.readouterr().err
    assert vv.main(["judge", "--run", str(tmp_path)]) == 2
    assert "checkpoint" in capsys.readouterr().err
    assert vv.main(["generate", "--checkpoint", str(other)]) == 2
    assert "not a voice_vae checkpoint" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_judges(tmp_path_factory):
    """(digit classifier, speaker classifier) checkpoints: tiny CNNs trained here for 2 epochs
    (the judges' plumbing is under test, not their ears)."""
    if not os.path.isdir(os.path.join(FSDD, "recordings")):
        pytest.skip("FSDD not found")
    ds = load_dataset(FSDD, FeatureConfig(), limit_per_class=6, progress=False,
                      log=lambda *a: None)
    hp = HParams(model="cnn", channels=(4, 8), dense=16, epochs=2, lr=3e-3)
    norm = Standardizer(hp.norm).fit(ds.X)
    folder = tmp_path_factory.mktemp("judges")
    paths = []
    for task in ("digit", "speaker"):
        y = ds.labels(task)
        model, _ = train_model(hp, norm.transform(ds.X), y, int(y.max()) + 1, progress=False,
                               log=None)
        paths.append(save_model(str(folder / f"{task}.npz"), model, hp, ds.cfg, norm, task,
                                ds.class_names(task), extra={"test_accuracy": 0.5}))
    return tuple(paths)


def test_generate_any_digit_in_any_voice_judged(tiny_run, tiny_judges, tmp_path):
    """`generate` with no choice says every digit in every voice: 60 WAVs named by digit and
    voice, one sheet, and generated.json with what both judges heard."""
    out = tmp_path / "all"
    digit_clf, speaker_clf = tiny_judges
    assert vv.main(["generate", "--run", str(tiny_run), "--out", str(out), "--classifier",
                    digit_clf, "--speaker-classifier", speaker_clf, "--no-progress"]) == 0
    wavs = _wav_checks(out)
    assert len(wavs) == 60 and "7_jackson_0.wav" in wavs and "0_yweweler_0.wav" in wavs
    report = json.loads((out / "generated.json").read_text())
    assert len(report["files"]) == 60 and os.path.exists(report["sheet"])
    item = next(f for f in report["files"] if f["file"].endswith("7_jackson_0.wav"))
    assert item["digit"] == 7 and item["speaker"] == "jackson"
    assert 0 <= item["heard_digit"] < 10 and 0 < item["digit_p"] <= 1
    assert item["heard_speaker"] in Loaded(str(tiny_run / "cvae_speaker.npz")).speakers
    right = np.mean([f["heard_digit"] == f["digit"] for f in report["files"]])
    assert report["digit_recognised"] == pytest.approx(right, abs=1e-4)
    assert 0 <= report["speaker_recognised"] <= 1


def test_interpolate_between_voices_and_digits(tiny_run, tiny_judges, tmp_path, capsys):
    m = Loaded(str(tiny_run / "cvae_speaker.npz"))
    out = tmp_path / "voices"
    assert vv.main(["interpolate", "--speakers", "jackson", "theo", "--digit", "7", "--steps",
                    "4", "--run", str(tiny_run), "--out", str(out), "--classifier",
                    tiny_judges[0], "--speaker-classifier", tiny_judges[1]]) == 0
    ha, hb = m.hop_for(7, "jackson"), m.hop_for(7, "theo")
    hops = [round((1 - t) * ha + t * hb) for t in np.linspace(0, 1, 4)]
    _wav_checks(out, [h * 49 + 1 for h in hops])
    assert capsys.readouterr().out.count("heard ") == 4
    assert vv.main(["interpolate", "--digits", "3", "8", "--speaker", "lucas", "--steps", "3",
                    "--run", str(tiny_run), "--out", str(tmp_path / "digits"), "--no-judge"]) == 0
    assert len(_wav_checks(tmp_path / "digits")) == 3
    assert vv.main(["interpolate", "--digits", "3", "8", "--model", "cvae", "--steps", "2",
                    "--run", str(tiny_run), "--out", str(tmp_path / "cvae"), "--no-judge"]) == 0


@needs_fsdd
def test_judge_end_to_end(tiny_run, tiny_judges):
    """Tiny digit and speaker classifiers (trained here) judge a tiny run's generations."""
    judge, speaker_judge = Judge(tiny_judges[0]), Judge(tiny_judges[1], task="speaker")
    res = judge_run(str(tiny_run), judge, n_per_digit=1, n_prior=3, n_recon=4, progress=False,
                    data_root=FSDD, limit=6, cache_dir=None,
                    models=["conv3", "vae", "cvae", "cvae_speaker"], log=lambda *a: None,
                    speaker_judge=speaker_judge, n_per_pair=1, phase_per_pair=1)
    assert res["resynthesised_test_recordings"]["n"] == 4
    assert res["resynthesised_test_recordings"]["speaker"]["n"] == 4
    assert res["speaker_classifier"]["task"] == "speaker"
    m = res["models"]
    assert m["conv3"]["centroid_near"]["n"] == 10 and "accuracy" in m["conv3"]["centroid_exact"]
    assert m["vae"]["prior"]["n"] == 3 and 0 <= m["vae"]["prior"]["confident_share"] <= 1
    assert m["vae"]["prior_mixture"]["n"] == 3 and "prior_mixture" not in m["cvae"]
    assert m["cvae"]["chosen_digit"]["n"] == 10 and "centroid_near" not in m["cvae"]
    assert sum(m["cvae"]["chosen_digit"]["predicted_counts"]) == 10
    voiced = m["cvae_speaker"]                       # 60 pairs x 1, both judges
    assert voiced["chosen_digit"]["n"] == 60 and voiced["chosen_speaker"]["n"] == 60
    assert len(voiced["chosen_speaker"]["per_speaker_accuracy"]) == 6
    table = np.array(voiced["pairs"]["speaker_right_by_pair"])
    assert table.shape == (10, 6) and table.mean() == pytest.approx(
        voiced["chosen_speaker"]["accuracy"], abs=1e-3)
    assert voiced["both_right"] <= min(voiced["chosen_digit"]["accuracy"],
                                       voiced["chosen_speaker"]["accuracy"])
    assert "speaker" in m["conv3"]["reconstructions"]
    wavs = _wav_checks(tiny_run / "samples")
    assert sum(w.startswith("cvae_speaker_pairs_") for w in wavs) == 60
    assert voiced["novelty"]["nearest_training_mse"]["generated"] > 0
    assert "within_pair_spread" not in voiced["novelty"]   # one word per pair: no spread
    study = voiced["phase_study"]                   # four ways back to sound, judged
    assert study["n"] == 60 and set(study["variants"]) == {
        "random_32", "random_100", "recording_32", "recording_100"}
    assert all(v["digit"]["n"] == 60 and v["speaker"]["n"] == 60 and
               0 < v["spectral_convergence"] < 1 for v in study["variants"].values())
    assert m["cvae"]["phase_study"]["n"] == 10 and "phase_study" not in m["vae"]


@needs_fsdd
def test_seed_protocol_features_and_generation(tmp_path):
    """The seed report's preprocessing (22,050 Hz, n_fft 2048, hop floor((L + 1) / 50), dB with
    ref = 1): features, a tiny training, and a WAV at 22,050 Hz of the expected length."""
    cfg = feature_config("seed")
    y, sr = read_wav(os.path.join(FSDD, "recordings", "7_jackson_3.wav"), sr=cfg.sr)
    S_db, hop = features_of(y, cfg, "seed")
    assert sr == 22050 and hop == (len(y) + 1) // 50 and S_db.shape == (50, 50)
    librosa = pytest.importorskip("librosa")  # the seed's own calls (chapter 2.1.1)
    expected = librosa.power_to_db(librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=sr, hop_length=hop, n_mels=50))[:, :50]
    np.testing.assert_allclose(S_db, expected, atol=1e-3)
    out = tmp_path / "seed_run"
    assert vv.main(["train", "--protocol", "seed", "--models", "dense3", "--limit", "6",
                    "--epochs", "1", "--out", str(out), "--no-judge", *TINY]) == 0
    loaded = Loaded(str(out / "dense3.npz"))
    assert loaded.protocol == "seed" and loaded.cfg.sr == 22050
    gen = tmp_path / "gen"
    assert vv.main(["sample", "--from", "centroid", "--digit", "4", "--n", "1", "--run", str(out),
                    "--model", "dense3", "--out", str(gen)]) == 0
    wav = [p for p in os.listdir(gen) if p.endswith(".wav")][0]
    info = sf.info(os.path.join(gen, wav))
    assert info.samplerate == 22050 and info.frames == loaded.hop_for(4) * 49 + 1


@needs_fsdd
def test_novelty_against_the_recordings(small_data, tiny_run):
    """Words that are the training recordings themselves, each twice: at distance 0 from them,
    where a test recording is not, and no spread within a pair (its two words are the same)."""
    from apps.voice.judge import novelty

    m = Loaded(str(tiny_run / "cvae_speaker.npz"))
    train = np.flatnonzero(small_data.index == 5)         # one training recording per pair
    twice = np.repeat(train, 2)
    imgs = m.scaler.transform(small_data.S_db[twice])
    out = novelty(m, imgs, small_data.digits[twice], small_data.speakers[twice], small_data)
    assert out["nearest_training_mse"]["generated"] == pytest.approx(0, abs=1e-9)
    assert out["nearest_training_mse"]["test_recordings"] > 0.001
    assert out["within_pair_spread"]["generated"] == pytest.approx(0, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# Phase from a real recording
# ----------------------------------------------------------------------------------------------
@needs_fsdd
def test_phase_bank_borrows_the_nearest_recordings_phase(small_data, tiny_run):
    """A training image's nearest recording is itself; its phase has the model's frame count
    at the recording's own hop; and started from it, 8 Griffin-Lim iterations match the image
    better than from a random phase (at 32 and more both reach the floor that the mel
    inversion leaves: docs/benchmarks.md)."""
    from apps.voice.checkpoint import to_audio
    from apps.voice.phase import PhaseBank

    m = Loaded(str(tiny_run / "cvae_speaker.npz"))
    train = np.flatnonzero(small_data.index == 5)  # index 5: not in the official test set
    bank = PhaseBank(m, small_data, train)
    k = train[17]
    img = m.scaler.transform(small_data.S_db[k][None])[0]
    d, s = int(small_data.digits[k]), str(small_data.speakers[k])
    assert bank.nearest(img, d, s) == k and bank.nearest(img, d) == k
    other = next(n for n in m.speakers if n != s)
    j = bank.nearest(img, d, other)
    assert small_data.digits[j] == d and small_data.speakers[j] == other
    hop, X0 = bank.phase(k)
    assert hop == small_data.hops[k] and X0.shape == (257, 50) and np.iscomplexobj(X0)
    _, rec = to_audio(m, img, hop, init=X0, n_iter=8)
    _, rnd = to_audio(m, img, hop, seed=0, n_iter=8)
    assert rec["init"] == "given" and rnd["init"] == "random"
    assert rec["spectral_convergence"] < rnd["spectral_convergence"], (rec, rnd)
    with pytest.raises(UsageError, match="no training recording of digit 3 by nobody"):
        bank.nearest(img, 3, "nobody")


def test_generate_with_a_recordings_phase(tiny_run, tmp_path):
    out = tmp_path / "phase"
    assert vv.main(["generate", "--digit", "2", "--speaker", "theo", "--n", "2", "--phase",
                    "recording", "--iterations", "8", "--limit", "6", "--no-cache", "--data",
                    FSDD, "--no-judge", "--no-progress", "--run", str(tiny_run), "--out",
                    str(out)]) == 0
    report = json.loads((out / "generated.json").read_text())
    assert report["phase"] == "recording" and report["iterations"] == 8
    for item in report["files"]:
        assert item["phase_from"].startswith("2_theo_") and item["phase_from"][-5] in "5"
    _wav_checks(out)


def test_generate_without_judges_says_how_to_get_them(tiny_run, tmp_path, capsys, monkeypatch):
    """No classifier checkpoint anywhere: the words are still written, with one line each on
    how to train the missing judges; a judge asked for by name must exist."""
    import apps.voice.judge as judge_mod

    monkeypatch.setattr(judge_mod, "latest_checkpoint", lambda task=None: None)
    out = tmp_path / "unjudged"
    assert vv.main(["generate", "--digit", "5", "--speaker", "lucas", "--run", str(tiny_run),
                    "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "python apps/spoken_digits.py train" in printed
    assert "python apps/spoken_digits.py speakers" in printed
    report = json.loads((out / "generated.json").read_text())
    assert "heard_digit" not in report["files"][0] and "digit_recognised" not in report
    assert vv.main(["generate", "--digit", "5", "--run", str(tiny_run), "--out", str(out),
                    "--classifier", str(tmp_path / "none.npz")]) == 2
    assert "no digit classifier checkpoint at" in capsys.readouterr().err
