"""MIDI to sound: a WAV rendering of a MIDI file with a General MIDI soundfont.

The field's standard players are used when installed: ``fluidsynth`` with a GM soundfont
(Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``), else ``timidity``. When neither can
play, :func:`render_wav` returns None and :func:`render_hint` says in one line how to install
one, so that a generator writes its MIDI anyway and tells the user once.

``NNSCRATCH_SOUNDFONT`` names another .sf2 file.
"""
from __future__ import annotations

import os
import shutil
import subprocess

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
