"""Issue 22's findings, one test each: bad input ends in a documented error (``error: ...`` and
exit code 2 from a CLI), never a traceback, and leaves nothing behind on the disk."""
from __future__ import annotations

import json
import os
import re
import struct

import mido
import numpy as np
import pytest
import soundfile as sf

import nnscratch as nn
from apps import abc_lstm, spoken_digits
from apps.abc_tunes.data import load_prepared, prepare
from apps.abc_tunes.sample import decode_prime, load_model
from apps.audio.wav import AudioError, read_wav
from apps.common.errors import UsageError
from apps.digits.model import load_model as load_digits_model
from apps.music.abc_meter import BarTracker, fitting_share
from apps.music.abc_text import AbcInputError, canonical_tune, prepare_corpus, read_tunes
from apps.music.midi import MidiError, read_midi
from conftest import SHARED_DATA
from fuzzing import abc_checkpoint, digits_checkpoint, snapshot

TUNE = "X:1\nT:Test\nM:4/4\nL:1/8\nK:D\nABcd efga|bagf edcB|\n"
RECORDINGS = os.path.join(SHARED_DATA, "fsdd", "recordings")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert lines, err
    return lines[-1]


# ----------------------------------------------------------------------------------------------
# MIDI
# ----------------------------------------------------------------------------------------------
def _midi_with(tmp_path, *meta) -> str:
    mf = mido.MidiFile()
    track = mido.MidiTrack()
    mf.tracks.append(track)
    track.extend(meta)
    track.append(mido.Message("note_on", note=60, velocity=90, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=480))
    path = str(tmp_path / "song.mid")
    mf.save(path)
    return path


def test_midi_tempo_of_zero_is_a_midi_error(tmp_path):
    path = _midi_with(tmp_path, mido.MetaMessage("set_tempo", tempo=0))
    with pytest.raises(MidiError, match="tempo of 0 microseconds per beat"):
        read_midi(path)


def test_midi_time_signature_without_beats_is_a_midi_error(tmp_path):
    path = _midi_with(tmp_path, mido.MetaMessage("time_signature", numerator=0, denominator=4))
    with pytest.raises(MidiError, match="0/4 at beat 0 has no beats in a bar"):
        read_midi(path)


def test_midi_key_signature_mido_cannot_decode_is_a_midi_error(tmp_path):
    """Found by the fuzz test: a key of 127 sharps raised mido's KeySignatureError."""
    track = (b"\x00\xff\x59\x02\x7f\x00"                  # key signature: 127 sharps, major
             b"\x00\x90\x3c\x50\x83\x60\x80\x3c\x00"       # one note
             b"\x00\xff\x2f\x00")                          # end of track
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track))
    path = tmp_path / "key.mid"
    path.write_bytes(data + track)
    with pytest.raises(MidiError, match="127 sharps"):
        read_midi(str(path))


# ----------------------------------------------------------------------------------------------
# ABC text and tunes.jsonl
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["M:0/0", "M:1/0", "M:0/4", "L:1/0", "L:0/8"])
def test_abc_meter_or_unit_with_a_zero_is_dropped_like_any_unreadable_field(field):
    tune = canonical_tune(f"X:1\n{field}\nK:D\nABcd efga|\n")
    kind = field[0]
    assert tune is not None and f"\n{field}\n" not in tune
    header = dict(line.split(":", 1) for line in tune.splitlines()[:4])
    assert header[kind] == ("none" if kind == "M" else "1/8")
    assert fitting_share(tune) is not None
    # in the body, after the music has started, a zero meter is dropped too
    assert "M:1/0" not in canonical_tune("X:1\nM:4/4\nK:D\nABcd|\nM:1/0\nefga|\n")


def test_bar_tracker_reads_a_length_with_a_zero_denominator_as_broken():
    tracker = BarTracker().feed_text("X:1\nM:4/4\nL:1/8\nK:D\na/0 b|\n")
    assert tracker.broken


@pytest.mark.parametrize("value,kind", [("null", "null"), ("3", "a number"), ("[1]", "an array"),
                                        ("{}", "an object"), ("true", "a boolean")])
def test_tunes_jsonl_abc_field_that_is_not_text_is_an_input_error(tmp_path, value, kind):
    path = tmp_path / "tunes.jsonl"
    path.write_text(json.dumps({"abc": TUNE}) + "\n" + '{"abc": ' + value + "}\n")
    with pytest.raises(AbcInputError, match=rf"tunes.jsonl:2: the 'abc' field is {kind}"):
        read_tunes(str(path))


def test_tunes_jsonl_nested_beyond_the_parser_is_an_input_error(tmp_path):
    path = tmp_path / "tunes.jsonl"
    path.write_text("[" * 100_000 + "\n")
    with pytest.raises(AbcInputError, match="tunes.jsonl:1: not a JSON object"):
        read_tunes(str(path))


def test_a_corpus_of_one_tune_is_refused_with_the_real_reason(tmp_path):
    path = tmp_path / "one.abc"
    path.write_text(TUNE)
    with pytest.raises(AbcInputError, match="only one usable ABC tune.*at least two"):
        prepare_corpus(str(path))
    rc = abc_lstm.main(["prepare", "--data", str(path), "--out", str(tmp_path / "out")])
    assert rc == 2 and not (tmp_path / "out").exists()


def test_a_tiny_corpus_keeps_a_tune_on_each_side(tmp_path):
    """Two usable tunes after an unusable first one: the first usable tune is held out (the
    every-20th rule alone would leave validation empty, and the trainer divides by its size)."""
    path = tmp_path / "few.abc"
    path.write_text("X:1\nT:no key, no music\n\n" + TUNE + "\n" + TUNE.replace("ABcd", "dcBA"))
    corpus = prepare_corpus(str(path))
    assert len(corpus.train) == 1 and len(corpus.val) == 1 and len(corpus.dropped) == 1
    assert "dcBA" in corpus.train[0]
    twenty_apart = "\n".join([TUNE] + ["X:1\nT:none\n"] * 19 + [TUNE])  # tunes 0 and 20 only
    (tmp_path / "apart.abc").write_text(twenty_apart)
    corpus = prepare_corpus(str(tmp_path / "apart.abc"))
    assert len(corpus.train) == 1 and len(corpus.val) == 1


def test_prepare_out_naming_a_file_or_an_unwritable_place(tmp_path, capsys):
    data = tmp_path / "two.abc"
    data.write_text(TUNE + "\n" + TUNE)
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    for out, message in ((a_file, "is a file, not a folder"),
                         (a_file / "sub", "Not a directory"),
                         ("/proc/no_such_folder", "No such file or directory")):
        before = snapshot(tmp_path)
        assert abc_lstm.main(["prepare", "--data", str(data), "--out", str(out)]) == 2
        assert message in _error_line(capsys)
        assert snapshot(tmp_path) == before


def test_damaged_prepared_data_is_an_input_error(tmp_path):
    prepare_dir = tmp_path / "data"
    (tmp_path / "two.abc").write_text(TUNE + "\n" + TUNE)
    prepare(str(tmp_path / "two.abc"), str(prepare_dir), log=lambda *_: None)
    for content in ("{not json", "[1, 2]", '{"itos": "abc"}', '{"itos": [1, 2]}'):
        (prepare_dir / "vocab.json").write_text(content)
        with pytest.raises(AbcInputError, match="damaged prepared data"):
            load_prepared(str(prepare_dir))
    (prepare_dir / "train.txt").write_bytes(b"X:1\n\xff\xfe")
    with pytest.raises(AbcInputError, match="UnicodeDecodeError"):
        load_prepared(str(prepare_dir))


# ----------------------------------------------------------------------------------------------
# abc_lstm.py sample
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def abc_ckpt(tmp_path_factory):
    return abc_checkpoint(str(tmp_path_factory.mktemp("abc") / "best.npz"))


@pytest.mark.parametrize("args,message", [
    (["--prime", "\\"], "--prime '\\\\': bad escape sequence"),
    (["--prime", ""], "the prime must hold at least one character"),
    (["--prime", "X:1\\udcff"], "not UTF-8 text"),
    (["--temperature", "0"], "argument --temperature"),
    (["--temperature", "-1"], "argument --temperature"),
    (["--temperature", "nan"], "argument --temperature"),
    (["--n", "0"], "argument --n"),
    (["--n", "-3"], "argument --n"),
    (["--n", "99999999999999999999"], "at most 10,000 per call"),  # filled the memory
])
def test_odd_sampling_arguments_end_in_one_error_line(abc_ckpt, tmp_path, capsys, args, message):
    out = tmp_path / "samples"
    try:
        rc = abc_lstm.main(["sample", "--checkpoint", abc_ckpt, "--out", str(out), *args])
    except SystemExit as exc:  # refused by argparse
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: " in err and message in err, err
    assert not out.exists()


def test_a_prime_beyond_latin_1_keeps_its_characters():
    """The escapes are read, the characters are not re-encoded ('é' was 'Ã©', '€' 'â\\x82¬')."""
    assert decode_prime("X:1\\nT:Café €\\u00e9\\n") == "X:1\nT:Café €é\n"
    with pytest.raises(UsageError, match="bad escape"):
        decode_prime("X:1\\")


def test_an_abc_checkpoint_whose_config_cannot_rebuild_the_model_is_a_checkpoint_error(
        abc_ckpt, tmp_path):
    ck = nn.load_checkpoint(abc_ckpt)
    for bad_model in ({"vocab_size": "x"}, {"vocab_size": 5, "hidden": -1}, [1, 2],
                      dict(ck.config["model"], colour=1)):
        path = str(tmp_path / "bad.npz")
        nn.save_checkpoint(path, config=dict(ck.config, model=bad_model))
        with pytest.raises(nn.CheckpointError, match="damaged ABC LSTM checkpoint"):
            load_model(path)
    path = str(tmp_path / "other_vocab.npz")
    nn.save_checkpoint(path, config=dict(ck.config, vocab={"itos": ["<unk>", "a"]}))
    with pytest.raises(nn.CheckpointError, match="a vocabulary of 2 entries"):
        load_model(path)


# ----------------------------------------------------------------------------------------------
# spoken_digits.py
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    return digits_checkpoint(str(tmp_path_factory.mktemp("digits") / "model.npz"))


@pytest.mark.parametrize("which,message", [("missing", "checkpoint not found"),
                                           ("text", "not a readable nnscratch checkpoint"),
                                           ("abc", "not a spoken_digits checkpoint")])
def test_predict_with_a_missing_or_foreign_checkpoint_is_one_error_line(tmp_path, capsys, which,
                                                                        message, abc_ckpt):
    path = {"missing": str(tmp_path / "none.npz"), "abc": abc_ckpt,
            "text": str(tmp_path / "notes.txt")}[which]
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    wav = os.path.join(RECORDINGS, "7_jackson_32.wav")
    assert spoken_digits.main(["predict", wav, "--checkpoint", path]) == 2
    assert message in _error_line(capsys)


def test_one_bad_file_in_a_batch_does_not_stop_the_good_ones(tmp_path, capsys, digits_ckpt):
    good = [os.path.join(RECORDINGS, f) for f in ("7_jackson_32.wav", "0_george_0.wav")]
    (tmp_path / "text.wav").write_text("not audio")
    silent = str(tmp_path / "silent.wav")
    sf.write(silent, np.zeros(4000), 8000)
    files = [good[0], str(tmp_path / "text.wav"), str(tmp_path / "missing.wav"), good[1], silent]
    rc = spoken_digits.main(["predict", *files, "--checkpoint", digits_ckpt, "--json"])
    assert rc == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert [ln.split(":")[0] for ln in captured.out.splitlines()[:2]] == good
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 3
    for name, what in (("text.wav", "not a readable audio file"), ("missing.wav", "no such file"),
                       ("silent.wav", "silent")):
        assert any(name in e and what in e for e in errors), errors
    assert "3 of 5 files could not be classified" in captured.err
    ranked = json.loads(captured.out.splitlines()[-1])
    assert [r["file"] for r in ranked if "ranking" in r] == good
    assert sum("error" in r for r in ranked) == 3


def test_a_digits_checkpoint_whose_config_cannot_rebuild_the_model_is_a_checkpoint_error(
        digits_ckpt, tmp_path):
    ck = nn.load_checkpoint(digits_ckpt)
    for change in ({"hparams": [1]}, {"features": {"kind": "loud"}}, {"classes": []},
                   {"norm_per": "sideways"}, {"task": None}):
        path = str(tmp_path / "bad.npz")
        nn.save_checkpoint(path, config={**ck.config, **change}, arrays=ck.arrays)
        with pytest.raises(nn.CheckpointError, match="damaged spoken_digits checkpoint"):
            load_digits_model(path)
    nn.save_checkpoint(path, config=ck.config, arrays={"norm_mean": np.zeros((3, 1)),
                                                       "norm_std": np.ones((3, 1))})
    with pytest.raises(nn.CheckpointError, match="standardisation statistics of shape"):
        load_digits_model(path)


@pytest.mark.parametrize("args,message", [
    (["--limit", "5"], "every recording is in the official split's test set"),
    (["--limit", "1", "--split", "loso", "--val-fraction", "0.01"], "too few to split into 100"),
    (["--limit", "6", "--cv", "61"], "60 training recordings, too few to split into 61 folds"),
])
def test_train_with_a_limit_too_small_for_the_split_is_refused_before_any_work(
        tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert spoken_digits.main(["train", *args, "--out", str(out), "--no-progress"]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()  # refused before the run folder is made


# ----------------------------------------------------------------------------------------------
# WAV
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("peak", [1e30, 1.5, -2.0])
def test_a_float_wav_beyond_full_scale_is_refused_naming_the_peak(tmp_path, peak):
    path = str(tmp_path / "loud.wav")
    y = np.linspace(-0.5, 0.5, 800)
    y[100] = peak
    sf.write(path, y, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=re.escape(f"samples reach {abs(peak):.6g}, outside")):
        read_wav(path)
    sf.write(path, np.clip(y, -1, 1), 8000, subtype="FLOAT")
    assert np.abs(read_wav(path)[0]).max() == 1.0


def test_a_damaged_feature_cache_is_computed_again(tmp_path):
    from apps.audio.features import FeatureConfig
    from apps.digits.data import load_dataset

    fsdd_root = os.path.join(SHARED_DATA, "fsdd")
    first = load_dataset(fsdd_root, FeatureConfig(), limit_per_class=1, cache_dir=str(tmp_path),
                         progress=False, log=lambda *_: None)
    (cache,) = os.listdir(tmp_path)  # written atomically: no temporary left
    (tmp_path / cache).write_bytes(b"PK\x03\x04 cut short")
    again = load_dataset(fsdd_root, FeatureConfig(), limit_per_class=1, cache_dir=str(tmp_path),
                         progress=False, log=lambda *_: None)
    np.testing.assert_array_equal(first.X, again.X)
    assert os.listdir(tmp_path) == [cache]


@pytest.mark.parametrize("rate", [33_333_331, 500])
def test_a_wav_header_with_an_absurd_sample_rate_is_refused_before_resampling(tmp_path, rate):
    """Found by the fuzz test: a damaged header claiming 33 MHz made the resampler allocate
    gigabytes (MemoryError, or the kernel's OOM killer)."""
    path = str(tmp_path / "odd.wav")
    sf.write(path, np.linspace(-0.5, 0.5, 800), rate, subtype="PCM_16")
    with pytest.raises(AudioError, match=f"a sample rate of {rate} Hz, outside the 1000-384000"):
        read_wav(path, sr=16000)


def test_a_refused_train_leaves_no_run_folder(tmp_path, capsys):
    from apps import abc_lstm  # noqa: PLC0415

    two = tmp_path / "two.abc"
    two.write_text("X:1\nM:4/4\nL:1/8\nK:G\nABcd efga|\n\nX:2\nM:4/4\nL:1/8\nK:G\nGABc defg|\n")
    out = tmp_path / "run"
    assert abc_lstm.main(["train", "--data", str(two), "--out", str(out), "--seq", "100000",
                          "--quiet"]) == 2
    assert "fewer than a window" in capsys.readouterr().err
    assert not out.exists()
