"""Sheet music for ABC tunes: one SVG score per tune, drawn by the ``abcm2ps`` program.

abcm2ps is the field's standard ABC typesetter (Debian package ``abcm2ps``). It is used when it
is installed; when it is not, :func:`abc_to_svg` returns None and :data:`INSTALL_HINT` says in
one line how to get it, so that a caller can say so once and go on.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

INSTALL_HINT = ("no SVG scores: the abcm2ps program is not installed "
                "(Debian/Ubuntu: sudo apt-get install abcm2ps)")


def have_abcm2ps() -> bool:
    return shutil.which("abcm2ps") is not None


def with_title(abc: str, title: str) -> str:
    """The tune with a ``T:`` title line after its ``X:`` line (replacing one it has)."""
    lines = [ln for ln in abc.strip("\n").split("\n") if not ln.startswith("T:")]
    at = 1 if lines and lines[0].startswith("X:") else 0
    return "\n".join(lines[:at] + [f"T:{title}"] + lines[at:]) + "\n"


def abc_to_svg(abc: str, svg_path: str, title: str | None = None,
               timeout: float = 30.0) -> str | None:
    """Typeset one tune into ``svg_path``; None when abcm2ps is missing or cannot draw it.

    abcm2ps writes one SVG per page (``-g``); a tune longer than a page keeps its first page,
    which is all a web page shows at once anyway.
    """
    if not have_abcm2ps():
        return None
    text = with_title(abc, title) if title else abc
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "tune.abc")
        with open(src, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            subprocess.run(["abcm2ps", "-q", "-g", "-O", os.path.join(tmp, "score.svg"), src],
                           cwd=tmp, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        pages = sorted(glob.glob(os.path.join(tmp, "score*.svg")))
        if not pages or os.path.getsize(pages[0]) == 0:
            return None
        os.makedirs(os.path.dirname(os.path.abspath(svg_path)), exist_ok=True)
        shutil.move(pages[0], svg_path)
    return svg_path
