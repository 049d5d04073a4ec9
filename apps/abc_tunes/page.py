"""One page per run, ``index.html``: the curves, the figures, and every sampled tune as sheet
music, sound and text, opened straight from the file system (no server, no network).

Each tune shows its title line, its SVG score (abcm2ps), an audio player (the WAV rendered from
its MIDI) with a link to the MIDI file, and its ABC text with a copy button. Paths are relative,
so the run folder can be moved or zipped and the page still works.

The page checks itself: a small script waits until every image and audio element has loaded
or failed, then writes the count into ``<body data-media="loaded/total">`` and tells the reader
if something did not load. ``tests/apps/test_abc_page.py`` renders the page in headless
Chromium and reads that attribute.
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass

from nnscratch.serialization import atomic_write_bytes


@dataclass
class TunePage:
    """What the page shows of one tune; file names are relative to the run folder."""

    number: int
    abc: str
    valid: bool
    fits_meter: bool
    n_notes: int
    bad_bars: int = 0
    midi: str | None = None
    svg: str | None = None
    wav: str | None = None
    problem: str | None = None     # why a file is missing, in one line


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2.5rem; }
table.figures td { padding: 0.15rem 1rem 0.15rem 0; } table.figures td:first-child { color: #555; }
img.curves { max-width: 100%; border: 1px solid #ddd; }
.tune { border-top: 1px solid #ccc; padding-top: 0.5rem; }
.tune img.score { max-width: 100%; background: white; }
.status { color: #555; font-size: 0.9rem; }
.bad { color: #a30; }
pre.abc { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.85rem; }
button.copy { font-size: 0.85rem; }
.hint { color: #a60; font-size: 0.9rem; }
#media-status { font-size: 0.85rem; color: #555; }
"""

_SCRIPT = """
function copyAbc(id, button) {
  const text = document.getElementById(id).textContent;
  const done = () => {
    button.textContent = "Copied";
    setTimeout(() => button.textContent = "Copy ABC", 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else { fallbackCopy(text, done); }
}
function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text; document.body.appendChild(area); area.select();
  try { document.execCommand("copy"); done(); } finally { area.remove(); }
}
(function checkMedia() {
  const media = Array.from(document.querySelectorAll("img, audio"));
  let loaded = 0, settled = 0;
  const failed = [];
  const finish = () => {
    document.body.dataset.media = loaded + "/" + media.length;
    const status = document.getElementById("media-status");
    status.textContent = failed.length ? "Could not load: " + failed.join(", ")
                                       : "All " + media.length + " pictures and recordings loaded.";
    if (failed.length) status.className = "bad";
  };
  const settle = (el, ok) => {
    if (el.dataset.settled) return;
    el.dataset.settled = "1"; settled += 1;
    if (ok) loaded += 1; else failed.push(el.getAttribute("src"));
    if (settled === media.length) finish();
  };
  if (!media.length) { finish(); return; }
  for (const el of media) {
    if (el.tagName === "IMG") {
      if (el.complete) settle(el, el.naturalWidth > 0);
      el.addEventListener("load", () => settle(el, el.naturalWidth > 0));
      el.addEventListener("error", () => settle(el, false));
    } else {
      if (el.readyState >= 1) settle(el, el.duration > 0);
      el.addEventListener("loadedmetadata", () => settle(el, el.duration > 0));
      el.addEventListener("error", () => settle(el, false));
    }
  }
})();
"""


def title_line(abc: str, number: int) -> str:
    """"Tune 3 · 6/8 · D major-ish key as written": the tune's number, meter and key."""
    meter = re.search(r"^M:(.*)$", abc, re.MULTILINE)
    key = re.search(r"^K:(.*)$", abc, re.MULTILINE)
    parts = [f"Tune {number}"]
    if meter:
        parts.append(meter.group(1).strip())
    if key:
        parts.append(f"key {key.group(1).strip()}")
    return " · ".join(parts)


def _figures_table(figures: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in figures.items())
    return f'<table class="figures">{rows}</table>'


def _tune_section(t: TunePage) -> str:
    e = html.escape
    status = [("valid ABC" if t.valid else "invalid ABC"),
              ("every bar fits the meter" if t.fits_meter
               else f"{t.bad_bars} bar(s) off the meter"), f"{t.n_notes} notes"]
    cls = "status" if t.valid and t.fits_meter else "status bad"
    parts = [f'<section class="tune" id="tune-{t.number}">',
             f"<h2>{e(title_line(t.abc, t.number))}</h2>",
             f'<p class="{cls}">{e(", ".join(status))}</p>']
    if t.svg:
        parts.append(f'<img class="score" src="{e(t.svg)}" alt="score of tune {t.number}">')
    if t.wav:
        parts.append(f'<p><audio controls preload="metadata" src="{e(t.wav)}"></audio></p>')
    if t.midi:
        parts.append(f'<p><a href="{e(t.midi)}">MIDI file</a></p>')
    if t.problem:
        parts.append(f'<p class="hint">{e(t.problem)}</p>')
    pre_id = f"abc-{t.number}"
    parts.append(f'<pre class="abc" id="{pre_id}">{e(t.abc)}</pre>')
    parts.append(f'<button class="copy" onclick="copyAbc(\'{pre_id}\', this)">Copy ABC</button>')
    parts.append("</section>")
    return "\n".join(parts)


def write_index(run_dir: str, title: str, figures: dict, tunes: list[TunePage],
                curves: str | None = "curves.png", hints: list[str] = ()) -> str:
    """Write ``run_dir/index.html`` (atomically) and return its path."""
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", _figures_table(figures)]
    if curves and os.path.exists(os.path.join(run_dir, curves)):
        body.append(f'<p><img class="curves" src="{e(curves)}" alt="training curves"></p>')
    body += [f'<p class="hint">{e(h)}</p>' for h in hints]
    body.append('<p id="media-status">Checking that every picture and recording loads…</p>')
    body += [_tune_section(t) for t in tunes]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n")
    path = os.path.join(run_dir, "index.html")
    atomic_write_bytes(path, lambda f: f.write(page.encode("utf-8")))
    return path
