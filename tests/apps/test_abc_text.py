"""ABC text: canonical form, the deterministic split, bad-input errors, the validity checker."""
from __future__ import annotations

import json
import os

import mido
import pytest

from apps.music.abc_eval import abc_to_midi, bar_durations, check_abc
from apps.music.abc_text import (
    AbcInputError,
    canonical_tune,
    join_tunes,
    normalise_key,
    normalise_meter,
    prepare_corpus,
    read_tunes,
    split_generated,
)
from conftest import SHARED_DATA

TUNES = os.path.join(SHARED_DATA, "folk-abc", "tunes.jsonl")


def test_header_is_canonical_and_other_fields_dropped():
    abc = ("X: 129\nT:Micky (h'pipe)\nB:CRE1.214\nQ:150\nM: C|\nR:hornpipe\n% a comment\n"
           "K:D Mixolydian % a key comment\nfe|dBAB \"G\"defe|\"^Segno\"dB\"4\"AB defg|\n"
           "w: some lyrics\n"
           "P:B\nafbf afdf|]\n")
    assert canonical_tune(abc) == ('X:1\nM:2/2\nL:1/8\nK:DMix\nfe|dBAB "G"defe|dBAB defg|\n'
                                   "afbf afdf|]\n")


def test_missing_unit_length_gets_abc_default():
    assert "L:1/16" in canonical_tune("X:1\nM:2/4\nK:G\nGABc|\n")
    assert "L:1/8" in canonical_tune("X:1\nM:6/8\nK:G\nGAB cde|\n")
    assert "L:1/8" in canonical_tune("X:1\nM:3/4\nK:G\nGAB cde|\n")


def test_nottingham_meter_after_key_replaces_header():
    abc = "X:1\nM:4/4\nK:A\nM:6/8\nP:A\nABc def|ABc dec|\nM:9/8\nABc ABc ABc|\n"
    assert canonical_tune(abc) == "X:1\nM:6/8\nL:1/8\nK:A\nABc def|ABc dec|\nM:9/8\nABc ABc ABc|\n"


def test_mit_trailing_bang_removed_but_decorations_kept():
    abc = "X:4\nM:C|\nL:1/8\nK:D Mixolydian\nAG|F2FA !trill!GFD2|!\nfg|agfa gfeg|!\n"
    assert canonical_tune(abc) == "X:1\nM:2/2\nL:1/8\nK:DMix\nAG|F2FA !trill!GFD2|\nfg|agfa gfeg|\n"


@pytest.mark.parametrize("raw,expected", [
    ("G Major", "G"), ("E Minor", "Em"), ("Em", "Em"), ("ADor", "ADor"), ("A dorian", "ADor"),
    ("Glyd", "GLyd"), ("Dmix % one sharp", "DMix"), ("Bb", "Bb"), ("F#m", "F#m")])
def test_key_spellings(raw, expected):
    assert normalise_key(raw) == expected


def test_meters():
    assert normalise_meter("C") == "4/4" and normalise_meter(" C| ") == "2/2"
    assert normalise_meter("6/8") == "6/8" and normalise_meter("2+3/8") == "2+3/8"
    assert normalise_meter("garbage") is None


def test_tune_without_key_or_music_is_dropped():
    assert canonical_tune("X:1\nT:title only\nM:4/4\n") is None
    assert canonical_tune("X:1\nM:4/4\nK:G\n% nothing but a comment\n") is None


def test_split_is_deterministic_on_the_real_data():
    corpus = prepare_corpus(TUNES)
    lines = sum(1 for _ in open(TUNES, encoding="utf-8"))
    n_val = len(range(0, lines, 20))
    assert len(corpus.val) + len(corpus.train) + len(corpus.dropped) == lines
    assert len(corpus.val) <= n_val and len(corpus.val) >= n_val - len(corpus.dropped)
    first = json.loads(open(TUNES, encoding="utf-8").readline())["abc"]
    assert corpus.val[0] == canonical_tune(first)
    assert all(t.startswith("X:1\nM:") for t in corpus.train[:200])
    assert prepare_corpus(TUNES).train[:50] == corpus.train[:50]


def test_abc_file_and_directory_inputs(tmp_path):
    (tmp_path / "a.abc").write_text("%abc-2.1\nX:1\nT:A\nM:3/4\nK:G\nGAB|cde|\n\n"
                                    "X:2\nT:B\nK:D\nDEF|\n")
    sub = tmp_path / "more"
    sub.mkdir()
    (sub / "b.abc").write_text("X:7\nM:6/8\nL:1/8\nK:Em\nEFG ABc|\n")
    assert len(read_tunes(str(tmp_path / "a.abc"))) == 2
    assert [t.index for t in read_tunes(str(tmp_path))] == [0, 1, 2]


def test_bad_inputs_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.abc"
    empty.write_text("  \n")
    with pytest.raises(AbcInputError, match="empty"):
        read_tunes(str(empty))
    prose = tmp_path / "prose.abc"
    prose.write_text("This is a letter, not a tune.\nDear reader,\n")
    with pytest.raises(AbcInputError, match="no ABC tune found"):
        read_tunes(str(prose))
    binary = tmp_path / "latin1.abc"
    binary.write_bytes("X:1\nT:Caf\xe9\nK:G\nGAB|\n".encode("latin-1"))
    with pytest.raises(AbcInputError,
                       match=r"not UTF-8 text \(invalid byte 0xe9 at byte \d+, line 2\)"):
        read_tunes(str(binary))
    with pytest.raises(AbcInputError, match="no such file"):
        read_tunes(str(tmp_path / "missing.abc"))
    bad_jsonl = tmp_path / "t.jsonl"
    bad_jsonl.write_text('{"abc": "X:1\\nK:G\\nGAB|\\n"}\n[1, 2]\n')
    with pytest.raises(AbcInputError, match=r"t.jsonl:2: not a JSON object"):
        read_tunes(str(bad_jsonl))
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    with pytest.raises(AbcInputError, match="no .abc file"):
        read_tunes(str(empty_dir))


def test_generated_text_is_split_into_tunes():
    text = join_tunes(["X:1\nM:4/4\nL:1/8\nK:G\nGABc|\n",
                       "X:1\nM:6/8\nL:1/8\nK:D\nDEF|\n"]) + "\ngarbage\n"
    assert len(split_generated(text)) == 2


def test_checker_accepts_real_tune_and_rejects_bad_ones():
    good = "X:1\nM:6/8\nL:1/8\nK:G\n|:G|GAB cdB|dB/A/G d>eB:|\n"
    c = check_abc(good)
    assert c.valid and c.fits_meter and c.n_notes == 14
    over = check_abc("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB dedB|c2ec B2dB|\n")
    assert over.valid and not over.fits_meter and over.bad_bars == 1
    assert not check_abc("hello world").valid
    assert not check_abc("X:1\nM:4/4\nL:1/8\nK:G\n").valid  # no notes


def test_bar_durations_handle_tuplets_graces_and_double_colon():
    bars = bar_durations("X:1\nM:2/4\nL:1/8\nK:G\n(3ABc d2|{g}f2 e2::d4|\n")
    assert [b[0] for b in bars] == [2.0, 2.0, 2.0]


def _note_ons(path):
    return [m for tr in mido.MidiFile(path).tracks for m in tr
            if m.type == "note_on" and m.velocity]


def test_midi_export_plays_unpaired_repeats_once(tmp_path):
    """music21 refuses to expand a ``|:`` never closed after a repeated section; we still write
    the MIDI file, each section once, and say so."""
    tune = "X:1\nM:2/4\nL:1/8\nK:G\nGABc|d2B2:|\n|:cBAG|FGA2|]\n"
    messages = []
    path = abc_to_midi(tune, str(tmp_path / "t.mid"), log=messages.append)
    notes = _note_ons(path)
    assert len(notes) == 6 + 7 and messages and "repeats played once" in messages[0]
    good = abc_to_midi("X:1\nM:2/4\nL:1/8\nK:G\n|:GABc|d2B2:|cBAG|FGA2|]\n",
                       str(tmp_path / "g.mid"))
    notes = _note_ons(good)
    assert len(notes) == 2 * 6 + 7  # paired repeats are still expanded
