"""A run folder and what every app writes into it: metrics.csv, summary.json, curves.png.

    run = make_run_dir(args.out, "melody_lstm")          # runs/melody_lstm/<timestamp>/
    log = MetricsLog(os.path.join(run, "metrics.csv"), ["epoch", "train_loss", "val_loss"])
    log.append({"epoch": 1, "train_loss": 2.3, "val_loss": 2.1})
    plot_curves(os.path.join(run, "curves.png"), "melody LSTM", [
        Panel("cross-entropy", [Line("train", ep, tr), Line("val", ep, va, "o-")]),
    ])
    write_summary(run, {"val_loss": 2.1, ...})           # atomic, NumPy scalars allowed

Models: nanoGPT's out_dir, Keras' CSVLogger, Magenta's run directories.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from nnscratch.serialization import atomic_write_bytes

RUNS_ROOT = "runs"


def timestamp() -> str:
    """Local time as YYYYmmdd-HHMMSS: sorts in time order, safe in a file name."""
    return time.strftime("%Y%m%d-%H%M%S")


def make_run_dir(out: str | None, app: str | None = None) -> str:
    """Create and return ``out``, or ``runs/<app>/<timestamp>`` (``runs/<timestamp>`` without app).

    An existing ``out`` is reused (a resumed run writes into its own folder); a path that exists
    and is not a folder is refused with an error naming it.
    """
    path = out or (os.path.join(RUNS_ROOT, app, timestamp()) if app else
                   os.path.join(RUNS_ROOT, timestamp()))
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"run folder {path!r} exists and is not a folder")
    os.makedirs(path, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------------
# metrics.csv
# ----------------------------------------------------------------------------------------------
class MetricsLog:
    """Append-only CSV of one row per evaluation, with a fixed header written once.

    Rows may miss fields (left empty) but may not add unknown ones: a typo in a metric's name
    should fail at once, not vanish from the file. A resumed run appends to the same file.
    """

    def __init__(self, path: str, fields: list[str]):
        self.path, self.fields = path, list(fields)

    def append(self, row: dict) -> None:
        unknown = set(row) - set(self.fields)
        if unknown:
            raise KeyError(f"{self.path}: unknown metric(s) {sorted(unknown)}; "
                           f"the columns are {self.fields}")
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            if new:
                w.writeheader()
            w.writerow({k: _plain(row.get(k)) for k in self.fields})

    def rows(self) -> list[dict]:
        """Every row so far, numbers parsed back to float (empty cells to None)."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="") as f:
            return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _parse(v):
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v


# ----------------------------------------------------------------------------------------------
# summary.json
# ----------------------------------------------------------------------------------------------
def _plain(o):
    """NumPy scalars and arrays to Python numbers and lists; NaN and inf to None (valid JSON)."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, np.generic):
        return _plain(o.item())
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def write_summary(run_dir: str, summary: dict, name: str = "summary.json") -> str:
    """Write ``summary`` as indented JSON into ``run_dir/name`` atomically; return the path."""
    path = os.path.join(run_dir, name)
    text = json.dumps(_plain(summary), indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))
    return path


def read_summary(run_dir: str, name: str = "summary.json") -> dict:
    """The run's summary, or {} when it has none yet."""
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def update_summary(run_dir: str, **fields) -> str:
    """Merge ``fields`` into the run's summary.json (creating it) and rewrite it atomically."""
    summary = read_summary(run_dir)
    summary.update(fields)
    return write_summary(run_dir, summary)


# ----------------------------------------------------------------------------------------------
# curves.png
# ----------------------------------------------------------------------------------------------
@dataclass
class Line:
    """One curve: ``label``, x and y values, and a matplotlib format string."""

    label: str
    x: list
    y: list
    fmt: str = "-"


@dataclass
class Panel:
    """One subplot: its y label, curves, dashed reference levels ({label: y}), log scale."""

    ylabel: str
    lines: list[Line] = field(default_factory=list)
    levels: dict = field(default_factory=dict)
    xlabel: str = "step"
    logy: bool = False
    ylim: tuple | None = None


def plot_curves(path: str, title: str, panels: list[Panel], dpi: int = 100) -> str | None:
    """Draw ``panels`` side by side into a PNG at ``path``; nothing is written without data."""
    panels = [p for p in panels if any(len(line.x) for line in p.lines)]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        for line in p.lines:
            ax.plot(line.x, line.y, line.fmt, label=line.label, ms=3)
        for label, y in p.levels.items():
            ax.axhline(y, ls="--", c="gray", lw=1, label=label)
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel)
        if p.logy:
            ax.set_yscale("log")
        if p.ylim:
            ax.set_ylim(*p.ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
