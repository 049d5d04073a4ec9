"""apps/drums/groove.py: Magenta's 9-class drum mapping, the grid, and the exact round trip
MIDI -> H/V/O -> MIDI on synthetic and real drum files (Groove MIDI, Lakh)."""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from apps.drums import groove
from apps.music import midi
from conftest import SHARED_DATA

GROOVE = os.path.join(SHARED_DATA, "groove-midi")
LAKH = os.path.join(SHARED_DATA, "lakh-beatles-midi")


# ----------------------------------------------------------------------------------------------
# The mapping
# ----------------------------------------------------------------------------------------------
def test_roland_mapping_is_the_groove_datasets():
    # groove-midi/SOURCE.md: kick 36 / snare 38,40,37 / closed HH 42,22,44 / open HH 46,26 /
    # low tom 43,58 / mid tom 47,45 / high tom 50,48 / crash 49,52,55,57 / ride 51,53,59
    expected = {36: 0, 38: 1, 40: 1, 37: 1, 42: 2, 22: 2, 44: 2, 46: 3, 26: 3, 43: 4, 58: 4,
                47: 5, 45: 5, 50: 6, 48: 6, 49: 7, 52: 7, 55: 7, 57: 7, 51: 8, 53: 8, 59: 8}
    for pitch, k in expected.items():
        assert groove.drum_class(pitch) == k, pitch
    assert groove.N_CLASSES == 9 and len(groove.CLASS_NAMES) == 9
    assert groove.CLASS_PITCHES == (36, 38, 42, 46, 43, 47, 50, 49, 51)
    assert [groove.drum_class(p) for p in groove.CLASS_PITCHES] == list(range(9))


def test_general_midi_extras_and_unknown_pitches():
    # GM pitches of Magenta's DEFAULT_DRUM_TYPE_PITCHES that the Roland list lacks
    for pitch, k in {35: 0, 39: 1, 56: 1, 54: 2, 69: 2, 82: 8, 41: 4, 60: 5, 62: 6}.items():
        assert groove.drum_class(pitch) == k, pitch
    for pitch in (0, 20, 21, 88, 100, 127, -1, 128):
        assert groove.drum_class(pitch) == -1
    # every pitch maps to at most one class, and the table agrees with drum_class
    assert set(np.unique(groove.PITCH_TO_CLASS)) <= set(range(-1, 9))


def test_grid_position_offsets_lie_in_half_open_interval():
    step, off = groove.grid_position([0.0, 0.125, 0.124, 0.37, 1.0], start_beat=0.0)
    np.testing.assert_array_equal(step, [0, 1, 0, 1, 4])     # 0.125 beats = half a step -> next
    np.testing.assert_allclose(off, [0.0, -0.5, 0.496, 0.48, 0.0], atol=1e-12)
    step, off = groove.grid_position(np.linspace(0, 8, 1001))
    assert off.min() >= -0.5 and off.max() < 0.5


def test_louder_stroke_wins_a_shared_step():
    notes = [midi.Note(38, 1.0, 1.1, 60, 9), midi.Note(40, 1.01, 1.1, 90, 9),   # both snare
             midi.Note(36, 1.0, 1.1, 100, 9), midi.Note(100, 0.0, 0.1, 80, 9),  # unmapped
             midi.Note(36, 9.0, 9.1, 80, 9)]                                     # outside
    H, V, O, st = groove.notes_to_hvo(notes, 16)
    assert H.sum() == 2 and H[4, 1] == 1 and H[4, 0] == 1
    assert V[4, 1] == pytest.approx(90 / 127) and O[4, 1] == pytest.approx(0.04)
    assert (st.notes, st.hits, st.merged, st.unmapped, st.outside) == (4, 2, 1, 1, 1)
    assert np.all(V[H == 0] == 0) and np.all(O[H == 0] == 0)


# ----------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------
def _random_hvo(rng, T=64, rate=0.2):
    H = (rng.random((T, 9)) < rate).astype(np.float32)
    V = H * rng.integers(1, 128, (T, 9)) / 127.0
    O = H * np.round(rng.uniform(-0.5, 0.5, (T, 9)) * 120) / 120   # on the 480-tick grid
    O[O >= 0.5] = 0.0
    O[0] = np.abs(O[0])          # MIDI has no time before beat 0
    return H, V.astype(np.float32), O.astype(np.float32)


def test_hvo_notes_hvo_is_exact():
    rng = np.random.default_rng(0)
    H, V, O = _random_hvo(rng)
    notes = groove.hvo_to_notes(H, V, O, start_beat=2.0)
    assert len(notes) == H.sum() and all(n.channel == midi.DRUM_CHANNEL for n in notes)
    assert {n.pitch for n in notes} <= set(groove.CLASS_PITCHES)
    H2, V2, O2, st = groove.notes_to_hvo(notes, len(H), start_beat=2.0)
    np.testing.assert_array_equal(H2, H)
    np.testing.assert_array_equal(np.rint(V2 * 127), np.rint(V * 127))
    np.testing.assert_allclose(O2, O, atol=1e-6)
    assert st.merged == 0
    early = groove.hvo_to_notes(H[:1] * 0 + np.eye(1, 9), np.ones((1, 9)), -0.4 * np.ones((1, 9)))
    assert early[0].start == 0.0                 # a stroke before beat 0 is played at beat 0
    # strokes of one pitch never overlap
    by_pitch = {}
    for n in notes:
        by_pitch.setdefault(n.pitch, []).append(n)
    for ns in by_pitch.values():
        assert all(a.end <= b.start + 1e-9 for a, b in zip(ns, ns[1:]))


def test_round_trip_through_a_midi_file(tmp_path):
    rng = np.random.default_rng(1)
    H, V, O = _random_hvo(rng, T=128)
    path = groove.write_hvo(str(tmp_path / "beat.mid"), H, V, O, tempo=97.0)
    song = midi.read_midi(path)
    assert song.length == pytest.approx(128 / 4)
    H2, V2, O2, _ = groove.song_hvo(song)
    np.testing.assert_array_equal(H2, H)
    np.testing.assert_array_equal(np.rint(V2 * 127), np.rint(V * 127))
    np.testing.assert_allclose(O2, O, atol=0.5 / 120 + 1e-9)   # half a tick at 480 per beat


def _file_round_trip(path, tmp_path):
    song = midi.read_midi(path)
    H, V, O, st = groove.song_hvo(song)
    assert st.hits > 50
    out = groove.write_hvo(str(tmp_path / "again.mid"), H, V, O, tempo=song.tempos,
                           time_signature=song.time_signatures)
    again = midi.read_midi(out)
    H2, V2, O2, _ = groove.song_hvo(again, len(H))
    np.testing.assert_array_equal(H2, H)                       # every hit kept, as its class
    np.testing.assert_array_equal(V2, V)                       # velocities exactly
    assert np.abs(O2 - O).max() <= 0.5 / 120 + 1e-9            # offsets within half a tick


@pytest.mark.skipif(not os.path.isdir(GROOVE), reason=f"shared data missing: {GROOVE}")
def test_round_trip_groove_midi_performance(tmp_path):
    with open(os.path.join(GROOVE, "info.csv")) as f:
        row = next(r for r in csv.DictReader(f) if r["beat_type"] == "beat")
    _file_round_trip(os.path.join(GROOVE, row["midi_filename"]), tmp_path)


@pytest.mark.skipif(not os.path.isdir(LAKH), reason=f"shared data missing: {LAKH}")
def test_round_trip_lakh_drum_track(tmp_path):
    path = os.path.join(LAKH, "midi", "01_-_Please_Please_Me",
                        "01_-_I_Saw_Her_Standing_There.v0.mid")
    _file_round_trip(path, tmp_path)


# ----------------------------------------------------------------------------------------------
# Fixed beats
# ----------------------------------------------------------------------------------------------
def test_rock_beat_and_template_distance():
    H, V, O = groove.rock_beat(32)
    assert H.shape == (32, 9) and H.sum() == 2 * (2 + 2 + 8)
    assert H[0, 0] == H[8, 0] == H[4, 1] == H[12, 1] == 1 and H[1].sum() == 0
    assert np.all(V[H > 0] == pytest.approx(100 / 127)) and not O.any()
    template = groove.beat_template(np.stack([H, H]))
    np.testing.assert_array_equal(template, H[:16])
    assert groove.template_distance(H, template) == 0.0
    empty = np.zeros_like(H)
    d = groove.template_distance(np.stack([H, empty]), template)
    assert d.shape == (2,) and d[0] == 0 and d[1] == pytest.approx(12 / (16 * 9))
    with pytest.raises(ValueError, match="whole number of 4/4 bars"):
        groove.beat_template(np.zeros((10, 9)))
    assert groove.offsets_to_ms(0.5, bpm=120) == pytest.approx(62.5)
