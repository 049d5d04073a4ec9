"""`predict` on real recordings: other rates, stereo, 24-bit and float WAVs, noise around the word.

A small MLP is trained here on a slice of FSDD (seconds). A few FSDD files are converted with
the project's own resampler (apps/audio/wav.resample) to 22.05 kHz, 44.1 kHz, stereo, 24-bit
and float WAVs (written by soundfile), or placed inside several seconds of noise; predict must
give the same digit as on the 8 kHz mono original. Silence, clipping only, steady noise and
over-long files are refused with one line naming the file and the reason.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from apps import spoken_digits as sd
from apps.audio.features import FeatureConfig
from apps.audio.recording import clipped_share, find_word, load_word
from apps.audio.wav import AudioError, read_wav, resample
from apps.digits.data import DIGITS, load_dataset
from apps.digits.evaluate import predict_files
from apps.digits.model import HParams, fit_normaliser, prepare, save_model
from apps.digits.train import train_model
from conftest import SHARED_DATA

FSDD = os.path.join(SHARED_DATA, "fsdd")
REC = os.path.join(FSDD, "recordings")
pytestmark = pytest.mark.skipif(not os.path.isdir(REC), reason="FSDD not found")
# one file per speaker, six digits; indices 5-7 are in the model's training slice
FILES = ["0_george_6.wav", "3_jackson_7.wav", "5_lucas_6.wav", "7_nicolas_7.wav",
         "8_theo_5.wav", "9_yweweler_6.wav"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An MLP trained on recordings 0-7 of every speaker and digit (480 files, a few seconds)."""
    ds = load_dataset(FSDD, FeatureConfig(), limit_per_class=8, progress=False,
                      log=lambda *a: None)
    hp = HParams(model="mlp", hidden=(64,), epochs=25, lr=3e-3, batch_size=32, dropout=0.1)
    norm = fit_normaliser(hp, ds.X)
    model, _ = train_model(hp, prepare(hp, norm, ds.X), ds.digits, 10, progress=False, log=None)
    return save_model(str(tmp_path_factory.mktemp("digits") / "model.npz"), model, hp, ds.cfg,
                      norm, "digit", DIGITS)


def _variants(tmp_path, name):
    """The FSDD file converted every way a user's recording may differ: {label: path}."""
    y, sr = sf.read(os.path.join(REC, name))
    stem = name[:-4]
    rng = np.random.default_rng(0)
    out = {}

    def write(label, data, rate, subtype):
        path = str(tmp_path / f"{stem}_{label}.wav")
        sf.write(path, data, rate, subtype=subtype)
        out[label] = path

    write("22k", resample(y, sr, 22050), 22050, "PCM_16")
    write("44k", resample(y, sr, 44100), 44100, "PCM_16")
    write("stereo", np.stack([0.9 * y, 0.6 * y], axis=1), sr, "PCM_16")
    write("24bit", resample(y, sr, 16000), 16000, "PCM_24")
    y48 = resample(y, sr, 48000)
    write("float_stereo", np.stack([y48, 0.8 * y48], axis=1), 48000, "FLOAT")
    # 4 s of room noise at -50 dBFS with the word at 1.5 s, 44.1 kHz, 24-bit
    y44 = resample(y, sr, 44100)
    noise = 10 ** (-50 / 20) * np.sqrt(2) * rng.standard_normal(4 * 44100)
    start = int(1.5 * 44100)
    noise[start:start + len(y44)] += y44
    write("in_noise", noise, 44100, "PCM_24")
    return out


def test_predict_gives_the_same_digit_on_converted_recordings(tmp_path, ckpt):
    originals = [os.path.join(REC, f) for f in FILES]
    res, fails, _ = predict_files(originals, ckpt)
    assert not fails
    base = {path: ranked[0][0] for path, ranked, _ in res}
    truth = {os.path.join(REC, f): f[0] for f in FILES}
    assert sum(base[p] == truth[p] for p in originals) >= 5, base  # the model learned them
    checked = 0
    for f, orig in zip(FILES, originals):
        variants = _variants(tmp_path, f)
        res, fails, _ = predict_files(list(variants.values()), ckpt)
        assert not fails, [str(e) for _, e in fails]
        for (path, ranked, notes), label in zip(res, variants):
            assert path == variants[label]
            assert ranked[0][0] == base[orig], (label, f, ranked, base[orig])
            assert len(ranked) == 3 and ranked[0][1] >= ranked[1][1] >= ranked[2][1]
            if "stereo" in label:
                assert any("2 channels averaged to mono" in n for n in notes), notes
            checked += 1
    assert checked == 6 * len(FILES)


def test_the_energy_detector_finds_the_word_inside_seconds_of_noise():
    y, sr = read_wav(os.path.join(REC, "3_jackson_7.wav"))
    rng = np.random.default_rng(1)
    clip = 0.003 * rng.standard_normal(6 * sr)
    at = 2 * sr
    clip[at:at + len(y)] += y
    (s0, s1), info = find_word(clip, sr)
    core = read_wav(os.path.join(REC, "3_jackson_7.wav"))[0]
    on = np.flatnonzero(np.abs(core) > 0.1 * np.abs(core).max())  # the loud part of the word
    assert s0 <= at + on[0] and s1 >= at + on[-1]
    assert s1 - s0 < len(y) + int(0.5 * sr)  # the seconds of noise are gone
    assert info["peak_db"] - info["floor_db"] > 20


def _write(path, data, sr=8000, subtype="PCM_16"):
    sf.write(str(path), data, sr, subtype=subtype)
    return str(path)


def test_refusals_are_one_line_naming_the_file_and_the_reason(tmp_path, ckpt, capsys):
    y, sr = read_wav(os.path.join(REC, "7_nicolas_7.wav"))
    rng = np.random.default_rng(2)
    t = np.arange(2 * sr) / sr
    cases = {
        "silence.wav": (_write(tmp_path / "silence.wav", np.zeros(sr)), "silent"),
        "whisper.wav": (_write(tmp_path / "whisper.wav", 1e-4 * rng.standard_normal(sr)),
                        "silent"),
        "square.wav": (_write(tmp_path / "square.wav", 0.99 * np.sign(np.sin(2 * np.pi * 3 * t))),
                       "clipping only"),
        "overdriven.wav": (_write(tmp_path / "overdriven.wav",
                                  np.clip(100 * y / np.abs(y).max(), -1, 1)), "clipping only"),
        "hiss.wav": (_write(tmp_path / "hiss.wav", 0.1 * rng.standard_normal(2 * sr)),
                     "no word stands out"),
        "hum.wav": (_write(tmp_path / "hum.wav", 0.3 * np.sin(2 * np.pi * 50 * t)),
                    "no word stands out"),
        "long.wav": (_write(tmp_path / "long.wav", np.tile(y, int(11 * sr / len(y)) + 1)),
                     "more than the 10 s allowed"),
    }
    for name, (path, reason) in cases.items():
        rc = sd.main(["predict", path, "--checkpoint", ckpt])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
        assert rc == 2 and len(err) == 1, (name, err)
        assert path in err[0] and reason in err[0], (name, err)
    # a normal recording with a little clipping is classified, with a note
    mild = _write(tmp_path / "mild.wav", np.clip(1.5 * y / np.abs(y).max(), -1, 1))
    assert 0.01 < clipped_share(read_wav(mild)[0]) < 0.5
    assert sd.main(["predict", mild, "--checkpoint", ckpt]) == 0
    assert "clips" in capsys.readouterr().err
    with pytest.raises(AudioError, match="more than the 3 s allowed"):
        load_word(cases["long.wav"][0], 8000, max_seconds=3)


def test_predict_cli_json_notes_and_mono_only(tmp_path, ckpt, capsys):
    y, sr = sf.read(os.path.join(REC, "5_lucas_6.wav"))
    y44 = resample(y, sr, 44100)
    stereo = _write(tmp_path / "stereo.wav", np.stack([y44, 0.5 * y44], axis=1), 44100)
    rc = sd.main(["predict", stereo, "--checkpoint", ckpt, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "note: " in err and "averaged to mono" in err and "resampled from 44100 Hz" in err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"{stereo}: digit ") and "then" in lines[0]
    doc = json.loads(lines[-1])
    assert doc[0]["file"] == stereo and len(doc[0]["ranking"]) == 3
    assert sum(p for _, p in doc[0]["ranking"]) <= 1.0 + 1e-9
    assert any("averaged" in n for n in doc[0]["notes"])
    assert sd.main(["predict", stereo, "--checkpoint", ckpt, "--mono-only"]) == 2
    assert "2 channels (stereo)" in capsys.readouterr().err


def test_predict_help_says_how_to_record(capsys):
    with pytest.raises(SystemExit):
        sd.main(["predict", "--help"])
    text = capsys.readouterr().out
    assert "arecord -f S16_LE -r 16000 -c 1" in text and "rec -c 1" in text
