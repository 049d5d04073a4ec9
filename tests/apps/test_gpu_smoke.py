"""One training step of every app's model on the GPU, against the same step in NumPy.

Each case builds the app's own model on the CPU (seeded, random draws inside the model turned
off or passed in), copies it, moves the copy to the device, and runs forward, the app's loss,
backward and one Adam step on both. The losses, every gradient and every updated parameter
must agree to float32 rounding. The `cpu` cases run the same harness with the copy left on the
CPU: they must agree exactly, which checks the harness itself in every CI run; the `gpu` cases
are skipped (and reported as skipped) without a device.

This module imports no mido, soundfile, music21 or librosa, so it runs on the lent GPU machine.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import backend

DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)]


def _abc():
    from apps.abc_tunes.model import ModelConfig, MusicRNN  # noqa: PLC0415

    model = MusicRNN(ModelConfig(vocab_size=20, embedding=8, hidden=16, layers=2, dropout=0.0))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, (3, 12)).astype(np.int32)
    y = rng.integers(0, 20, (3, 12))

    def step(m, xp):
        logits, _ = m(xp.asarray(ids))
        loss_fn = nn.SoftmaxCrossEntropyLoss()
        loss = loss_fn(logits, xp.asarray(y))
        m.backward(loss_fn.backward())
        return loss

    return model, step


def _drums(**options):
    """A tiny drum model with the decoder options ``options`` (position, local, bar_rhythm)."""

    def make():
        from apps.drums.loss import DrumLoss  # noqa: PLC0415
        from apps.drums.model import build_model  # noqa: PLC0415

        model = build_model("tiny", inputs=(6, 5), dropout=0.0, input_dropout=0.0,
                            **options)
        rng = np.random.default_rng(1)
        T = 2 * model.cfg.sub_steps
        x = [rng.random((2, T, 6)).astype(np.float32), rng.random((2, T, 5)).astype(np.float32)]
        hvo = np.concatenate([(rng.random((2, T, 9)) < 0.3), rng.random((2, T, 18))], -1)
        hvo = hvo.astype(np.float32)
        eps = rng.standard_normal((2, model.cfg.latent)).astype(np.float32)

        def step(m, xp):
            loss_fn = DrumLoss()
            out = m([xp.asarray(a) for a in x], xp.asarray(hvo), eps=xp.asarray(eps))
            loss, _ = loss_fn(out, xp.asarray(hvo))
            m.backward(loss_fn.backward())
            return loss

        return model, step
    return make


def _melody_lstm():
    from apps.melody.lstm_model import MelodyLSTM  # noqa: PLC0415

    model = MelodyLSTM(vocab_size=12, hidden=16, dropout=0.0)
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 12, (4, 10))
    y = rng.integers(0, 12, (4, 10))

    def step(m, xp):
        loss_fn = nn.SoftmaxCrossEntropyLoss()
        loss = loss_fn(m(ids), xp.asarray(y))
        m.backward(loss_fn.backward())
        return loss

    return model, step


def _melody_vae(arch):
    def make():
        from apps.melody.vae_build import build_vae, make_loss  # noqa: PLC0415

        cfg = {"arch": arch, "output": "categorical", "hidden": 16, "latent": 4, "embed": 8,
               "enc_hidden": 8, "cond": 8, "word_dropout": 0.0}
        model = build_vae(cfg, "notes", 10)
        rng = np.random.default_rng(3)
        classes = model.classes if hasattr(model, "classes") else 50
        ids = rng.integers(0, classes, (3, 10))
        eps = rng.standard_normal((3, 4)).astype(np.float32)

        def step(m, xp):
            loss_fn = make_loss(m, beta=0.5)
            loss, _ = loss_fn(m(xp.asarray(ids), eps=xp.asarray(eps)), xp.asarray(ids))
            m.backward(loss_fn.backward())
            return loss

        return model, step
    return make


def _next_note():
    from apps.next_note.model import build_model, n_features  # noqa: PLC0415

    model = build_model(4, [16])
    rng = np.random.default_rng(4)
    x = rng.random((5, n_features(4))).astype(np.float32)
    y = rng.integers(0, 88, 5)

    def step(m, xp):
        loss_fn = nn.SoftmaxCrossEntropyLoss()
        loss = loss_fn(m(xp.asarray(x)), xp.asarray(y))
        m.backward(loss_fn.backward())
        return loss

    return model, step


def _digits(model_name="cnn", freq_pool=(2, 2)):
    return lambda: _digits_model(model_name, freq_pool)


def _digits_model(model_name, freq_pool):
    from apps.digits.model import HParams, as_input, build_model  # noqa: PLC0415

    hp = HParams(model=model_name, channels=(4, 6), dense=8, dropout=0.0, freq_pool=freq_pool)
    model = build_model(hp, (12, 16), 10)
    rng = np.random.default_rng(5)
    x = as_input(hp, rng.standard_normal((4, 12, 16)).astype(np.float32))
    y = rng.integers(0, 10, 4)

    def step(m, xp):
        loss_fn = nn.SoftmaxCrossEntropyLoss()
        loss = loss_fn(m(xp.asarray(x)), xp.asarray(y))
        m.backward(loss_fn.backward())
        return loss

    return model, step


def _voice(kind, n_classes, aux=0):
    def make():
        from apps.voice.model import AELoss, SpectrogramAE  # noqa: PLC0415

        model = SpectrogramAE(shape=(16, 16), latent=3, kind=kind, variational=True,
                              n_classes=n_classes, channels=(4, 6, 6), hidden=16,
                              dense_hidden=(32, 16), aux_classes=aux)
        rng = np.random.default_rng(6)
        x = rng.random((3, 16, 16)).astype(np.float32)
        c = np.eye(max(n_classes, 1), dtype=np.float32)[rng.integers(0, max(n_classes, 1), 3)]
        eps = rng.standard_normal((3, 3)).astype(np.float32)
        digits = rng.integers(0, max(aux, 1), 3)

        def step(m, xp):  # with aux: the digit classifier on mu (--digit-aux) adds its term
            loss_fn = AELoss(variational=True, lam=10.0, aux_weight=2.0 if aux else 0.0,
                             aux_head=m.aux_head if aux else None)
            out = m(xp.asarray(x), xp.asarray(c) if n_classes else None, eps=xp.asarray(eps))
            loss, _ = loss_fn(out, xp.asarray(x), xp.asarray(digits) if aux else None)
            m.backward(loss_fn.backward())
            return loss

        return model, step
    return make


APPS = {"abc_tunes": _abc, "drums": _drums(),
        "drums_bar_rhythm": _drums(position=True, local=True, bar_rhythm=True),
        "melody_lstm": _melody_lstm,
        "melody_vae_mlp": _melody_vae("mlp"), "melody_vae_seq": _melody_vae("seq"),
        "next_note": _next_note, "digits_cnn": _digits(),
        "digits_cnn_pool_3x2": _digits("cnn_pool", (3, 2)), "voice_conv_vae": _voice("conv", 0),
        "voice_dense_cvae": _voice("dense", 10), "voice_conv_vae_digit_aux": _voice("conv", 0, 4)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("app", sorted(APPS))
def test_one_training_step_matches_numpy(app, device):
    backend.manual_seed(0)
    backend.set_device("cpu")
    model, step = APPS[app]()
    other = copy.deepcopy(model)
    results = []
    for m, dev in ((model, "cpu"), (other, device)):
        backend.set_device(dev)
        m.to(dev)
        xp = backend.get_array_module(m.parameters()[0].data)
        opt = nn.optim.Adam(m.parameters(), lr=1e-2)
        loss = float(step(m, xp))
        grads = {n: nn.to_cpu(p.grad) for n, p in m.named_parameters() if p.grad is not None}
        opt.step()
        params = {n: nn.to_cpu(p.data) for n, p in m.named_parameters()}
        results.append((loss, grads, params))
    backend.set_device("cpu")
    (l0, g0, p0), (l1, g1, p1) = results
    exact = device == "cpu"
    assert np.isfinite(l0) and (l0 == l1 if exact else np.isclose(l0, l1, rtol=1e-4))
    assert g0.keys() == g1.keys() and len(g0) > 0
    for name in g0:
        if exact:
            np.testing.assert_array_equal(g0[name], g1[name], err_msg=name)
        else:
            scale = max(float(np.abs(g0[name]).max()), 1e-6)
            np.testing.assert_allclose(g1[name], g0[name], rtol=1e-3, atol=1e-4 * scale,
                                       err_msg=name)
    for name in p0:
        np.testing.assert_allclose(p1[name], p0[name], rtol=0 if exact else 1e-4,
                                   atol=0 if exact else 1e-5, err_msg=name)
