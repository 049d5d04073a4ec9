"""Griffin-Lim (apps/audio/griffinlim.py) and mel inversion (apps/audio/inverse.py) against librosa.

* the error (spectral convergence) falls with the number of iterations; plain Griffin-Lim
  (momentum 0) never increases it;
* the fast variant matches librosa.griffinlim: the same signal from zero phase, the same signal
  from the same random generator, and on 20 test recordings no worse (slow test);
* mel inversion: db_to_power undoes power_to_db; NNLS fits the mel spectrogram at least as
  well as librosa's mel_to_stft; a [0, 1] image goes back to a signal of the right length.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from apps.audio import fsdd
from apps.audio.features import FeatureConfig, extract, hop_length_for, prepare_signal
from apps.audio.griffinlim import griffinlim, spectral_convergence
from apps.audio.inverse import (
    SpectrogramScaler,
    db_to_power,
    mel_to_audio,
    mel_to_stft,
    nnls,
    spectrogram_to_audio,
)
from apps.audio.mel import mel_filterbank, melspectrogram, power_to_db
from apps.audio.stft import stft
from conftest import SHARED_DATA

librosa = pytest.importorskip("librosa")

FSDD = os.path.join(SHARED_DATA, "fsdd")
pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD, "recordings")),
                                reason="FSDD not found in ../shared/data/fsdd")
N_FFT, HOP = 512, 128


def _test_files(n):
    """n recordings of the official test set (index 0-4), spread over speakers and digits."""
    recs = [r for r in fsdd.list_recordings(FSDD) if r.index < 5]
    return [recs[i].path for i in np.linspace(0, len(recs) - 1, n).astype(int)]


def _magnitude(path):
    y, _ = sf.read(path, dtype="float64")
    return np.abs(stft(y, n_fft=N_FFT, hop_length=HOP)), y


def _librosa_sc(S, init, rng=None):
    y = librosa.griffinlim(S, n_iter=32, hop_length=HOP, n_fft=N_FFT, momentum=0.99,
                           init=None if init == "zero" else "random", random_state=rng)
    return spectral_convergence(S, y, N_FFT, HOP)


def test_error_falls_with_iterations():
    S, _ = _magnitude(_test_files(3)[1])
    sc = [griffinlim(S, n_iter=n, hop_length=HOP, init="zero").spectral_convergence
          for n in (0, 2, 8, 32, 100)]
    assert all(a > b for a, b in zip(sc, sc[1:])), sc
    assert sc[-1] < 0.25 * sc[0], sc
    res = griffinlim(S, n_iter=50, hop_length=HOP, init="random", seed=0)
    assert res.history[-1] < 0.3 * res.history[0] and len(res.history) == 50
    assert res.spectral_convergence <= res.history[-1] + 0.02


def test_a_given_phase_starts_the_iterations():
    """(5): started from the signal's own STFT phase, Griffin-Lim has nothing left to find (the
    error is ~0 with no iteration and stays there); from another recording's phase it starts
    elsewhere than from zero phase. A phase of the wrong shape or not complex is refused."""
    paths = _test_files(3)
    S, y = _magnitude(paths[1])
    X = stft(y, n_fft=N_FFT, hop_length=HOP)
    own = griffinlim(S, n_iter=0, hop_length=HOP, init=X, length=len(y))
    assert own.init == "given" and own.spectral_convergence < 1e-6
    assert griffinlim(S, n_iter=10, hop_length=HOP, init=X, length=len(y)
                      ).spectral_convergence < 1e-3
    zero = griffinlim(S, n_iter=0, hop_length=HOP, init="zero").spectral_convergence
    assert zero > 0.1
    with pytest.raises(ValueError, match="complex array of S's shape"):
        griffinlim(S, init=X[:, :-1])
    with pytest.raises(ValueError, match="complex array"):
        griffinlim(S, init=np.abs(X))


def test_plain_griffin_lim_never_increases_the_error():
    """With momentum 0 each iteration is a pair of projections: the inconsistency cannot grow."""
    S, _ = _magnitude(_test_files(3)[2])
    hist = griffinlim(S, n_iter=40, hop_length=HOP, momentum=0.0, init="random", seed=3).history
    assert all(b <= a + 1e-9 for a, b in zip(hist, hist[1:])), hist
    fast = griffinlim(S, n_iter=40, hop_length=HOP, momentum=0.99, init="random", seed=3)
    assert fast.spectral_convergence < hist[-1]  # momentum converges faster (Perraudin et al.)


def test_spectral_convergence_of_the_signal_itself_is_zero():
    S, y = _magnitude(_test_files(2)[0])
    assert spectral_convergence(S, y, N_FFT, HOP) < 1e-6


@pytest.mark.parametrize("init", ["zero", "random"])
def test_same_result_as_librosa_on_three_files(init):
    for k, path in enumerate(_test_files(3)):
        S, _ = _magnitude(path)
        ours = griffinlim(S, n_iter=32, hop_length=HOP, n_fft=N_FFT, init=init,
                          seed=np.random.default_rng(k))
        theirs = _librosa_sc(S, init, np.random.default_rng(k))
        assert ours.spectral_convergence <= theirs * (1 + 1e-6) + 1e-9, \
            (path, ours.spectral_convergence, theirs)
        assert abs(ours.spectral_convergence - theirs) < 1e-6


@pytest.mark.slow
def test_no_worse_than_librosa_on_20_test_files():
    """Zero phase and the same random generator: per file; independent random phases: on average."""
    ours_z, theirs_z, ours_r, theirs_r = [], [], [], []
    for k, path in enumerate(_test_files(20)):
        S, _ = _magnitude(path)
        ours_z.append(griffinlim(S, n_iter=32, hop_length=HOP, init="zero").spectral_convergence)
        theirs_z.append(_librosa_sc(S, "zero"))
        for s in range(5):  # independent draws: our seed 100 k + s, librosa's RandomState(k, s)
            ours_r.append(griffinlim(S, n_iter=32, hop_length=HOP,
                                     seed=100 * k + s).spectral_convergence)
            theirs_r.append(_librosa_sc(S, "random", np.random.RandomState(1000 + 100 * k + s)))
    ours_z, theirs_z = np.array(ours_z), np.array(theirs_z)
    print(f"\nGriffin-Lim, 32 iterations, momentum 0.99, 20 test files (n_fft {N_FFT}, "
          f"hop {HOP}): spectral convergence, zero phase: ours {ours_z.mean():.5f}, librosa "
          f"{theirs_z.mean():.5f} (max per-file difference {np.max(ours_z - theirs_z):.1e}); "
          f"random phase (100 independent draws each): ours {np.mean(ours_r):.5f}, librosa "
          f"{np.mean(theirs_r):.5f}")
    assert np.all(ours_z <= theirs_z * (1 + 1e-6) + 1e-9), np.c_[ours_z, theirs_z]
    se = np.std(np.array(ours_r) - np.array(theirs_r)) / np.sqrt(len(ours_r))
    assert np.mean(ours_r) <= np.mean(theirs_r) + 3 * se, (np.mean(ours_r), np.mean(theirs_r), se)


def test_griffinlim_bad_input():
    S = np.ones((257, 10))
    with pytest.raises(ValueError, match="non-negative"):
        griffinlim(-S)
    with pytest.raises(ValueError, match="init"):
        griffinlim(S, init="noise")
    with pytest.raises(ValueError, match="n_iter"):
        griffinlim(S, n_iter=-1)
    assert griffinlim(S, n_iter=2, hop_length=64, length=600).y.shape == (600,)


# ----------------------------------------------------------------------------------------------
# Mel inversion
# ----------------------------------------------------------------------------------------------
def test_db_to_power_inverts_power_to_db():
    rng = np.random.default_rng(0)
    P = rng.uniform(1e-6, 3.0, size=(50, 40))
    np.testing.assert_allclose(db_to_power(power_to_db(P, top_db=None)), P, rtol=1e-10)
    np.testing.assert_allclose(db_to_power(power_to_db(P, ref=2.0, top_db=None), ref=2.0), P,
                               rtol=1e-10)


def test_nnls_solves_a_nonnegative_least_squares_problem():
    rng = np.random.default_rng(1)
    F = mel_filterbank(8000, 256, 20, dtype=np.float64)
    P_true = rng.uniform(0, 1, size=(F.shape[1], 6))
    P = nnls(F, F @ P_true, n_iter=2000)
    assert P.min() >= 0
    assert np.linalg.norm(F @ P - F @ P_true) < 1e-6 * np.linalg.norm(F @ P_true)
    from scipy.optimize import nnls as scipy_nnls  # one column against scipy's active-set solver

    M = np.abs(rng.standard_normal(20))
    ref = np.linalg.norm(F @ scipy_nnls(F, M)[0] - M)
    assert np.linalg.norm(F @ nnls(F, M[:, None], n_iter=3000)[:, 0] - M) <= ref * (1 + 1e-3) + 1e-9


@pytest.mark.parametrize("path_index", [0, 1])
def test_mel_to_stft_fits_at_least_as_well_as_librosa(path_index):
    y, sr = sf.read(_test_files(2)[path_index], dtype="float64")
    M = melspectrogram(y, sr=sr, n_fft=N_FFT, hop_length=64, n_mels=50)
    F = mel_filterbank(sr, N_FFT, 50, dtype=np.float64)
    ours = mel_to_stft(M, sr, N_FFT)
    pinv = mel_to_stft(M, sr, N_FFT, method="pinv")
    theirs = librosa.feature.inverse.mel_to_stft(M, sr=sr, n_fft=N_FFT)
    res = {k: np.linalg.norm(F @ v ** 2 - M) / np.linalg.norm(M) for k, v in
           {"ours": ours, "pinv": pinv, "librosa": theirs}.items()}
    assert ours.min() >= 0 and ours.shape == (1 + N_FFT // 2, M.shape[1])
    assert res["ours"] <= res["librosa"] + 1e-9 and res["ours"] < 1e-3, res
    assert res["ours"] <= res["pinv"], res
    S = np.abs(stft(y, n_fft=N_FFT, hop_length=64))  # and closer to the true magnitude than pinv
    assert np.linalg.norm(ours - S) < np.linalg.norm(pinv - S)


def test_mel_to_audio_and_errors():
    y, sr = sf.read(_test_files(2)[1], dtype="float64")
    M = melspectrogram(y, sr=sr, n_fft=N_FFT, hop_length=64, n_mels=50)
    out, res = mel_to_audio(M, sr, N_FFT, 64, length=y.size, seed=0)
    assert out.shape == y.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    assert res.spectral_convergence < 0.5
    with pytest.raises(ValueError, match="non-negative"):
        mel_to_stft(-M, sr, N_FFT)
    with pytest.raises(ValueError, match="method"):
        mel_to_stft(M, sr, N_FFT, method="magic")


def test_scaler_round_trip_and_spectrogram_to_audio(tmp_path):
    cfg = FeatureConfig()
    ys = [sf.read(p, dtype="float32")[0] for p in _test_files(4)]
    S_db = np.stack([extract(y, cfg) for y in ys])
    scaler = SpectrogramScaler().fit(S_db)
    x = scaler.transform(S_db)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(x), S_db, atol=1e-4)
    again = SpectrogramScaler.from_arrays(scaler.arrays())
    assert (again.lo, again.hi) == (scaler.lo, scaler.hi)
    hop = hop_length_for(prepare_signal(ys[0], cfg).size, cfg.n_frames)
    y, info = spectrogram_to_audio(x[0], scaler, cfg, hop, seed=0)
    assert y.shape == (hop * (cfg.n_frames - 1) + 1,) and abs(np.abs(y).max() - 0.9) < 1e-6
    assert 0 < info["spectral_convergence"] < 0.6
    path = tmp_path / "resynth.wav"
    sf.write(path, y, cfg.sr)
    info_f = sf.info(path)
    assert info_f.samplerate == 8000 and info_f.frames == y.size
    with pytest.raises(ValueError, match="expected a"):
        spectrogram_to_audio(x[0][:, :10], scaler, cfg, hop)
    with pytest.raises(RuntimeError, match="fit"):
        SpectrogramScaler().transform(S_db)
