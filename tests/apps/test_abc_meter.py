"""The bar tracker behind meter-aware sampling (apps/music/abc_meter.py): bar lengths of every
ABC construct, agreement with music21's reading of real tunes, masks that never block a real
tune whose bars fit and always block an overfull or short bar."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from apps.music.abc_eval import bar_durations, check_abc
from apps.music.abc_meter import BarTracker, MeterMask, fitting_share
from apps.music.abc_text import canonical_tune, read_tunes
from conftest import SHARED_DATA

HEAD = "X:1\nM:{m}\nL:{l}\nK:D\n"


def bars_of(body: str, m: str = "4/4", l: str = "1/8") -> list[float]:
    t = BarTracker().feed_text(HEAD.format(m=m, l=l) + body)
    return [b[0] for b in t.finish()]


@pytest.mark.parametrize("body,expected", [
    ("ABcd efga|", [4.0]),                    # eighth notes
    ("A2B2 c4|", [4.0]),                      # lengths
    ("A/B/c/d/ e3/2f/ g2 a2|", [4.0]),        # halves and 3/2
    ("A//B//c//d// e3 f2 g2|", [4.0]),        # quarters by repeated slashes
    ("A>B c<d e>>f g2|", [4.0]),              # broken rhythm keeps each pair's total
    ("(3ABc d2 e4|", [4.0]),                  # a triplet of eighths lasts a quarter
    ("(3:2ABc d2 e4|", [4.0]),                # the tuplet with its q written
    ("[CEG]2 [DF]2 [EG]4|", [4.0]),           # a chord lasts its first note's length
    ("[C2E2G2] z2 x4|", [4.0]),               # inner lengths; rests z and x
    ("{ag}A2 {/g}B2 c4|", [4.0]),             # grace notes take no time
    ('"G"A2 "D7"B2 !trill!c2 ~d2|', [4.0]),   # chord symbols and decorations take no time
    ("^A2 _B2 =c2 ^^d2|", [4.0]),             # accidentals, double sharps
    ("A,2 B,,2 c'2 d''2|", [4.0]),            # octave marks
    ("A2-A2 B4|", [4.0]),                     # ties
    ("A4 \\\nB4|", [4.0]),                    # a line continued
    ("ABcd efga|[M:3/4] ABcdef|", [4.0, 3.0]),  # an inline meter change
    ("ABcd efga|\nM:3/4\nABcdef|", [4.0, 3.0]),  # a meter change on its own line
    ("ABcd efga|\nL:1/16\nABcdefgaABcdefga|", [4.0, 4.0]),  # a unit change
    ("ABcd|:efga ABcd:|[1 efga:|[2 ABcd||", [2.0, 4.0, 2.0, 2.0]),  # repeats, endings
])
def test_bar_lengths_of_each_construct(body, expected):
    assert bars_of(body) == expected


def test_compound_meter_and_default_unit():
    assert bars_of("ABc def|(3ABc dcBA|", m="6/8") == [3.0, 3.0]
    t = BarTracker().feed_text("X:1\nM:2/4\nK:G\nABcd efga|")   # no L: -> 1/16 below 3/4
    assert t.finish() == [(2.0, 2.0, "|", "|")]


def test_fitting_share_follows_the_pickup_and_section_rules():
    tune = HEAD.format(m="4/4", l="1/8") + "A|BcdB ABcd|e2f2 g3:|\n|:a|bagf edcB|A6|]\n"
    ok, n = fitting_share(tune)
    assert (ok, n) == (n, 6)               # pickups, a section's short last bar, the tune's end
    bad = HEAD.format(m="4/4", l="1/8") + "ABcd efga|ABc|defg abcd|\n"
    assert fitting_share(bad) == (2, 3)    # a short bar between plain barlines


def _validation_tunes(n: int):
    path = os.path.join(SHARED_DATA, "folk-abc", "tunes.jsonl")
    if not os.path.exists(path):
        pytest.skip(f"dataset missing: {path}")
    raw = [r for r in read_tunes(path) if r.index % 20 == 0]
    return [t for t in (canonical_tune(r.abc) for r in raw[:n]) if t]


def test_agrees_with_music21_on_real_tunes():
    """Bar for bar, the tracker reads real tunes as music21's tokenizer does (after
    ``for_music21`` rewrites what music21 misreads), except where music21 departs from ABC 2.1:
    it counts a grace note inside a tuplet as one of the tuplet's notes, gives no time to the
    invisible rest ``x``, and reads a multi-bar rest ``Z`` as one beat."""
    tunes = _validation_tunes(150)
    compared = agree = 0
    for t in tunes:
        body = t.split("K:", 1)[1]
        if re.search(r"\(\d[^|]*\{", body) or re.search(r"[xZ]", body):
            continue
        compared += 1
        ref = [(round(a, 6), b) for a, b, _, _ in bar_durations(t)]
        ours = [(round(a, 6), b) for a, b, _, _ in BarTracker().feed_text(t).finish()]
        ok, n_bars = fitting_share(t)
        agree += ref == ours and (ok == n_bars) == check_abc(t).fits_meter  # the same verdict
    assert compared >= 100
    assert agree == compared


def test_mask_never_blocks_a_real_tune_whose_bars_fit():
    tunes = _validation_tunes(120)
    itos = ["<unk>"] + sorted({c for t in tunes for c in t})
    stoi = {c: i for i, c in enumerate(itos)}
    masker = MeterMask(itos)
    checked = 0
    for tune in tunes:
        ok, n = fitting_share(tune)
        if ok != n:
            continue
        checked += 1
        t = BarTracker().feed_text("X:1\n")
        for pos, ch in enumerate(tune[4:], 4):
            assert masker(t)[stoi[ch]], f"blocked {ch!r} at {pos} of\n{tune}"
            t.feed(ch)
    assert checked >= 80 and masker.dead_ends == 0


def test_mask_blocks_overfull_and_short_bars():
    itos = ["<unk>", " ", "\n", "|", ":", "]", "1", "2", "3", "/", "A", "B", "c", "z", "[", "("]
    m = MeterMask(itos)
    def allowed(text):
        return {c for c, ok in zip(itos, m(BarTracker().feed_text(text))) if ok}
    head = HEAD.format(m="4/4", l="1/8")
    full = allowed(head + "ABcA BcAB")            # the bar is full if the open B stays an eighth
    assert {"A", "B", "c", "z", "2"}.isdisjoint(full)   # ("3" may still become "3/8")
    assert {"|", " ", "/"} <= full                # a barline, a space, or a shorter B
    assert "2" in allowed(head + "ABcA BcA") and "2" not in allowed(head + "ABcA BcA2")
    # the second bar is short: "|" may still become "||", "|]" or "|:", or end the tune at the
    # line end, but music may not follow a plain "|", nor an ending "|1" (music21 reads it as
    # "|" closing this bar, then "[1" opening the next)
    short = head + "ABcA BcAB|ABc|"
    assert {"|", "]", ":", "\n"} <= allowed(short)
    assert not {"A", " ", "(", "1", "2", "3"} & allowed(short)
    assert "A" in allowed(head + "AB|")          # the first bar may be a pickup
    # endings are "|1" and "|2" (music21 ignores a "|3"): they open a bar that may be short
    full_bar = head + "ABcA BcAB|"
    assert {"1", "2"} <= allowed(full_bar)
    assert "A" in allowed(full_bar + "1 AB") and "|" in allowed(full_bar + "1 AB")
    # ... and the last bar may be short: at a line end, the tune may only end there
    assert "\n" in allowed(short[:-1] + "|") and allowed(short[:-1] + "|\n") == {"\n"}
    assert np.array_equal(m(BarTracker().feed_text(head)), m(BarTracker().feed_text(head)))


def test_mask_inside_quotes_and_tuplets_leaves_no_dead_end():
    """One masker, memoised: a digit is allowed in "A7" but not after a "/" ("G/2"), whichever
    state it saw first, and a barline never inside the quotes (a shared memo once let "/2"
    through and left the tracker broken for the rest of the tune)."""
    itos = ["<unk>", " ", "\n", "|", "/", "2", "7", "A", "G", "b", '"']
    m = MeterMask(itos)
    head = HEAD.format(m="4/4", l="1/8")

    def allowed(text):
        return {c for c, ok in zip(itos, m(BarTracker().feed_text(text))) if ok}

    assert {"7", "2", "/", '"'} <= allowed(head + 'A2 "A')
    assert not {"2", "7", "|"} & allowed(head + 'A2 "G/')
    assert "b" in allowed(head + 'A2 "G/')
    assert {"7", "2"} <= allowed(head + 'A2 "A')           # again, after the "/" state
    # a slur may open inside a tuplet, a second tuplet mark may not: "(3(3:2" was allowed
    # character by character, then no note could follow (a dead end)
    assert "2" in allowed(head + "A2 (") and not {"2", "3"} & allowed(head + "A2 (3A(")
    assert "A" in allowed(head + "A2 (3A(")
    assert m.dead_ends == 0


def test_mask_holds_the_header_to_the_canonical_forms():
    itos = ["<unk>", "\n", ":", "/", "1", "2", "4", "6", "8", "A", "D", "G", "K", "L", "M", "X",
            "a", "o", "r", "m", "i", "x"]
    m = MeterMask(itos)

    def allowed(text):
        return {c for c, ok in zip(itos, m(BarTracker().feed_text(text))) if ok}

    assert allowed("X:1\n") == {"M"}                        # the meter comes first
    assert allowed("X:1\nM:") == {"1", "2", "4", "6", "8"}
    assert "\n" in allowed("X:1\nM:6/8") and "\n" not in allowed("X:1\nM:6/")
    assert allowed("X:1\nM:6/8\n") == {"L"}
    assert allowed("X:1\nM:6/8\nL:1/8\nK:A") >= {"\n", "m", "D", "M", "L"}   # A, Am, ADor...
    assert not {"A", "r", "o"} & allowed("X:1\nM:6/8\nL:1/8\nK:A")          # "K:AA", "K:Ar"
    assert BarTracker().feed_text("X:1\nM:6/8\nL:1/8\nK:BAor\n").feasible() is False


@pytest.mark.parametrize("body,why", [
    ("(3(3ABC DEF G2|", "a tuplet inside one not yet complete"),
    ("(33ABC D2 E4|", "a tuplet mark holds one digit per number"),
    ('A2"D7"/2 B4|', "a length after a chord symbol, with no note"),
    ("A2-/2 B4|", "a length after a tie"),
    ("A2 (((.~B2 c4|", "more than four marks in a row with no note"),
    ("A2 ({c}T((B2 c4|", "graces, decorations and slurs piling up"),
    ("A2 B2 (3cd|e f4|", "a tuplet across a barline"),
    ("A2 B2 (3c\nde f4|", "a tuplet left open at a line end"),
    ("A2 >B2 c4|", "a broken rhythm not right after a note"),
    ("(3:1ABC D2 E4|", "a tuplet whose q is not the standard one"),
    ("(3:2:3A2B2c2 e4|", "a tuplet with its r written (no training tune has one)"),
    ("(3{A}Bcd e2 f4|", "a grace note inside a tuplet (music21 counts it as a member)"),
    ("[V2C2] A2 B2 c4|", "a bracket that is neither a chord nor an inline field"),
    ("A2 B2 [\nc4|", "a bracket left open at a line end"),
    ("A2 B2 [k\nc4|", "an inline field no tune uses, left open at a line end"),
    ("ABcd efga|\nB:|ABcd efga|", "a field line the body may not set (music21 reads notes)"),
    ('A2"G/2A/2B/2c/2)|dG" B4|', "a barline inside a chord symbol"),
    ('D"G/2A/2B/2A/2 "G"Bc de f4|', "a length inside a chord symbol"),
    ('A2 "G/A/B/A/G/A/) Bc/d/ g2 (d/e/f/d/) g2 (B/c/)" B4|', "an annotation of 43 characters"),
    ('A2 "G B4|\nABcd efga|', "a quote left open at a line end"),
    ('A2 "B4] \\][d4c4] z " B4|', "brackets and a backslash inside a quote"),
    ("ABcd efg TT|", "a decoration written twice in a row"),
    ("ABcd efg ~~|", "a roll written twice in a row"),
    ("A2 B2 k[4B4]|", "an ending [4 inside a bar (only [1 and [2 are endings)"),
])
def test_tracker_refuses_what_music21_reads_otherwise(body, why):
    """Each of these sent meter-aware sampling astray: music21 read the bars otherwise than the
    tracker did (100 samples of the main job: 4 off the meter before these rules)."""
    t = BarTracker().feed_text(HEAD.format(m="4/4", l="1/8") + body)
    assert t.broken, why


@pytest.mark.parametrize("body", [
    "(3ABc (3def g4|", "(3:2ABc d2 e4|", "Z4|ABcd efga|", "((AB)) c2 d4|",
    "ABcd efga|\nM:3/4\nABc def|", "A2>B2 c4|", "[V:1] ABcd efga|",
    '"D/f+"A2 "A7/e"B2 "D modal"c4|', '"D.C. al (S)"A2 B2 c4|',
    '"Coda (to replace last 2 measures)"A2 B2 c4|', "ABc [1 d4 e|", "vTA2 uTB2 kC2 T~D2|",
])
def test_tracker_keeps_the_forms_real_tunes_use(body):
    t = BarTracker().feed_text(HEAD.format(m="4/4", l="1/8") + body)
    assert not t.broken
