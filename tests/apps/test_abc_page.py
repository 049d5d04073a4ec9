"""What a user of the ABC app receives: every tune as MIDI (read back by mido), an SVG score
(abcm2ps), a WAV recording (fluidsynth/timidity), and index.html, rendered in headless Chromium
with every picture and recording loaded."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import mido
import pytest
import soundfile as sf

from apps.abc_tunes.page import title_line
from apps.abc_tunes.publish import publish_tunes
from apps.music.render import render_hint
from apps.music.score import have_abcm2ps

TUNES = [
    'X:1\nM:6/8\nL:1/8\nK:D\n"D"A|ABc def|"G"g3 "A7"f2e|"D"d3 d2:|\n',
    "X:1\nM:4/4\nL:1/8\nK:G\n|:GABc d2B2|c2A2 G4:|\n|:B2dB c2ec|B2G2 G4:|\n",
    "X:1\nM:3/4\nL:1/8\nK:Em\nE2 (3FGA B2|e4 d2|B2 A2 G2|E6|]\n",
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig = plt.figure(figsize=(3, 2))
    plt.plot([1, 2, 3])
    fig.savefig(out / "curves.png")
    plt.close(fig)
    tunes = TUNES + ["X:1\nM:4/4\nL:1/8\nABcd efga|\n"]   # no K: line: not a tune
    report = publish_tunes(tunes, str(out), log=lambda *a: None, figures={"steps": 3})
    return out, report


def test_every_valid_tune_becomes_midi_that_mido_opens(published):
    out, report = published
    assert report["valid_share"] == 0.75 and report["midi_share_of_valid"] == 1.0
    for entry in report["tunes"][:3]:
        mf = mido.MidiFile(entry["midi"])
        assert any(m.type == "note_on" and m.velocity for tr in mf.tracks for m in tr)
    bad = report["tunes"][3]
    assert not bad["valid"] and "midi" not in bad


def test_scores_and_recordings_where_the_programs_exist(published):
    out, report = published
    if have_abcm2ps():
        assert report["scores"] == 3
        for e in report["tunes"][:3]:
            with open(e["svg"], encoding="utf-8") as f:
                assert "<svg" in f.read(500)
    else:
        assert any("abcm2ps" in h for h in report["hints"])
    if render_hint() is None:
        assert report["recordings"] == 3
        data, sr = sf.read(report["tunes"][0]["wav"])
        assert sr == 44100 and len(data) > sr and abs(data).max() > 0.01
    else:
        assert any("fluidsynth" in h for h in report["hints"])


def test_title_line():
    assert title_line(TUNES[0], 1) == "Tune 1 · 6/8 · key D"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                    "(Debian/Ubuntu: sudo apt-get install chromium): the page is not rendered")
def test_index_renders_in_chromium_with_every_picture_and_recording(published, tmp_path):
    out, report = published
    page = os.path.join(out, "index.html")
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=15000", "--dump-dom", f"file://{page}"],
        capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<body[^>]*data-media="(\d+)/(\d+)"', dom)
    assert m, "the page's media check did not finish"
    loaded, total = int(m.group(1)), int(m.group(2))
    expected = 1 + (3 if have_abcm2ps() else 0) + (3 if render_hint() is None else 0)
    assert (loaded, total) == (expected, expected)
    for tune in TUNES:     # the ABC text of every tune is on the page, ready to copy
        assert tune.split("\n")[4][:12].replace('"', "&quot;") in dom or \
            tune.split("\n")[4][:12] in dom
    assert dom.count('class="copy"') == 4
