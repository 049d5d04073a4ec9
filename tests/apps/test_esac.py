"""apps/music/esac.py: the EsAC pipeline on real Essen songs (a few, parsed into a temporary
cache), the token encoding, ABC -> tokens -> MIDI -> tokens round trips, and clear errors."""
from __future__ import annotations

import os
import shutil

import pytest

from apps.music import esac, midi
from conftest import SHARED_DATA

ESSEN = os.path.join(SHARED_DATA, "essen-folksong-abc")

pytestmark = pytest.mark.skipif(not os.path.isdir(ESSEN), reason=f"shared data missing: {ESSEN}")


@pytest.fixture(scope="module")
def few_songs(tmp_path_factory):
    """The first 6 tunes of han1 and of kinder0, parsed once into a temporary cache."""
    cache = str(tmp_path_factory.mktemp("esac-cache"))
    songs, stats = esac.load_songs(["han1", "kinder0"], cache=cache, limit=6)
    return songs, stats, cache


# ----------------------------------------------------------------------------------------------
# Files and quirks
# ----------------------------------------------------------------------------------------------
def test_split_tunes_counts_match_source_md():
    text = esac.read_abc_file(os.path.join(ESSEN, "kinder0.abc"))
    assert len(esac.split_tunes(text)) == 213
    han1 = esac.read_abc_file(os.path.join(ESSEN, "han1.abc"))
    assert len(esac.split_tunes(han1)) == 554
    assert "südl. d. Q" in han1 and "\x81" not in han1   # code-page-437 umlaut decoded


def test_key_h_is_mapped_to_b_and_parses():
    tunes = esac.split_tunes(esac.read_abc_file(os.path.join(ESSEN, "han2.abc")))
    tune = next(t for t in tunes if esac.header_field(t, "K") == "H")
    assert esac.header_field(esac.clean_tune(tune), "K") == "B"
    score = esac.parse_abc(esac.clean_tune(tune), "han2#H")
    assert score.flatten().getElementsByClass("KeySignature").first().sharps == 5   # B major


def test_songs_are_filtered_transposed_and_encoded(few_songs):
    songs, stats, _ = few_songs
    assert stats["tunes"] == 12 and stats["kept"] == len(songs) >= 10
    for s in songs:
        assert all(ql in esac.ACCEPTED_DURATIONS for _, ql, _ in s.events)
        assert s.key_source == "analysis"        # Essen's K: gives a letter, never a mode
        assert -6 <= s.transpose <= 5
        toks = s.tokens
        assert len(toks) == round(s.length_ql / esac.STEP)
        assert toks[0] != esac.HOLD
    first = next(s for s in songs if s.ref == "kinder0#1")
    assert first.title == "SCHLAF KINDLEIN SCHLAF" and first.meter == "2/4"
    # F major -> C major: down 5 semitones; 'A2GG | F2z' starts on A4 (69) -> E4 (64)
    assert first.key == "F major" and first.transpose == -5
    assert first.tokens[:9] == ["64", "_", "_", "_", "62", "_", "62", "_", "60"]
    assert first.bar_pos[:4] == [0.0, 1.0, 1.5, 0.0]


def test_cache_is_reused_and_data_dir_is_overridable(few_songs, tmp_path, monkeypatch):
    songs, _, cache = few_songs
    assert any(f.startswith("han1-") for f in os.listdir(cache))
    again, _ = esac.load_songs(["han1", "kinder0"], cache=cache, limit=6)
    assert [s.tokens for s in again] == [s.tokens for s in songs]
    # an environment variable points the loader at another folder
    other = tmp_path / "essen"
    other.mkdir()
    shutil.copy(os.path.join(ESSEN, "kinder0.abc"), other / "kinder0.abc")
    monkeypatch.setenv("NNSCRATCH_DATA_ESSEN", str(other))
    assert esac.essen_dir() == str(other)
    monkeypatch.setenv("NNSCRATCH_DATA_ESSEN", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="NNSCRATCH_DATA_ESSEN"):
        esac.essen_dir()
    with pytest.raises(esac.EsacError, match="unknown EsAC subset"):
        esac.load_songs("klingon", cache=cache)


# ----------------------------------------------------------------------------------------------
# Keys and encoding
# ----------------------------------------------------------------------------------------------
def test_mode_in_k_field_is_used_else_analysis():
    minor = esac.process_tune("X:1\nM:2/4\nL:1/8\nK:Em\nEF GA|B2 E2|]\n", "em")
    assert minor.key_source == "K:" and minor.key == "E minor" and minor.transpose == 5
    assert minor.tokens[0] == str(64 + 5)           # E4 -> A4
    dorian = esac.process_tune("X:1\nM:2/4\nL:1/8\nK:Ddor\nDE FG|A2 D2|]\n", "ddor")
    assert dorian.key_source == "K:" and dorian.transpose == 0    # D dorian has C's signature
    plain = esac.process_tune("X:1\nM:2/4\nL:1/8\nK:G\nGA Bc|d2 G2|]\n", "g")
    assert plain.key_source == "analysis" and plain.key == "G major" and plain.transpose == 5
    assert esac.transposition(7, "major") == 5 and esac.transposition(2, "minor") == -5


def test_duration_filter_rejects_triplets_and_32nds():
    with pytest.raises(esac.EsacError, match="not in the accepted set"):
        esac.process_tune("X:1\nM:2/4\nL:1/8\nK:C\n(3CDE C2|]\n", "triplet")
    with pytest.raises(esac.EsacError, match="not in the accepted set"):
        esac.process_tune("X:1\nM:2/4\nL:1/32\nK:C\nC D6 C8|]\n", "32nd")


def test_ties_and_consecutive_rests_encode_canonically():
    song = esac.process_tune("X:1\nM:2/4\nL:1/8\nK:C\nC2-C2|z2 z2|E G z2|]\n", "ties",
                             transpose=False)
    assert song.tokens == ["60", "_", "_", "_", "_", "_", "_", "_",
                           "r", "_", "_", "_", "_", "_", "_", "_",
                           "64", "_", "67", "_", "r", "_", "_", "_"]
    assert esac.decode(song.tokens) == [(60, 2.0), (None, 2.0), (64, 0.5), (67, 0.5), (None, 1.0)]
    assert [n[:2] for n in song.notes()] == [(60, 4.0), (64, 0.5), (67, 1.5)]


def test_token_errors_are_clear():
    with pytest.raises(esac.EsacError, match=r"token 2 is 'x'"):
        esac.parse_tokens("60 _ x")
    with pytest.raises(esac.EsacError, match="starts with a hold"):
        esac.parse_tokens("_ 60")
    with pytest.raises(esac.EsacError, match="pitch 200"):
        esac.parse_tokens("60 200")
    with pytest.raises(esac.EsacError, match="hold '_' with no note"):
        esac.decode(["_"])
    assert esac.looks_like_tokens("60 _ r _") and not esac.looks_like_tokens("C D E")


def test_bad_abc_prime_raises_parse_error():
    for bad in ("", "   ", "hello $$$ world", "X:1\nK:C\n"):
        with pytest.raises(esac.AbcParseError):
            esac.abc_to_tokens(bad)
    tokens, song = esac.abc_to_tokens("C D E F | G2 G2 |")   # a bare body gets default headers
    assert song.key_source == "analysis" and len(tokens) == 16


# ----------------------------------------------------------------------------------------------
# Round trips ABC -> tokens -> MIDI -> tokens
# ----------------------------------------------------------------------------------------------
def _round_trip(songs, tmp_path):
    for s in songs:
        path = str(tmp_path / "rt.mid")
        esac.tokens_to_midi(path, s.tokens, tempo=100, time_signature=(2, 4))
        assert esac.midi_to_tokens(path) == s.tokens, s.ref
        back = midi.read_midi(path)
        assert back.bpm == pytest.approx(100.0)
        assert len(back.notes) == sum(t not in (esac.HOLD, esac.REST) for t in s.tokens)


def test_round_trip_on_a_few_songs(few_songs, tmp_path):
    _round_trip(few_songs[0], tmp_path)


@pytest.mark.slow
def test_round_trip_on_100_songs(tmp_path):
    songs, _ = esac.load_songs(["han1", "kinder0"], cache=str(tmp_path / "cache"), limit=55)
    assert len(songs) >= 100
    _round_trip(songs[:100], tmp_path)
