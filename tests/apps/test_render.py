"""apps/music/render.py: a MIDI file rendered to a WAV that soundfile opens (skipped, with the
reason, where neither fluidsynth nor timidity is installed), the hint line without a renderer,
the piano roll and the MusicXML score."""
from __future__ import annotations

import numpy as np
import pytest

from apps.music import midi, render

PITCHES, DURS = [60, 62, None, 64, 67], [1.0, 1.0, 0.5, 1.5, 2.0]     # 6 beats


@pytest.fixture
def tune(tmp_path):
    return midi.write_monophonic(str(tmp_path / "tune.mid"), PITCHES, DURS, tempo=120.0,
                                 time_signature=(3, 4))


def test_render_wav_is_opened_by_soundfile(tune, tmp_path):
    if render.render_hint() is not None:
        pytest.skip("no MIDI renderer (fluidsynth with a GM soundfont, or timidity): "
                    + render.render_hint())
    soundfile = pytest.importorskip("soundfile")
    wav = render.render_wav(tune, str(tmp_path / "tune.wav"))
    assert wav == str(tmp_path / "tune.wav")
    audio, sr = soundfile.read(wav)
    assert sr == 44100 and audio.ndim == 2
    assert len(audio) / sr >= 3.0 - 0.05                 # 6 beats at 120 bpm
    assert np.abs(audio).max() > 0.01                     # not silence
    # the rest (beat 2 to 2.5) is quieter than the first note
    first, rest = audio[int(0.05 * sr):int(0.45 * sr)], audio[int(1.1 * sr):int(1.2 * sr)]
    assert np.abs(first).mean() > np.abs(rest).mean()


def test_no_renderer_gives_none_and_one_hint(tune, monkeypatch, capsys):
    monkeypatch.setenv("NNSCRATCH_RENDERER", "none")
    monkeypatch.setattr(render, "_hinted", False)
    assert render.renderer() is None and render.render_hint() == render.HINT
    assert "apt-get install fluidsynth" in render.HINT
    assert render.render_wav(tune, tune + ".wav") is None
    out = render.render_all(tune)
    again = render.render_all(tune)
    assert out["wav"] is None and again["wav"] is None and out["png"].endswith(".png")
    err = capsys.readouterr().err
    assert err.count(render.HINT) == 1                    # once per process, not per file


def test_piano_roll_and_musicxml(tune):
    png = render.plot_piano_roll(tune, title="a tune", mark_beat=2.0)
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    music21 = pytest.importorskip("music21")
    xml = render.write_musicxml(tune)
    notes = list(music21.converter.parse(xml).flatten().notes)
    # the dotted quarter at beat 2.5 crosses the 3/4 bar line: the score ties two notes
    starts = [n for n in notes if n.tie is None or n.tie.type == "start"]
    assert [n.pitch.midi for n in starts] == [p for p in PITCHES if p]
    assert sum(float(n.quarterLength) for n in notes) == sum(DURS) - 0.5     # less the rest
