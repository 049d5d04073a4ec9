"""apps/drums/data.py: 4/4 sections, rolls, windows, the by-song split, the cache, and
clear errors for songs the drum model cannot use; on small real slices of Lakh and Groove MIDI."""
from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from apps.drums import data as dd
from apps.drums import groove
from apps.drums.tasks import load_task
from apps.music import midi
from conftest import SHARED_DATA

LAKH = os.path.join(SHARED_DATA, "lakh-beatles-midi")
GROOVE = os.path.join(SHARED_DATA, "groove-midi")
needs_lakh = pytest.mark.skipif(not os.path.isdir(LAKH), reason=f"shared data missing: {LAKH}")
needs_groove = pytest.mark.skipif(not os.path.isdir(GROOVE),
                                  reason=f"shared data missing: {GROOVE}")


def _song(notes, sigs=((0.0, 4, 4),), length=None):
    length = length if length is not None else max(n.end for n in notes)
    return midi.MidiSong(path="synthetic.mid", ticks_per_beat=480, midi_type=1, notes=notes,
                         time_signatures=list(sigs), length=length)


def _band(bars=4, start=0.0):
    """Piano, guitar, bass and drums playing quarter notes for ``bars`` bars."""
    notes = []
    for b in range(bars * 4):
        t = start + b
        notes += [midi.Note(60, t, t + 1, 80, 0, 0), midi.Note(64, t, t + 0.5, 80, 1, 25),
                  midi.Note(40, t, t + 1, 80, 2, 33), midi.Note(36, t, t + 0.1, 100, 9, 0)]
    return notes


# ----------------------------------------------------------------------------------------------
# One song
# ----------------------------------------------------------------------------------------------
def test_four_four_sections_follow_the_signature_map():
    song = _song(_band(10), sigs=[(0.0, 4, 4), (8.0, 3, 4), (14.0, 4, 4), (22.0, 4, 4),
                                  (31.0, 4, 4)], length=40.0)
    # 4/4 for 2 bars, 3/4 for 2 bars, then 4/4 from beat 14 (22 = 14 + 2 bars: merged; 31 is
    # not a bar line of that section: a new section)
    assert dd.four_four_sections(song) == [(0, 32), (56, 124), (124, 160)]
    assert dd.four_four_sections(_song(_band(2), sigs=[(0.0, 3, 4)])) == []


def test_families_and_rolls():
    song = _song(_band(2))
    fams = dd.check_song(song, require="all")
    assert {k: len(v) for k, v in fams.items()} == {"piano": 8, "guitar": 8, "bass": 8}
    rolls = dd.song_rolls(fams, 32)
    assert rolls.shape == (32, 3, dd.N_KEYS) and rolls.dtype == np.uint8
    piano = rolls[:, 0, 60 - dd.LOW_KEY]
    np.testing.assert_array_equal(piano[:8], [2, 1, 1, 1, 2, 1, 1, 1])   # onset 2, held 1
    guitar = rolls[:, 1, 64 - dd.LOW_KEY]
    np.testing.assert_array_equal(guitar[:4], [2, 1, 0, 0])
    onset = dd.roll_input(rolls, "onset")
    hold = dd.roll_input(rolls, "hold")
    assert onset.dtype == np.float32 and onset.sum() == 24 and hold.sum() == 32 + 16 + 32
    with pytest.raises(ValueError, match="needs the onsets' velocities"):
        dd.roll_input(rolls, "velocity")
    with pytest.raises(ValueError, match="roll mode must be one of"):
        dd.roll_input(rolls, "loud")
    # 'velocity': the onsets at their family's mean velocity at that step (two piano notes of
    # velocity 40 and 100 start together at beat 1: both get 70)
    fams["piano"] = fams["piano"] + [midi.Note(67, 1.0, 2.0, 100, 0, 0)]
    fams["piano"][1] = midi.Note(60, 1.0, 2.0, 40, 0, 0)
    vel = dd.song_onset_velocity(fams, 32)
    assert vel.shape == (32, 3) and vel.dtype == np.uint8
    np.testing.assert_array_equal(vel[:8, 0], [80, 0, 0, 0, 70, 0, 0, 0])
    np.testing.assert_array_equal(vel[:4, 2], [80, 0, 0, 0])
    loud = dd.roll_input(dd.song_rolls(fams, 32), "velocity", vel)
    assert loud[4, 0, 60 - dd.LOW_KEY] == loud[4, 0, 67 - dd.LOW_KEY] == pytest.approx(70 / 127)
    np.testing.assert_array_equal(loud > 0, dd.roll_input(dd.song_rolls(fams, 32), "onset") > 0)
    assert dd.family_of(0) == "piano" and dd.family_of(31) == "guitar"
    assert dd.family_of(39) == "bass"
    assert dd.family_of(40) is None and dd.family_of(8) is None


def test_song_without_the_instruments_is_refused():
    drums_only = _song([midi.Note(36, b, b + 0.1, 100, 9) for b in range(16)])
    with pytest.raises(dd.DrumInputError, match="needs piano, guitar or bass.*has: drums"):
        dd.check_song(drums_only)
    strings = _song([midi.Note(60, b, b + 1, 80, 0, 40) for b in range(16)])
    with pytest.raises(dd.DrumInputError, match="missing: piano, guitar, bass.*strings"):
        dd.check_song(strings)
    piano_only = _song([midi.Note(60, b, b + 1, 80, 0, 0) for b in range(16)])
    assert dd.check_song(piano_only, require="any")["piano"]
    with pytest.raises(dd.DrumInputError, match="missing: guitar, bass"):
        dd.check_song(piano_only, require="all")


def test_meter_other_than_four_four_is_refused():
    waltz = _song(_band(4), sigs=[(0.0, 3, 4)])
    with pytest.raises(dd.DrumInputError, match="4/4 only.*no 4/4 section.*3/4 at beat 0"):
        dd.check_song(waltz)
    short = _song(_band(4), sigs=[(0.0, 4, 4), (8.0, 6, 8)], length=16.0)
    with pytest.raises(dd.DrumInputError, match="no 4/4 section of 8 bars or more"):
        dd.check_song(short, min_bars=8)


def test_window_starts_stay_inside_sections():
    starts = dd.window_starts([(0, 160), (200, 400)], 380, bars=8, hop_bars=2)
    assert starts == [0, 32, 200, 232]
    assert all(s + 128 <= 160 or (s >= 200 and s + 128 <= 380) for s in starts)
    assert dd.window_starts([(0, 100)], 100, 8, 2) == []


def test_split_is_by_song_title():
    assert dd.song_title("midi/05_-_Help/07_-_Ticket_To_Ride.v6.mid") == "ticket_to_ride"
    assert dd.song_title("01_-_I_Saw_Her_Standing_There") == "i_saw_her_standing_there"
    titles = [f"song{i}" for i in range(40)]
    split = dd.split_songs(titles + titles, 0.1, 0.1, seed=3)
    assert set(split) == set(titles)
    counts = {s: sum(v == s for v in split.values()) for s in dd.SPLITS}
    assert counts == {"train": 32, "val": 4, "test": 4}
    assert split == dd.split_songs(titles[::-1], 0.1, 0.1, seed=3)       # order does not matter


# ----------------------------------------------------------------------------------------------
# Real data
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("drum-cache"))


@pytest.fixture(scope="module")
def lakh(cache):
    if not os.path.isdir(LAKH):
        pytest.skip(f"shared data missing: {LAKH}")
    return dd.load_lakh(cache=cache, limit=14, log=lambda *a: None)


@needs_lakh
def test_lakh_windows_targets_and_split(lakh, cache):
    d = lakh
    assert d.steps == 128 and d.stats["kept_files"] >= 10
    assert sum(d.size(s) for s in dd.SPLITS) > 100
    # the split is by title: no title in two splits
    split_of = {}
    for s in d.songs:
        assert split_of.setdefault(s["title"], s["split"]) == s["split"]
    for split in dd.SPLITS:
        if d.size(split) == 0:
            continue
        x, hvo = d.batch(split, np.arange(min(3, d.size(split))))
        assert x.shape == (len(hvo), 3, 128, dd.N_KEYS) and hvo.shape == (len(hvo), 128, 27)
        H, V, O = hvo[..., :9], hvo[..., 9:18], hvo[..., 18:]
        assert set(np.unique(H)) <= {0.0, 1.0} and np.all(V[H == 0] == 0)
        assert V.max() <= 1 and O.min() >= -0.5 and O.max() < 0.5
        assert (H.sum(axis=(1, 2)) >= 16).all()            # min_hits
    # windows of the training split overlap (hop 2 bars); the others do not
    w = d.windows["train"][d.window_song["train"] == d.window_song["train"][0]]
    assert np.all(np.diff(w) % 32 == 0)
    for split in ("val", "test"):
        for k in np.unique(d.window_song[split]):
            ws = d.windows[split][d.window_song[split] == k]
            assert np.all(np.diff(ws) >= 128)
    # the targets are the song's own drums: compare one window with song_hvo
    k = int(d.window_song["train"][0])
    song = midi.read_midi(os.path.join(LAKH, d.songs[k]["name"]))
    H, V, O, _ = groove.song_hvo(song)
    start = int(d.windows["train"][0] - d.songs[k]["start"])
    np.testing.assert_array_equal(d.hvo("train", [0])[0, :, :9], H[start:start + 128])
    np.testing.assert_allclose(d.hvo("train", [0])[0, :, 18:], O[start:start + 128], atol=1e-6)
    # the second load comes from the cache and is identical
    msgs = []
    again = dd.load_lakh(cache=cache, limit=14, log=msgs.append)
    assert "loaded the cached dataset" in msgs[0]
    np.testing.assert_array_equal(again.rolls, d.rolls)
    np.testing.assert_array_equal(again.onset_vel, d.onset_vel)
    # the onsets' velocities: one per step and family, where (and only where) a note starts
    assert d.onset_vel.shape == (len(d.rolls), 3)
    np.testing.assert_array_equal(d.onset_vel > 0, (d.rolls == 2).any(axis=-1))
    xv = d.inputs("train", [0], "velocity")
    np.testing.assert_array_equal(xv > 0, d.inputs("train", [0], "onset") > 0)
    assert 0 < xv.max() <= 1
    np.testing.assert_array_equal(again.windows["test"], d.windows["test"])
    assert again.songs == d.songs


@needs_lakh
def test_split_seed_draws_another_split_of_the_same_songs(lakh, cache):
    """--split-seed: the same songs and windows' drums, other titles held out; 0 (the default)
    is the reported split and finds the same cached dataset."""
    args = argparse.Namespace(data=None, cache=cache, no_cache=False, bars=8, hop_bars=2,
                              limit=14, progress=False, roll_mode="onset")
    before = load_task("accompaniment", args, lambda *a: None).data       # no such option
    msgs = []
    same = load_task("accompaniment", argparse.Namespace(**vars(args), split_seed=0),
                     msgs.append).data
    assert "loaded the cached dataset" in msgs[0]
    assert same.songs == before.songs == lakh.songs
    other = dd.load_lakh(cache=cache, limit=14, split_seed=5, log=lambda *a: None)
    assert [s["name"] for s in other.songs] == [s["name"] for s in lakh.songs]
    assert [s["split"] for s in other.songs] != [s["split"] for s in lakh.songs]
    assert other.hits.sum() == lakh.hits.sum()
    by_seed = load_task("accompaniment", argparse.Namespace(**vars(args), split_seed=5),
                        lambda *a: None).data
    assert by_seed.songs == other.songs


@needs_lakh
def test_damaged_lakh_file_raises_a_clear_error():
    bad = os.path.join(LAKH, "midi", "04_-_Beatles_for_Sale", "11_-_Every_Little_Thing.v0.mid")
    with pytest.raises(midi.MidiError, match="truncated"):
        midi.read_midi(bad)


@needs_groove
def test_groove_windows(cache):
    d = dd.load_groove(cache=cache, limit=8, bars=2, hop_bars=1, log=lambda *a: None)
    assert d.rolls is None and d.steps == 32
    assert all(d.size(s) > 0 for s in dd.SPLITS)
    hvo = d.hvo("train", np.arange(d.size("train")))
    H, V = hvo[..., :9], hvo[..., 9:18]
    assert (H.sum(axis=(1, 2)) >= 4).all() and V[H > 0].min() > 0
    assert d.inputs("train", [0]) is None
    assert {s["split"] for s in d.songs} == set(dd.SPLITS)
    for split in ("val", "test"):                          # disjoint windows outside training
        for k in np.unique(d.window_song[split]):
            assert np.all(np.diff(d.windows[split][d.window_song[split] == k]) >= 32)


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="NNSCRATCH_DATA_LAKH"):
        dd.load_lakh(str(tmp_path / "nowhere"), cache=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="manifest.csv not found"):
        dd.load_lakh(str(tmp_path), cache=str(tmp_path))
