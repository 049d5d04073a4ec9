"""ABC text: canonical form, the deterministic split, bad-input errors, the validity checker."""
from __future__ import annotations

import json
import os
import re

import mido
import pytest

from apps.music import esac
from apps.music.abc_eval import abc_to_midi, bar_durations, check_abc, for_music21
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


# What a model three seconds into training writes (such samples hung a CI run): L:1/1 makes
# "A64" 64 whole notes, which music21 re-bars for minutes to hours.
OVERSIZED_BAR = "X:1\nM:3/4\nL:1/1\nK:D\nA3|BcA|A64 dA|\n"


@pytest.mark.parametrize("tune,what", [
    (OVERSIZED_BAR, "bar 3 lasts 264 quarter notes"),
    ("X:1\nM:1009/4\nL:1/4\nK:D\nA3|A3|\n", "line 2: meter M:1009/4 (1009 beats"),
    ("X:1\nM:3/4\nL:1/4\nK:D\nA3|[M:5+60/8]A3|\n", "meter M:5+60/8 (65 beats"),
    ("X:1\nM:128/1\nL:1/4\nK:D\nA3|A3|\n", "a bar of 512 quarter notes"),
])
def test_oversized_bars_and_meters_are_refused_before_music21_reads_them(tune, what,
                                                                            monkeypatch):
    """music21's parser never sees them (its tokenizer, which bars are measured with, never
    sees an oversized meter: it partitions the numerator too)."""
    from music21 import abcFormat, converter

    def never(*_a, **_k):
        raise AssertionError("music21 was handed an oversized tune")

    monkeypatch.setattr(converter, "parse", never)
    if "meter" in what:
        monkeypatch.setattr(abcFormat.ABCHandler, "process", never)
    c = check_abc(tune)
    assert not c.valid and c.error.startswith("OversizedAbcError: ") and what in c.error, c.error
    with pytest.raises(esac.AbcParseError, match="the prime: .*" + re.escape(what)):
        esac.parse_abc(tune, "the prime")   # a melody app's --prime goes the same way


def test_music21_running_past_its_time_makes_the_tune_invalid(monkeypatch):
    """The safety net beside the structural limits: a parse that runs past MUSIC21_SECONDS is
    stopped (here a stand-in parser that would sleep for a minute), the tune judged invalid,
    and the timer put back."""
    import signal
    import time

    from music21 import converter

    from apps.music import abc_eval

    handler_before = signal.getsignal(signal.SIGALRM)
    monkeypatch.setattr(converter, "parse", lambda *_a, **_k: time.sleep(60))
    monkeypatch.setattr(abc_eval, "MUSIC21_SECONDS", 0.2)
    t0 = time.monotonic()
    c = check_abc("X:1\nM:3/4\nL:1/4\nK:D\nA3|B3|\n")
    assert time.monotonic() - t0 < 30
    assert not c.valid and "music21 spent over 0.2 s parsing the tune" in c.error, c.error
    with pytest.raises(esac.AbcParseError, match="the prime: music21 spent over 0.2 s"):
        esac.parse_abc("X:1\nM:3/4\nL:1/4\nK:D\nA3|B3|\n", "the prime")
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) is handler_before


def test_the_longest_real_bars_still_parse():
    """An unbarred Essen line of 133 quarter notes and a 12/8 meter are read as before."""
    unbarred = "X:1\nM:none\nL:1/4\nK:C\n" + "C D E F " * 32 + "G5|\n"
    assert [b[0] for b in bar_durations(unbarred)] == [133.0]
    assert check_abc(unbarred).valid
    assert check_abc("X:1\nM:12/8\nL:1/8\nK:G\nGAB cdB GAB cdB|GAB cdB GAB cdB|\n").fits_meter


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


# A real tune (O'Neill's) on which music21's own MIDI writer fails: "TimeSignature 3/4 is
# already found in this Stream" while it builds its conductor track.
_M21_FAILS = """X:1
M:3/4
L:1/8
K:D
Ad|f4 ff|f4 f2|e2 f2 e2|d4 dd|
(d2 f2 a2)|(a2 g2 f2)|(f2 e2) z2|z2 z2 de|
(f2 g2 f2)|(f2 e2 d2)|(e2 f2 e2)|(d4 cB)|
A2 d2 f2|a2 g2 e2|e2 d2 z2|z2 z2 cd|
e4 (fe)|e2 c2 d2|e2 c2 a2|e2 c3 e|
a4 gf|e4 dc|B2 e2 d2|c2 HA2 Ad|
f3 f f2|f2 d2 (A/B/c/d/e/f/)|g3 g g2|g2 e2 A2|
d4 ef|g3 a b2|a2 g2 f2|e2 Hd2||
"""


def test_midi_export_of_a_tune_music21_cannot_write(tmp_path):
    from music21 import converter  # noqa: PLC0415
    from music21.exceptions21 import StreamException  # noqa: PLC0415

    with pytest.raises(StreamException, match="already found"):   # the bug we work around
        converter.parse(_M21_FAILS, format="abc").write("midi", fp=str(tmp_path / "m21.mid"))
    path = abc_to_midi(_M21_FAILS, str(tmp_path / "ours.mid"))
    mf = mido.MidiFile(path)
    sigs = [m for m in mf.tracks[0] if m.type == "time_signature"]
    assert [(m.numerator, m.denominator) for m in sigs] == [(3, 4)]
    n_notes = sum(ch.isalpha() and ch in "ABCDEFGabcdefg" for line in _M21_FAILS.split("\n")[4:]
                  for ch in line)
    assert len(_note_ons(path)) == n_notes


def test_midi_export_voices_chord_symbols_and_grace_notes(tmp_path):
    tune = 'X:1\nM:4/4\nL:1/8\nK:G\n"G"GABc "D7"d2{c}B2|"G"G8|]\n'
    mf = mido.MidiFile(abc_to_midi(tune, str(tmp_path / "c.mid")))
    names = [m.name for tr in mf.tracks for m in tr if m.type == "track_name"]
    assert names == ["conductor", "tune", "chords"]
    tune_notes = [m.note for m in mf.tracks[1] if m.type == "note_on" and m.velocity]
    assert tune_notes == [67, 69, 71, 72, 74, 72, 71, 67]          # the grace c before B
    chord_on = [m.note for m in mf.tracks[2] if m.type == "note_on" and m.velocity]
    assert chord_on == [55, 59, 62, 50, 54, 57, 60, 55, 59, 62]    # G, D7, G


def test_midi_export_rounds_a_meter_midi_cannot_say(tmp_path):
    mf = mido.MidiFile(abc_to_midi("X:1\nM:3/6\nL:1/8\nK:G\nGAB GAB|]\n", str(tmp_path / "m.mid")))
    sig = next(m for m in mf.tracks[0] if m.type == "time_signature")
    assert (sig.numerator, sig.denominator) == (3, 8)


def test_music21_reads_the_note_after_a_fermata():
    tune = 'X:1\nM:3/4\nL:1/8\nK:D\n"A"c2 HA2 Ad|HD6|]\n'
    assert check_abc(tune).n_notes == 6                 # music21 alone reads 4 of them
    assert [b[0] for b in bar_durations(tune)] == [3.0, 3.0]
    assert for_music21("K:HP\n") == "K:HP\n" and '"H"' in for_music21('"H"A')
