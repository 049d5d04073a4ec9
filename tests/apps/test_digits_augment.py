"""The augmentations of the spoken-digit app (apps/audio/augment.py, apps/digits/augment.py).

Each is checked for its shape, its determinism under a seed, and a known effect: a speed factor
of 1.1 shortens a clip by 1/1.1; a pitch shift moves a tone by 2^(s/12) and keeps the length;
noise at s dB has a measured SNR within 0.5 dB; masks zero exactly their bands; CMVN gives zero
mean and unit variance per coefficient; VTLP moves a formant the way its warp says.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from apps.audio import augment as A
from apps.audio.features import FeatureConfig, extract
from apps.audio.mel import mel_frequencies
from apps.audio.wav import read_wav
from apps.digits import augment as DA
from conftest import SHARED_DATA

SR = 8000
WORD = os.path.join(SHARED_DATA, "fsdd", "recordings", "7_jackson_32.wav")
needs_fsdd = pytest.mark.skipif(not os.path.exists(WORD), reason="FSDD not found")


def tone(freq=440.0, seconds=1.0, sr=SR):
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)


def peak_hz(y, sr=SR):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=8 * len(y)))
    return np.argmax(spec) * sr / (8 * len(y))


# ----------------------------------------------------------------------------------------------
# Waveform
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [1.1, 0.9, 1.25])
def test_speed_factor_changes_the_length_by_its_inverse(factor):
    y = tone(seconds=1.3)
    z = A.speed_perturb(y, SR, factor)
    assert abs(len(z) - len(y) / factor) <= 1, (len(z), len(y) / factor)
    # and the pitch moves with it: a tone played faster is higher
    assert peak_hz(z) == pytest.approx(440 * factor, rel=0.01)


@pytest.mark.parametrize("semitones", [2.0, -3.0])
def test_pitch_shift_moves_a_tone_by_the_semitones_and_keeps_the_length(semitones):
    y = tone(seconds=1.0)
    z = A.pitch_shift(y, SR, semitones)
    assert z.shape == y.shape
    assert peak_hz(z[400:-400]) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)
    assert np.sqrt(np.mean(z[400:-400] ** 2)) == pytest.approx(np.sqrt(0.125), rel=0.15)


def test_time_stretch_changes_the_length_not_the_pitch():
    z = A.time_stretch(tone(), 1.25)
    assert abs(len(z) - SR / 1.25) <= 1
    assert peak_hz(z[300:-300]) == pytest.approx(440, rel=0.01)


@pytest.mark.parametrize("k", [0, 5, -7])
def test_time_shift(k):
    y = np.arange(1, 21, dtype=np.float64)
    z = A.time_shift(y, k)
    assert z.shape == y.shape
    if k >= 0:
        assert np.array_equal(z[k:], y[:20 - k]) and not z[:k].any()
    else:
        assert np.array_equal(z[:k], y[-k:]) and not z[k:].any()


def test_gain_constant_and_ramp():
    y = np.ones(101)
    assert np.allclose(A.gain_contour(y, 6.0), 10 ** (6 / 20))
    z = A.gain_contour(y, -6.0, 6.0)
    assert z[0] == pytest.approx(10 ** (-6 / 20)) and z[-1] == pytest.approx(10 ** (6 / 20))
    assert z[50] == pytest.approx(1.0) and np.all(np.diff(z) > 0)


@pytest.mark.parametrize("colour", A.NOISE_COLOURS)
@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_noise_at_a_given_snr_measures_that_snr(colour, snr):
    y = tone(seconds=0.7)
    z = A.add_noise(y, snr, np.random.default_rng(1), colour)
    measured = 10 * np.log10(np.mean(y ** 2) / np.mean((z - y) ** 2))
    assert abs(measured - snr) < 0.5, measured


def test_noise_colours_have_their_spectral_slopes():
    rng = np.random.default_rng(0)
    for colour, slope in (("white", 0.0), ("pink", -3.0), ("brown", -6.0)):
        n = A.coloured_noise(2 ** 16, rng, colour)
        p = np.abs(np.fft.rfft(n)) ** 2
        low, high = p[1000:2000].mean(), p[2000:4000].mean()  # one octave apart
        assert 10 * np.log10(high / low) == pytest.approx(slope, abs=0.7), colour
    with pytest.raises(ValueError, match="noise colour"):
        A.coloured_noise(10, rng, "purple")


# ----------------------------------------------------------------------------------------------
# Feature images
# ----------------------------------------------------------------------------------------------
def test_vtlp_identity_and_a_formant_moves_as_the_warp_says():
    S = np.full((50, 6), -80.0)
    S[20] = 0.0
    assert np.array_equal(A.vtlp(S, 1.0, SR), S)
    centres = mel_frequencies(52, 0.0, SR / 2)[1:-1]
    for alpha in (0.9, 1.1):
        W = A.vtlp(S, alpha, SR)
        assert W.shape == S.shape and W.dtype == S.dtype
        moved_to = int(np.argmax(W[:, 0]))
        expected = int(np.argmin(np.abs(centres - A.vtlp_warp(centres[20], alpha, SR / 2))))
        assert abs(moved_to - expected) <= 1, (alpha, moved_to, expected)
        assert (moved_to > 20) == (alpha > 1)
    # the warp is monotone and keeps 0 and fmax
    f = np.linspace(0, 4000, 101)
    for alpha in (0.9, 1.1):
        w = A.vtlp_warp(f, alpha, 4000.0)
        assert w[0] == 0 and w[-1] == pytest.approx(4000) and np.all(np.diff(w) > 0)


def test_spec_augment_zeros_exactly_the_masked_bands():
    rng = np.random.default_rng(3)
    X = rng.uniform(1.0, 2.0, size=(5, 50, 40))  # no zero anywhere before masking
    Y, masks = A.spec_augment(X, np.random.default_rng(7), n_freq=2, max_freq=8, n_time=2,
                              max_time=6, return_masks=True)
    assert Y.shape == X.shape and len(masks) == 5 * 4
    expected = np.zeros(X.shape, dtype=bool)
    for i, axis, start, width in masks:
        assert width <= (8 if axis == "freq" else 6)
        if axis == "freq":
            expected[i, start:start + width, :] = True
        else:
            expected[i, :, start:start + width] = True
    assert np.array_equal(Y == 0, expected)
    assert np.array_equal(Y[~expected], X[~expected])
    assert expected.any()  # some mask of nonzero width was drawn
    # a seed repeats the masks; the input is not modified
    Y2 = A.spec_augment(X, np.random.default_rng(7), n_freq=2, max_freq=8, n_time=2, max_time=6)
    assert np.array_equal(Y, Y2) and (X != 0).all()


def test_cmvn_zero_mean_unit_variance_per_coefficient():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 5.0, size=(4, 20, 50)) + np.arange(20)[:, None]
    X[1, 7] = 2.5  # a constant coefficient stays finite (0)
    Z = A.cmvn(X)
    assert Z.shape == X.shape and Z.dtype == np.float32 and np.isfinite(Z).all()
    keep = np.ones((4, 20), dtype=bool)
    keep[1, 7] = False
    assert np.allclose(Z.mean(axis=-1)[keep], 0, atol=1e-5)
    assert np.allclose(Z.std(axis=-1)[keep], 1, atol=1e-4)
    assert np.all(Z[1, 7] == 0)


# ----------------------------------------------------------------------------------------------
# The app's policy
# ----------------------------------------------------------------------------------------------
def test_parse_augment():
    assert DA.parse_augment("specaugment,speed") == ("speed", "specaugment")
    assert DA.parse_augment("none") == () and DA.parse_augment("") == ()
    with pytest.raises(ValueError, match="unknown augmentation.*echo"):
        DA.parse_augment("speed,echo")


@needs_fsdd
@pytest.mark.parametrize("kind", ["mel", "mfcc", "both"])
def test_augmented_image_without_augmentation_is_the_training_feature(kind):
    y, _ = read_wav(WORD)
    cfg = FeatureConfig(kind=kind)
    img = DA.augmented_image(y, cfg, (), np.random.default_rng(0))
    assert img.shape == cfg.shape
    assert np.allclose(img, extract(y, cfg), atol=1e-4)


@needs_fsdd
def test_augmenter_epochs_are_seeded_fresh_and_shaped():
    y, _ = read_wav(WORD)
    signals = [y, y[::-1].copy(), y * 0.5]
    cfg = FeatureConfig()
    names = ("speed", "pitch", "vtlp", "gain", "noise", "specaugment")
    aug = DA.Augmenter(names, cfg, signals, transform=lambda X: X - 1.0)
    a = aug.epoch(None, np.random.default_rng(5))
    b = aug.epoch(None, np.random.default_rng(5))
    c = aug.epoch(None, np.random.default_rng(6))
    assert a.shape == (3, *cfg.shape) and np.array_equal(a, b) and not np.array_equal(a, c)
    clean = np.stack([extract(s, cfg) for s in signals]) - 1.0
    assert not np.allclose(a, clean)  # something was changed
    xb = aug.batch(np.ones((2, *cfg.shape), np.float32), np.random.default_rng(0))
    assert xb.shape == (2, *cfg.shape) and (xb == 0).any()
    # without waveform augmentations the epoch is the training set itself
    X = np.ones((3, *cfg.shape), np.float32)
    assert DA.Augmenter(("shift", "specaugment"), cfg).epoch(X, None) is X
    with pytest.raises(ValueError, match="need the training waveforms"):
        DA.Augmenter(("speed",), cfg)


@needs_fsdd
def test_waveform_augmentations_of_a_real_word_keep_it_finite_and_seeded():
    y, _ = read_wav(WORD)
    for name in ("speed", "pitch", "gain", "noise"):
        outs = [DA.augment_signal(y, SR, (name,), np.random.default_rng(s)) for s in (0, 0, 1, 2)]
        assert all(np.isfinite(o).all() and o.ndim == 1 for o in outs)
        assert np.array_equal(outs[0], outs[1])
        assert any(not np.array_equal(o, y) for o in outs if len(o) == len(y)) or \
            any(len(o) != len(y) for o in outs)
