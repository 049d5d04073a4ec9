"""The audio front end (apps/audio/) against librosa, numpy.fft and scipy, and its bad-input errors.

librosa is the reference here (a dev dependency), never a runtime dependency of the apps.
Parity bars: FFT to 1e-9; STFT, mel filterbank, mel spectrogram, power_to_db and MFCC within
1e-4 relative (float64 inputs match to ~1e-10).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.fft
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from apps.audio import fsdd
from apps.audio.features import (
    FeatureConfig,
    Standardizer,
    extract,
    extract_many,
    fit_frames,
    hop_length_for,
)
from apps.audio.fft import dft_naive, fft_radix2, ifft_radix2, next_power_of_two
from apps.audio.mel import (
    db_to_power,
    hz_to_mel,
    mel_filterbank,
    mel_frequencies,
    mel_to_hz,
    melspectrogram,
    pcen,
    power_to_db,
)
from apps.audio.mfcc import dct_matrix, inverse_mfcc, mfcc
from apps.audio.stft import istft, n_frames, stft
from apps.audio.wav import (
    AudioError,
    check_not_silent,
    load_clip,
    pad_or_trim,
    read_wav,
    resample,
    trim_silence,
    write_wav,
)
from conftest import SHARED_DATA

librosa = pytest.importorskip("librosa")

FSDD = os.path.join(SHARED_DATA, "fsdd")
needs_fsdd = pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD, "recordings")),
                                reason="FSDD not found in ../shared/data/fsdd")
REL = 1e-4


def _rel_close(ours, ref, rtol=REL, name="value"):
    """|ours - ref| <= rtol * |ref| + rtol * 1e-6 * max|ref| (a floor for the near-zero entries)."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} vs librosa {ref.shape}"
    np.testing.assert_allclose(ours, ref, rtol=rtol,
                               atol=rtol * 1e-6 * float(np.abs(ref).max() or 1), err_msg=name)


@pytest.fixture(scope="module")
def speech():
    """A real recording (float64), or a synthetic vowel-like signal when FSDD is absent."""
    path = os.path.join(FSDD, "recordings", "7_jackson_32.wav")
    if os.path.exists(path):
        y, sr = sf.read(path, dtype="float64")
        return y, sr
    sr = 8000
    t = np.arange(int(0.6 * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate([140, 280, 700, 1200, 2400], 1))
    return 0.3 * y * np.hanning(t.size), sr


# ----------------------------------------------------------------------------------------------
# FFT
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 4, 8, 64, 1024, 4096])
def test_fft_radix2_matches_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n) + 1j * rng.normal(size=n)
    ref = np.fft.fft(x)
    np.testing.assert_allclose(fft_radix2(x), ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    np.testing.assert_allclose(ifft_radix2(fft_radix2(x)), x, rtol=1e-9, atol=1e-12)


@given(log_n=st.integers(0, 9), batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_fft_radix2_batched_real_inputs(log_n, batch, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, size=(batch, 2 ** log_n))
    ref = np.fft.fft(x, axis=-1)
    np.testing.assert_allclose(fft_radix2(x), ref, rtol=1e-9,
                               atol=1e-9 * max(1.0, np.abs(ref).max()))


def test_dft_definition_and_radix2_errors():
    x = np.random.default_rng(0).normal(size=12)
    np.testing.assert_allclose(dft_naive(x), np.fft.fft(x), atol=1e-10)
    with pytest.raises(ValueError, match="power of two.*16"):
        fft_radix2(x)
    assert next_power_of_two(12) == 16 and next_power_of_two(16) == 16 and next_power_of_two(1) == 1


# ----------------------------------------------------------------------------------------------
# STFT
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_fft,hop,win", [(512, 81, None), (256, 64, 200), (2048, 512, None),
                                           (255, 50, None)])
def test_stft_matches_librosa(speech, n_fft, hop, win):
    y, _ = speech
    X = stft(y, n_fft=n_fft, hop_length=hop, win_length=win)
    ref = librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win)
    assert X.shape == ref.shape == (1 + n_fft // 2, 1 + len(y) // hop)  # frames = 1 + L // hop
    np.testing.assert_allclose(X, ref, rtol=REL, atol=1e-9 * np.abs(ref).max())
    back = istft(X, hop_length=hop, win_length=win, n_fft=n_fft, length=len(y))
    np.testing.assert_allclose(back, librosa.istft(ref, hop_length=hop, win_length=win, n_fft=n_fft,
                                                   length=len(y)), atol=1e-9)
    if hop <= (win or n_fft) // 2:
        np.testing.assert_allclose(back, y, atol=1e-9)


def test_stft_float32_and_frame_count():
    y = np.random.default_rng(0).normal(size=4001).astype(np.float32)
    X = stft(y, n_fft=512, hop_length=81)
    assert X.dtype == np.complex64 and X.shape == (257, n_frames(4001, 81)) == (257, 50)
    assert n_frames(4001, 81, n_fft=512, center=False) == 1 + (4001 - 512) // 81


# ----------------------------------------------------------------------------------------------
# Mel scale, filterbank, spectrogram, decibels, MFCC
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("htk", [False, True])
def test_mel_scale_matches_librosa(htk):
    f = np.array([0.0, 20.0, 440.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
    _rel_close(hz_to_mel(f, htk), librosa.hz_to_mel(f, htk=htk), name="hz_to_mel")
    m = hz_to_mel(f, htk)
    _rel_close(mel_to_hz(m, htk), f, rtol=1e-12, name="round trip")
    _rel_close(mel_frequencies(40, 0, 4000, htk),
               librosa.mel_frequencies(40, fmin=0, fmax=4000, htk=htk))
    if not htk:  # Slaney: linear below 1 kHz (3 f / 200), 15 mels at 1 kHz
        assert hz_to_mel(600.0) == pytest.approx(9.0) and hz_to_mel(1000.0) == pytest.approx(15.0)


@pytest.mark.filterwarnings("ignore:.*[Ee]mpty filters")
@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,htk,norm", [
    (8000, 512, 50, 0.0, None, False, "slaney"),
    (22050, 2048, 128, 0.0, None, False, "slaney"),
    (16000, 1024, 40, 20.0, 7600.0, True, "slaney"),
    (8000, 256, 40, 0.0, None, False, None),
    (44100, 4096, 64, 50.0, 12000.0, True, None),
])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    M = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype=np.float64)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                              norm=norm, dtype=np.float64)
    _rel_close(M, ref, name="filterbank")


def test_mel_filterbank_warns_on_empty_filters():
    with pytest.warns(UserWarning, match="empty"):
        mel_filterbank(8000, 64, 64)


@pytest.mark.parametrize("n_mels,hop,htk", [(50, 81, False), (128, 128, False), (40, 64, True)])
def test_melspectrogram_matches_librosa(speech, n_mels, hop, htk):
    y, sr = speech
    S = melspectrogram(y, sr=sr, n_fft=512, hop_length=hop, n_mels=n_mels, htk=htk)
    ref = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=hop, n_mels=n_mels,
                                         htk=htk)
    _rel_close(S, ref, name="melspectrogram")
    P = np.abs(stft(y, n_fft=512, hop_length=hop)) ** 2  # from a power spectrogram too
    _rel_close(melspectrogram(S=P, sr=sr, n_mels=n_mels, htk=htk), ref, name="from S")


@pytest.mark.parametrize("ref,amin,top_db", [(1.0, 1e-10, 80.0), (np.max, 1e-10, 80.0),
                                             (np.max, 1e-5, None), (2.5, 1e-10, 40.0)])
def test_power_to_db_matches_librosa(speech, ref, amin, top_db):
    y, sr = speech
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=81, n_mels=50)
    ours = power_to_db(S, ref=ref, amin=amin, top_db=top_db)
    theirs = librosa.power_to_db(S, ref=ref, amin=amin, top_db=top_db)
    _rel_close(ours, theirs, name="power_to_db")
    if top_db is None and not callable(ref):
        _rel_close(db_to_power(ours, ref=ref), np.maximum(S, amin), name="db_to_power")
    with pytest.raises(ValueError):
        power_to_db(S, amin=0)


@pytest.mark.parametrize("hop,time_constant", [(81, 0.4), (160, 0.06)])
def test_pcen_matches_librosa(speech, hop, time_constant):
    """Equations (7)-(8) against librosa.pcen, given the same start of the smoother (ours: the
    first frame's level; librosa's default would be 1)."""
    y, sr = speech
    E = librosa.feature.melspectrogram(y=y * 2.0 ** 31, sr=sr, n_fft=512, hop_length=hop,
                                       n_mels=50, power=1.0)
    t = time_constant * sr / hop
    b = (np.sqrt(1 + 4 * t ** 2) - 1) / (2 * t ** 2)
    theirs = librosa.pcen(E, sr=sr, hop_length=hop, time_constant=time_constant,
                          zi=(1 - b) * E[:, :1])
    _rel_close(pcen(E, sr, hop, time_constant=time_constant), theirs, name="pcen")
    with pytest.raises(ValueError, match="non-negative"):
        pcen(-E, sr, hop)


def test_pcen_features_shape_and_level(speech):
    """The pcen image has the dB image's shape; the recording level barely matters (a band is
    divided by its own level to the power 0.98): the same clip 20 dB louder gives nearly the
    same image."""
    y, sr = speech
    y = y.astype(np.float32)
    for mode in ("stretch", "fixed"):
        cfg = FeatureConfig(sr=sr, scale="pcen", time_mode=mode)
        X = extract(y, cfg)
        assert X.shape == cfg.shape and X.dtype == np.float32 and np.all(np.isfinite(X))
        assert X.min() >= 0.0 and X.std() > 0.1
        louder = extract(10 * y, cfg)
        assert np.abs(louder - X).mean() < 0.1 * np.abs(X).mean()
    assert not np.allclose(X, extract(y, FeatureConfig(sr=sr, time_mode="fixed")))
    with pytest.raises(ValueError, match="scale"):
        FeatureConfig(scale="log")


@pytest.mark.parametrize("n_mfcc,n_mels,lifter", [(13, 50, 0), (20, 40, 0), (20, 128, 22)])
def test_mfcc_matches_librosa(speech, n_mfcc, n_mels, lifter):
    y, sr = speech
    kw = dict(n_fft=512, hop_length=100, n_mels=n_mels)
    ours = mfcc(y, sr=sr, n_mfcc=n_mfcc, lifter=lifter, **kw)
    theirs = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, lifter=lifter, **kw)
    _rel_close(ours, theirs, name="mfcc")


def test_dct_matrix_is_orthonormal_dct_ii():
    D = dct_matrix(30, 30)
    np.testing.assert_allclose(D @ D.T, np.eye(30), atol=1e-12)
    S = np.random.default_rng(0).normal(size=(30, 7))
    np.testing.assert_allclose(D @ S, scipy.fft.dct(S, type=2, norm="ortho", axis=0), atol=1e-12)
    np.testing.assert_allclose(inverse_mfcc(mfcc(S=S, n_mfcc=30), 30), S, atol=1e-12)
    with pytest.raises(ValueError):
        dct_matrix(31, 30)


# ----------------------------------------------------------------------------------------------
# Feature pipeline
# ----------------------------------------------------------------------------------------------
def test_hop_length_for_the_seed_example():
    # 4000 samples into 50 frames: hop 81 gives 1 + 4000 // 81 = 50. The seed's floor((L+1)/y) = 80
    # would give 1 + 4000 // 80 = 51.
    assert hop_length_for(4000, 50) == 81 and 1 + 4000 // 81 == 50
    assert 1 + 4000 // ((4000 + 1) // 50) == 51
    assert hop_length_for(10, 1) == 11
    with pytest.raises(ValueError, match="no hop_length"):
        hop_length_for(1152, 50, exact=True)  # 0.144 s at 8 kHz: too short for exactly 50 frames


@given(L=st.integers(1, 40000), y=st.integers(2, 80))
def test_hop_length_for_is_exact_when_long_enough(L, y):
    hop = hop_length_for(L, y)
    frames = 1 + L // hop
    if L >= y * (y - 1):
        assert frames == y
    elif L >= y - 1:
        assert frames >= y  # the surplus is cropped by fit_frames
    else:
        assert hop == 1 and frames == L + 1  # too short even for hop 1: fit_frames pads


def test_fit_frames_pads_and_crops():
    S = np.arange(12.0).reshape(3, 4)
    assert fit_frames(S, 4) is S
    np.testing.assert_array_equal(fit_frames(S, 2), S[:, :2])
    padded = fit_frames(S, 6)
    assert padded.shape == (3, 6) and np.all(padded[:, 4:] == 0.0)  # S's minimum


@pytest.mark.parametrize("kind,height", [("mel", 50), ("mfcc", 20), ("both", 70)])
@pytest.mark.parametrize("mode", ["stretch", "fixed"])
def test_extract_shapes(speech, kind, height, mode):
    y, sr = speech
    cfg = FeatureConfig(kind=kind, sr=sr, time_mode=mode)
    X = extract(y.astype(np.float32), cfg)
    assert X.shape == (height, 50) == cfg.shape and X.dtype == np.float32
    assert np.all(np.isfinite(X))
    if kind == "mel":
        # dB relative to the maximum, top_db 80
        assert X.max() == pytest.approx(0.0, abs=1e-5) and X.min() >= -80.0 - 1e-4
    short = extract(np.random.default_rng(0).normal(size=900).astype(np.float32) * 0.1, cfg)
    assert short.shape == cfg.shape


def test_extract_mel_matches_librosa_pipeline(speech):
    """The 'stretch' pipeline on an untrimmed clip is librosa's melspectrogram + power_to_db."""
    y, sr = speech
    cfg = FeatureConfig(sr=sr, trim_db=None)
    hop = hop_length_for(len(y), 50)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=hop,
                                                             n_mels=50), ref=np.max, top_db=80.0)
    _rel_close(extract(y, cfg), fit_frames(ref, 50).astype(np.float32), rtol=1e-3, name="features")


def test_feature_config_validation_and_round_trip():
    cfg = FeatureConfig(kind="both", n_mfcc=13)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="kind"):
        FeatureConfig(kind="chroma")
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureConfig(kind="mfcc", n_mfcc=60, n_mels=50)


@pytest.mark.parametrize("per", ["band", "pixel", "global"])
def test_standardizer_uses_training_statistics_only(per):
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(200, 4, 5)).astype(np.float32)
    test = rng.normal(100.0, 1.0, size=(10, 4, 5)).astype(np.float32)
    norm = Standardizer(per).fit(train)
    z = norm.transform(train)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 0.05
    assert float(norm.transform(test).mean()) > 20  # test statistics were not used
    again = Standardizer.from_arrays(per, **{k.split("_")[1]: v for k, v in norm.arrays().items()})
    np.testing.assert_array_equal(again.transform(test), norm.transform(test))
    with pytest.raises(RuntimeError):
        Standardizer(per).transform(test)


# ----------------------------------------------------------------------------------------------
# WAV input/output and bad input
# ----------------------------------------------------------------------------------------------
def test_write_read_resample_round_trip(tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    y = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = write_wav(tmp_path / "a.wav", y, sr)
    back, sr2 = read_wav(path)
    assert sr2 == sr and back.dtype == np.float32 and back.shape == y.shape
    np.testing.assert_allclose(back, y, atol=1e-4)  # PCM_16
    down, sr3 = read_wav(path, sr=8000)
    assert sr3 == 8000 and down.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(down))
    assert abs(np.argmax(spectrum) * 8000 / down.size - 440) <= 1  # the tone survives
    assert resample(y, 16000, 44100).shape == (44100,)


def test_trim_silence_matches_librosa(speech):
    y, _ = speech
    padded = np.concatenate([np.zeros(3000), y, 1e-5 * np.ones(2000)])
    for top_db in (20, 30, 60):
        ours = trim_silence(padded, top_db, 256, 64)[1]
        theirs = tuple(int(v) for v in librosa.effects.trim(padded, top_db=top_db, frame_length=256,
                                                            hop_length=64)[1])
        assert ours == theirs
    # all zeros: every frame is at the (amin-floored) maximum, so nothing is cut, as in librosa;
    # load_clip refuses silent files before trimming
    assert trim_silence(np.zeros(1000))[1] == (0, 1000)


def test_pad_or_trim():
    y = np.arange(10.0)
    np.testing.assert_array_equal(pad_or_trim(y, 4, "left"), y[:4])
    np.testing.assert_array_equal(pad_or_trim(y, 4), y[3:7])
    assert pad_or_trim(y, 15).tolist() == [0, 0] + list(range(10)) + [0, 0, 0]
    with pytest.raises(ValueError):
        pad_or_trim(y, 0)


@pytest.fixture
def bad_files(tmp_path):
    sr = 8000
    t = np.arange(sr) / sr
    tone = 0.3 * np.sin(2 * np.pi * 300 * t)
    files = {}
    files["stereo"] = tmp_path / "stereo.wav"
    sf.write(files["stereo"], np.stack([tone, tone], axis=1), sr)
    files["silent"] = tmp_path / "silent.wav"
    sf.write(files["silent"], np.zeros(sr), sr)
    files["quiet"] = tmp_path / "quiet.wav"
    sf.write(files["quiet"], 1e-4 * tone, sr)
    files["empty"] = tmp_path / "empty.wav"
    sf.write(files["empty"], np.zeros(0), sr)
    files["long"] = tmp_path / "long.wav"
    sf.write(files["long"], np.tile(tone, 12), sr)
    files["garbage"] = tmp_path / "garbage.wav"
    files["garbage"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really a wav file")
    files["text"] = tmp_path / "notes.wav"
    files["text"].write_text("hello")
    return files


@pytest.mark.parametrize("kind,pattern", [
    ("stereo", "2 channels.*mono.*downmix"),
    ("silent", "silent.*all zeros"),
    ("quiet", "silent.*peak"),
    ("empty", "no audio samples"),
    ("long", r"12\.0 s long.*10 s allowed"),
    ("garbage", "not a readable audio file"),
    ("text", "not a readable audio file"),
])
def test_bad_input_errors_are_clear(bad_files, kind, pattern):
    with pytest.raises(AudioError, match=pattern) as info:
        load_clip(bad_files[kind], sr=8000, max_seconds=10.0)
    assert str(bad_files[kind]) in str(info.value)  # the message names the file


def test_missing_file_and_downmix(bad_files, tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="folder"):
        read_wav(tmp_path)
    y, sr = read_wav(bad_files["stereo"], downmix=True)
    assert y.ndim == 1 and sr == 8000
    with pytest.raises(AudioError, match="silent"):
        check_not_silent(np.zeros(10))
    with pytest.raises(AudioError, match="empty"):
        write_wav(tmp_path / "x.wav", np.zeros(0), 8000)


def test_load_clip_resamples_and_trims(tmp_path, speech):
    y, sr = speech
    y44 = resample(y, sr, 44100)
    path = tmp_path / "user.wav"
    sf.write(path, np.concatenate([np.zeros(20000), y44, np.zeros(30000)]), 44100)
    clip = load_clip(path, sr=8000)
    assert clip.dtype == np.float32
    assert 0.5 * len(y) < len(clip) <= len(y) + 200  # the 1.1 s of silence is gone


# ----------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------
def test_parse_name():
    assert fsdd.parse_name("7_jackson_32.wav") == (7, "jackson", 32)
    assert fsdd.parse_name("/x/y/0_yweweler_0.wav") == (0, "yweweler", 0)
    for bad in ("jackson_7_32.wav", "7_jackson.wav", "12_x_1.wav", "7_jackson_32.mp3"):
        with pytest.raises(ValueError, match="not an FSDD file name"):
            fsdd.parse_name(bad)


@needs_fsdd
def test_fsdd_listing_and_splits():
    recs = fsdd.list_recordings(FSDD)
    assert len(recs) == 3000 and len(fsdd.speaker_names(recs)) == 6
    train, test = fsdd.official_split(recs)
    assert len(train) == 2700 and len(test) == 300
    assert all(recs[i].index < 5 for i in test) and all(recs[i].index >= 5 for i in train)
    splits = fsdd.loso_splits(recs)
    assert len(splits) == 6
    for name, tr, te in splits:
        assert len(te) == 500 and len(tr) == 2500
        assert {recs[i].speaker for i in te} == {name} and name not in {recs[i].speaker for i in tr}
    rows = fsdd.read_speakers(FSDD)
    assert {r["speaker"] for r in rows} == set(fsdd.speaker_names(recs))


def test_kfold_is_a_stratified_partition():
    idx = np.arange(100, 200)
    labels = np.repeat(np.arange(10), 10)
    folds = fsdd.kfold(idx, labels, k=5, seed=3)
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == idx.tolist()
    for tr, va in folds:
        assert len(va) == 20 and not set(tr) & set(va)
        assert np.all(np.bincount(labels[va - 100], minlength=10) == 2)
    with pytest.raises(ValueError):
        fsdd.kfold(idx, labels, k=1)


def test_resolve_root_flag_env_default(tmp_path, monkeypatch):
    (tmp_path / "recordings").mkdir()
    monkeypatch.setenv(fsdd.ENV_VAR, str(tmp_path))
    assert fsdd.resolve_root() == str(tmp_path)
    assert fsdd.resolve_root(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv(fsdd.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=f"{fsdd.ENV_VAR}"):
        fsdd.resolve_root()
    monkeypatch.delenv(fsdd.ENV_VAR)
    assert fsdd.DEFAULT_ROOT.endswith(os.path.join("shared", "data", "fsdd"))


@needs_fsdd
def test_extract_many_on_real_recordings():
    recs = [r for r in fsdd.list_recordings(FSDD) if r.index == 0][:12]
    cfg = FeatureConfig()
    X = extract_many([read_wav(r.path, sr=cfg.sr)[0] for r in recs], cfg)
    assert X.shape == (12, 50, 50) and np.all(np.isfinite(X))
