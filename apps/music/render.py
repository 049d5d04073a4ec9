"""MIDI to sound: a WAV rendering of a MIDI file with a General MIDI soundfont.

The field's standard players are used when installed: ``fluidsynth`` with a GM soundfont
(Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``), else ``timidity``. When neither can
play, :func:`render_wav` returns None and :func:`render_hint` says in one line how to install
one, so that a generator writes its MIDI anyway and tells the user once.

``NNSCRATCH_SOUNDFONT`` names another .sf2 file; ``NNSCRATCH_RENDERER=none`` turns rendering
off (as on a machine without a renderer; tests of the hint path use it).

Beside the sound, what a person opens next to a generated MIDI file::

    plot_piano_roll("tune.mid", "tune.png", title="sample 3", mark_beat=8.0)  # prime in orange
    write_musicxml("tune.mid", "tune.musicxml")      # a score, through music21 (None without it)
    render_all("tune.mid", title="sample 3")         # {'midi', 'png', 'musicxml', 'wav'} beside
                                                     # it; prints render_hint() once per process
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from . import midi

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2")
HINT = ("no WAV recordings: install a MIDI synthesizer with a General MIDI soundfont "
        "(Debian/Ubuntu: sudo apt-get install fluidsynth fluid-soundfont-gm)")


def soundfont() -> str | None:
    """The .sf2 file to play with: $NNSCRATCH_SOUNDFONT, else a GM soundfont where Debian puts
    it; None when there is none."""
    env = os.environ.get("NNSCRATCH_SOUNDFONT")
    if env:
        return env if os.path.isfile(env) else None
    return next((p for p in SOUNDFONTS if os.path.isfile(p)), None)


def renderer() -> str | None:
    """'fluidsynth' (with a soundfont), 'timidity', or None when neither can play."""
    if os.environ.get("NNSCRATCH_RENDERER", "").strip().lower() == "none":
        return None
    if shutil.which("fluidsynth") and soundfont():
        return "fluidsynth"
    if shutil.which("timidity"):
        return "timidity"
    return None


def render_hint() -> str | None:
    """None when WAV files can be rendered, else one line saying how to make them possible."""
    return None if renderer() else HINT


def render_wav(midi_path: str, wav_path: str, sample_rate: int = 44100,
               timeout: float = 120.0) -> str | None:
    """Play ``midi_path`` into ``wav_path`` (16-bit PCM); None when no renderer is installed or
    the renderer fails (the MIDI file stays as it is)."""
    how = renderer()
    if how is None:
        return None
    os.makedirs(os.path.dirname(os.path.abspath(wav_path)), exist_ok=True)
    tmp = wav_path + ".part"
    if how == "fluidsynth":
        cmd = ["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", str(sample_rate), "-F", tmp,
               "-T", "wav", soundfont(), midi_path]
    else:
        cmd = ["timidity", "-Ow", "-s", str(sample_rate), "-o", tmp, midi_path]
    try:
        subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if not os.path.exists(tmp) or os.path.getsize(tmp) <= 44:   # a WAV header alone
        if os.path.exists(tmp):
            os.remove(tmp)
        return None
    os.replace(tmp, wav_path)
    return wav_path


# ----------------------------------------------------------------------------------------------
# Pictures and scores, and everything at once
# ----------------------------------------------------------------------------------------------
_hinted = False


def plot_piano_roll(midi_path: str, png_path: str | None = None, title: str | None = None,
                    mark_beat: float | None = None) -> str:
    """A PNG piano roll of every note of a MIDI file (default: beside it), with light bar lines
    from its first time signature; notes starting before ``mark_beat`` (a prime) are orange,
    with a dashed line there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png_path = png_path or os.path.splitext(midi_path)[0] + ".png"
    song = midi.read_midi(midi_path)
    length = max(song.length, 1.0)
    fig, ax = plt.subplots(figsize=(min(16.0, 4.0 + length / 8), 3.2))
    if song.time_signatures:
        start, num, den = song.time_signatures[0]
        bar = num * 4.0 / den
        for k in range(1, int(length / bar) + 1):
            ax.axvline(start + k * bar, c="0.88", lw=0.6, zorder=0)
    tracks = sorted({n.track for n in song.notes})
    for n in song.notes:
        early = mark_beat is not None and n.start < mark_beat - 1e-9
        ax.barh(n.pitch, n.end - n.start, left=n.start, height=0.8, edgecolor="white",
                linewidth=0.6,
                color="C1" if early else ("C0", "C2", "C3", "C4")[tracks.index(n.track) % 4])
    if mark_beat is not None:
        ax.axvline(mark_beat, c="k", ls="--", lw=1)
    ax.set_xlim(0, length)
    ax.set_xlabel("beats (quarter notes)" + ("; prime in orange" if mark_beat else ""))
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or os.path.basename(midi_path))
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def write_musicxml(midi_path: str, xml_path: str | None = None) -> str | None:
    """The MIDI file as a MusicXML score (default: beside it), read and written by music21 on a
    sixteenth-note grid; None when music21 is not installed."""
    try:
        import music21
    except ImportError:
        return None
    xml_path = xml_path or os.path.splitext(midi_path)[0] + ".musicxml"
    score = music21.converter.parse(midi_path, quantizePost=True, quarterLengthDivisors=(4,))
    return str(score.write("musicxml", fp=xml_path))


def render_all(midi_path: str, title: str | None = None, mark_beat: float | None = None,
               wav: bool = True, musicxml: bool = True) -> dict:
    """The files a person opens, written beside ``midi_path``: {'midi', 'png', 'musicxml',
    'wav'} (None where a tool is missing). Without a WAV renderer, ``render_hint()`` is printed
    once per process on stderr and the rest is written anyway."""
    global _hinted
    stem = os.path.splitext(midi_path)[0]
    out = {"midi": midi_path, "png": plot_piano_roll(midi_path, stem + ".png", title, mark_beat)}
    if musicxml:
        out["musicxml"] = write_musicxml(midi_path, stem + ".musicxml")
    if wav:
        out["wav"] = render_wav(midi_path, stem + ".wav")
        hint = render_hint()
        if out["wav"] is None and hint and not _hinted:
            print(hint, file=sys.stderr)
            _hinted = True
    return out
