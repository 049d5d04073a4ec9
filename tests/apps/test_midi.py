"""apps/music/midi.py: reading real files (CRE, Lakh, Groove), clear errors for damaged files,
write/read round trips (melody, polyphony from a Bach chorale, drums), piano rolls, time maps."""
from __future__ import annotations

import csv
import json
import os
import struct

import mido
import numpy as np
import pytest

from apps.music import midi
from conftest import SHARED_DATA

CRE = os.path.join(SHARED_DATA, "cre-irish-midi", "midi")
LAKH = os.path.join(SHARED_DATA, "lakh-beatles-midi")
GROOVE = os.path.join(SHARED_DATA, "groove-midi")
JSB = os.path.join(SHARED_DATA, "jsb-chorales")
TRUNCATED = os.path.join(LAKH, "midi", "04_-_Beatles_for_Sale", "11_-_Every_Little_Thing.v0.mid")


def _need(path):
    if not os.path.exists(path):
        pytest.skip(f"shared data missing: {path}")


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------
def test_real_truncated_lakh_file_gives_clear_error():
    _need(TRUNCATED)
    with pytest.raises(midi.MidiError) as err:
        midi.read_midi(TRUNCATED)
    msg = str(err.value)
    assert TRUNCATED in msg
    assert "damaged or truncated" in msg and "track 9 of 9" in msg and "byte" in msg


def test_file_cut_inside_a_track_chunk(tmp_path):
    src = os.path.join(CRE, "BanishMisfortune.mid")
    _need(src)
    data = open(src, "rb").read()
    bad = tmp_path / "cut.mid"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(midi.MidiError, match=r"cut\.mid: truncated MIDI file: track chunk 3 of 3"):
        midi.read_midi(str(bad))


def test_missing_tracks_not_midi_and_missing_file(tmp_path):
    header_only = tmp_path / "two_tracks.mid"
    header_only.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 1, 2, 480)
                            + b"MTrk" + struct.pack(">I", 4) + b"\x00\xff\x2f\x00")
    with pytest.raises(midi.MidiError, match="announces 2 tracks but only 1"):
        midi.read_midi(str(header_only))
    text = tmp_path / "notes.mid"
    text.write_text("these are not MIDI bytes at all")
    with pytest.raises(midi.MidiError, match="not a MIDI file"):
        midi.read_midi(str(text))
    with pytest.raises(midi.MidiError, match="cannot open"):
        midi.read_midi(str(tmp_path / "absent.mid"))


def test_corrupt_event_byte_names_track_and_byte(tmp_path):
    path = tmp_path / "ok.mid"
    midi.write_monophonic(str(path), [60, 62, 64], [1, 1, 1])
    data = bytearray(path.read_bytes())
    # the first note-on's key byte in track 2 (after the conductor track)
    first_on = data.index(bytes([0x90, 60]))
    data[first_on + 1] = 0xF3
    bad = tmp_path / "bad.mid"
    bad.write_bytes(bytes(data))
    with pytest.raises(midi.MidiError, match=r"track 2 of 2 .*0xf3 where a data byte"):
        midi.read_midi(str(bad))


def test_junk_after_end_of_track_is_explained_and_repairable(tmp_path):
    path = tmp_path / "ok.mid"
    midi.write_monophonic(str(path), [60, 62, 64], [1, 0.5, 1.5], tempo=90)
    data = bytearray(path.read_bytes())
    # append "\r\n" inside the last track chunk (a download artefact) and fix the chunk length
    last = data.rindex(b"MTrk")
    length = struct.unpack(">I", data[last + 4:last + 8])[0]
    data[last + 4:last + 8] = struct.pack(">I", length + 2)
    data += b"\r\n"
    bad = tmp_path / "junk.mid"
    bad.write_bytes(bytes(data))
    with pytest.raises(midi.MidiError, match=r"2 stray bytes \(0d 0a\) after its end-of-track"):
        midi.read_midi(str(bad))
    fixed = midi.read_midi(str(bad), repair=True)
    assert [(n.pitch, n.start, n.end) for n in fixed.notes] == \
        [(n.pitch, n.start, n.end) for n in midi.read_midi(str(path)).notes]


def test_writer_rejects_bad_values(tmp_path):
    with pytest.raises(midi.MidiError, match="pitch must be 0-127"):
        midi.write_midi(str(tmp_path / "x.mid"), [midi.Track([midi.Note(130, 0, 1)])])
    with pytest.raises(midi.MidiError, match="power of 2"):
        midi.write_midi(str(tmp_path / "x.mid"), [], time_signature=(3, 5))


# ----------------------------------------------------------------------------------------------
# Real files
# ----------------------------------------------------------------------------------------------
def test_lakh_multitrack_matches_manifest_counts():
    manifest = os.path.join(LAKH, "manifest.csv")
    _need(manifest)
    rows = [r for r in csv.DictReader(open(manifest)) if r["has_all_four"] == "1"][:3]
    for row in rows:
        song = midi.read_midi(os.path.join(LAKH, row["path"]))
        assert song.ticks_per_beat == int(row["ticks_per_beat"])
        assert len(song.notes) == int(row["notes"])
        assert len(song.drums()) == int(row["drum_notes"])
        fams = song.families()
        assert {"drums", "piano", "guitar", "bass"} <= set(fams)
        assert abs(float(song.seconds(song.length)) - float(row["length_s"])) < 1.0
        assert all(n.program in {int(p) for p in row["programs"].split()} or n.is_drum
                   for n in song.notes)


def test_cre_tune_reads_meter_tempo_and_monophonic_melody():
    path = os.path.join(CRE, "BanishMisfortune.mid")
    _need(path)
    song = midi.read_midi(path)
    assert song.time_signatures[0][1:] == (6, 8)
    assert song.bpm == pytest.approx(120.0)
    mel = song.melody(channel=0)
    assert len(mel) > 100
    assert all(a.end <= b.start + 1e-9 for a, b in zip(mel, mel[1:]))   # strictly monophonic
    assert all(38 <= n.pitch <= 88 for n in mel)
    bar, pos = song.bar_position(mel[10].start)
    assert 0 <= pos < 3.0  # a 6/8 bar is 3 beats


def test_groove_drums_read_and_rewrite(tmp_path):
    info = os.path.join(GROOVE, "info.csv")
    _need(info)
    row = next(csv.DictReader(open(info)))
    song = midi.read_midi(os.path.join(GROOVE, row["midi_filename"]))
    assert song.notes and all(n.is_drum for n in song.notes)
    assert song.bpm == pytest.approx(float(row["bpm"]), rel=1e-3)
    assert song.seconds(song.length) == pytest.approx(float(row["duration"]), abs=0.1)
    out = tmp_path / "drums.mid"
    midi.write_drums(str(out), song.notes, tempo=song.tempos, length=song.length)
    back = midi.read_midi(str(out))
    assert [(n.pitch, n.velocity, n.channel) for n in back.notes] == \
        [(n.pitch, n.velocity, 9) for n in song.notes]
    assert np.allclose([n.start for n in back.notes], [n.start for n in song.notes], atol=1e-9)
    step, pitch, vel, off = midi.onset_grid(song.notes, steps_per_beat=4)
    assert np.all(np.abs(off) <= 0.5) and len(step) == len(song.notes)


# ----------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------
def test_monophonic_round_trip_keeps_notes_durations_tempo_and_rests(tmp_path):
    pitches = [60, 62, None, 62, 64, 67, None]
    durs = [1.0, 0.5, 0.25, 0.25, 2.0, 0.75, 1.25]
    path = tmp_path / "mono.mid"
    midi.write_monophonic(str(path), pitches, durs, tempo=96, time_signature=(3, 4))
    song = midi.read_midi(str(path))
    assert song.tempos == [(0.0, 96.0)] and song.time_signatures == [(0.0, 3, 4)]
    got = [(n.pitch, n.start, n.duration) for n in song.notes]
    want, t = [], 0.0
    for p, d in zip(pitches, durs):
        if p is not None:
            want.append((p, t, d))
        t += d
    assert got == want
    assert song.length == pytest.approx(sum(durs))  # the trailing rest survives
    assert mido.MidiFile(str(path)).length == pytest.approx(sum(durs) * 60 / 96)


def test_jsb_chorale_polyphonic_round_trip(tmp_path):
    path = os.path.join(JSB, "Jsb16thSeparated.json")
    _need(path)
    chorale = np.array(json.load(open(path))["train"][0])   # (steps, 4) SATB, -1 = silent
    tracks = []
    for v in range(4):
        # one track per voice; runs of the same pitch are held notes (the data cannot tell)
        col = chorale[:, v]
        roll = np.zeros((len(col), 128), dtype=np.float32)
        roll[np.arange(len(col))[col >= 0], col[col >= 0]] = 1
        tracks.append(midi.Track(midi.roll_to_notes(roll, steps_per_beat=4), program=19,
                                 channel=v, name="SATB"[v]))
    out = tmp_path / "chorale.mid"
    midi.write_midi(str(out), tracks, tempo=80)
    song = midi.read_midi(str(out))
    assert {n.channel for n in song.notes} == {0, 1, 2, 3}
    assert {n.program for n in song.notes} == {19}
    roll = midi.piano_roll(song.notes, steps_per_beat=4, length=len(chorale))
    want = np.zeros_like(roll)
    for v in range(4):
        ok = chorale[:, v] >= 0
        want[np.arange(len(chorale))[ok], chorale[ok, v]] = 1
    np.testing.assert_array_equal(roll, want)
    assert len(song.parts()) == 4


def test_written_file_opens_in_music21(tmp_path):
    music21 = pytest.importorskip("music21")
    path = tmp_path / "m.mid"
    midi.write_monophonic(str(path), [60, 64, 67, 72], [1, 1, 1, 1], tempo=100)
    score = music21.converter.parse(str(path))
    assert [n.pitch.midi for n in score.flatten().notes] == [60, 64, 67, 72]


# ----------------------------------------------------------------------------------------------
# Grids and maps
# ----------------------------------------------------------------------------------------------
def test_piano_roll_modes_and_inverse():
    notes = [midi.Note(60, 0, 1), midi.Note(60, 1, 1.5), midi.Note(64, 0.5, 2, velocity=127)]
    hold = midi.piano_roll(notes, steps_per_beat=4, pitch_range=(60, 64))
    assert hold.shape == (8, 5)
    assert hold[:, 0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    onset = midi.piano_roll(notes, 4, pitch_range=(60, 64), mode="onset")
    assert onset[:, 0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    vel = midi.piano_roll(notes, 4, pitch_range=(60, 64), velocity=True)
    assert vel[2, 4] == pytest.approx(1.0) and vel[0, 0] == pytest.approx(90 / 127)
    back = midi.roll_to_notes(hold, 4, low_pitch=60, onsets=onset)
    assert [(n.pitch, n.start, n.end) for n in back] == [(60, 0, 1), (64, 0.5, 2), (60, 1, 1.5)]
    with pytest.raises(ValueError, match="mode"):
        midi.piano_roll(notes, mode="x")


def test_tempo_and_time_signature_maps(tmp_path):
    path = tmp_path / "maps.mid"
    midi.write_midi(str(path), [midi.Track([midi.Note(60, 0, 12)])],
                    tempo=[(0, 120), (4, 60)], time_signature=[(0, 4, 4), (8, 3, 4)])
    song = midi.read_midi(str(path))
    assert song.tempos == [(0.0, 120.0), (4.0, 60.0)]
    assert song.seconds(4.0) == pytest.approx(2.0)
    assert song.seconds(6.0) == pytest.approx(4.0)
    assert song.bar_position(9.5) == (2, pytest.approx(1.5))   # bars 0-1 are 4/4, then 3/4
    assert song.time_signature_at(10) == (8.0, 3, 4)
    assert midi.beats_to_seconds(np.array([0.0, 2.0]), song.tempos).tolist() == [0.0, 1.0]
