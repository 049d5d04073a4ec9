"""Fuzzing the readers of user files (issue 22): ABC text and corpus preparation, tunes.jsonl,
the MIDI reader, the WAV loader and the EsAC reader. Each is fed real files from
../shared/data, truncated, byte-flipped and padded with insertions (``fuzzing.mutated``).

The contract: the reader returns what it documents or raises its documented error (AbcInputError,
MidiError, AudioError, EsacError), never another exception, and the file it read is unchanged;
preparation that fails leaves no output folder behind.
"""
from __future__ import annotations

import math
import os
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.abc_tunes.data import Vocab, load_prepared, prepare
from apps.audio.wav import AudioError, load_clip, read_wav
from apps.common.errors import InputError
from apps.music import esac
from apps.music.abc_meter import BarTracker, fitting_share
from apps.music.abc_text import (
    AbcInputError,
    canonical_tune,
    normalise_key,
    normalise_meter,
    normalise_unit,
    prepare_corpus,
)
from apps.music.midi import MidiError, MidiSong, quantize, read_midi
from fuzzing import (
    abc_seeds,
    budgets,
    esac_seed,
    fuzz_settings,
    jsonl_seed,
    midi_seeds,
    mutated,
    snapshot,
    wav_seeds,
)


def _write(folder, name: str, data: bytes) -> str:
    path = os.path.join(tempfile.mkdtemp(dir=folder), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _check_canonical(tune: str) -> None:
    """A canonical tune has the four header lines, and the bar tracker reads it."""
    lines = tune.splitlines()
    assert lines[0] == "X:1" and [ln[:2] for ln in lines[1:4]] == ["M:", "L:", "K:"]
    BarTracker().feed_text(tune).finish()
    fitting_share(tune)


# ----------------------------------------------------------------------------------------------
# ABC: files, tunes.jsonl, the canonical form, corpus preparation
# ----------------------------------------------------------------------------------------------
def _check_preparation(path: str, tmp_path) -> None:
    before = snapshot(path)
    out = os.path.join(tempfile.mkdtemp(dir=tmp_path), "prepared")
    try:
        corpus = prepare_corpus(path)
    except AbcInputError:
        corpus = None
    else:
        assert corpus.train and corpus.val
        for tune in corpus.train + corpus.val:
            _check_canonical(tune)
    try:
        prepare(path, out, log=lambda *_: None)
    except InputError:
        assert corpus is None and not os.path.exists(out)
    else:
        train_text, val_text, vocab = load_prepared(out)
        assert isinstance(vocab, Vocab) and vocab.encode(train_text)[1] == 0
    assert snapshot(path) == before


@budgets(ci=150, slow=4000)
def test_mutated_abc_files_prepare_or_are_refused(tmp_path, budget):
    tunes = abc_seeds()  # pairs of tunes: a corpus needs two
    seeds = [a + b"\n\n" + b for a, b in zip(tunes, tunes[1:])] + [b"\n".join(tunes)]

    @fuzz_settings(budget)
    @given(data=mutated(seeds))
    def check(data):
        _check_preparation(_write(tmp_path, "tunes.abc", data), tmp_path)

    check()


@budgets(ci=80, slow=3000)
def test_mutated_tunes_jsonl_prepares_or_is_refused(tmp_path, budget):
    @fuzz_settings(budget)
    @given(data=mutated([jsonl_seed(4)]))
    def check(data):
        _check_preparation(_write(tmp_path, "tunes.jsonl", data), tmp_path)

    check()


NUMBER = st.sampled_from(["0", "1", "2", "3", "4", "6", "8", "16", "00", "2+3", "", "x"])
ABC_LINE = st.one_of(
    st.builds(lambda f, v: f"{f}:{v}", st.sampled_from(list("MLKMLKXTQPwW")),
              st.one_of(st.builds(lambda a, b: f"{a}/{b}", NUMBER, NUMBER),
                        st.from_regex(r"[0-9+]{0,3}/[0-9]{0,3}", fullmatch=True),
                        st.sampled_from(["C", "C|", "none", "Dmix", "E minor", "HP", "Hp",
                                         "G % x", "", " "]),
                        st.text(max_size=8))),
    st.text(alphabet=st.sampled_from(list("ABCDEFGabcdefgzZxy^_=,'0123456789/|:[]-()<>.~{}\"!"
                                          "+% \tK:M:L:")), max_size=30),
    st.text(max_size=20))


@budgets(ci=200, slow=10000)
def test_any_text_has_a_canonical_form_or_none(budget):
    """canonical_tune and the field normalisers return a value for any text, and the bar tracker
    reads whatever they return (M:0/0 once divided by zero here)."""
    @fuzz_settings(budget)
    @given(lines=st.lists(ABC_LINE, max_size=12))
    def check(lines):
        text = "\n".join(lines)
        tune = canonical_tune(text)
        if tune is not None:
            _check_canonical(tune)
        BarTracker().feed_text(text)
        for line in lines:
            value = line.partition(":")[2]
            normalise_meter(value), normalise_unit(value), normalise_key(value)

    check()


# ----------------------------------------------------------------------------------------------
# MIDI
# ----------------------------------------------------------------------------------------------
@budgets(ci=300, slow=8000)
def test_mutated_midi_files_read_or_are_refused(tmp_path, budget):
    seeds = midi_seeds()

    @fuzz_settings(budget)
    @given(data=mutated(seeds), repair=st.booleans())
    def check(data, repair):
        path = _write(tmp_path, "song.mid", data)
        before = snapshot(path)
        try:
            song = read_midi(path, repair=repair)
        except MidiError:
            pass
        else:  # what the apps do next with a song: time maps, bars, the melody, the grid
            assert isinstance(song, MidiSong) and song.ticks_per_beat > 0
            assert all(bpm > 0 and math.isfinite(bpm) for _, bpm in song.tempos)
            song.seconds(song.length)
            song.bar_position(song.length)
            quantize(song.melody()[:500])
            song.families()
        assert snapshot(path) == before

    check()


# ----------------------------------------------------------------------------------------------
# WAV
# ----------------------------------------------------------------------------------------------
@budgets(ci=250, slow=6000)
def test_mutated_wav_files_load_in_range_or_are_refused(tmp_path, budget):
    seeds = wav_seeds(str(tmp_path))

    @fuzz_settings(budget)
    @given(data=mutated(seeds), downmix=st.booleans(), sr=st.sampled_from([None, 8000, 16000]))
    def check(data, downmix, sr):
        path = _write(tmp_path, "clip.wav", data)
        before = snapshot(path)
        try:
            y, rate = read_wav(path, sr=sr, downmix=downmix, max_seconds=30)
        except AudioError:
            pass
        else:
            assert y.ndim == 1 and y.size > 0 and rate > 0 and (sr is None or rate == sr)
            assert np.all(np.isfinite(y))
            if sr is None:
                assert np.abs(y).max() <= 1.0
            try:
                load_clip(path, sr=8000, downmix=downmix)
            except AudioError:
                pass
        assert snapshot(path) == before

    check()


# ----------------------------------------------------------------------------------------------
# EsAC
# ----------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def _quiet_music21():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@budgets(ci=20, slow=500)
def test_mutated_esac_files_give_songs_or_counted_drops(tmp_path, budget):
    """process_file parses each tune with music21: a tune it cannot use is counted as dropped,
    never raised; the tokens of every song kept decode again."""
    @fuzz_settings(budget)
    @given(data=mutated([esac_seed(2)]))
    def check(data):
        path = _write(tmp_path, "kinder0.abc", data)
        before = snapshot(path)
        result = esac.process_file(path, limit=2)
        assert len(result["songs"]) + sum(result["dropped"].values()) == result["tunes"]
        for d in result["songs"]:
            song = esac._song_from_dict(d)
            esac.decode(esac.parse_tokens(" ".join(song.tokens)))
        assert snapshot(path) == before

    check()


@budgets(ci=100, slow=5000)
def test_any_token_text_parses_or_is_an_esac_error(budget):
    token = st.one_of(st.sampled_from(["_", "r", "60", "-1", "128", "007", "1e2", "", "x"]),
                      st.integers(-200, 300).map(str), st.text(max_size=4))

    @fuzz_settings(budget)
    @given(tokens=st.lists(token, max_size=20))
    def check(tokens):
        text = " ".join(tokens)
        try:
            parsed = esac.parse_tokens(text)
        except esac.EsacError:
            return
        notes = esac.tokens_to_notes(parsed)
        assert all(0 <= n.pitch <= 127 and n.end > n.start for n in notes)

    check()
