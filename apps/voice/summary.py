"""summary.json of a voice_vae run, rebuilt from the checkpoints in its folder.

Several processes may train models into one run folder (``train --models vae --out RUN`` beside
``train --models conv3 --out RUN``), and the judge adds its figures later, so the summary is
not kept in memory: ``build_summary`` reads every <model>.npz's own summary entry and history,
merges them into the summary.json already there, redraws curves.png and rewrites the file.
"""
from __future__ import annotations

import os

import nnscratch as nn
from apps.common.runs import read_summary, write_summary
from apps.voice.data import APP
from apps.voice.model import MODELS
from apps.voice.plots import plot_training_curves


def build_summary(out) -> dict:
    """summary.json from the checkpoints in the run folder (written, and returned)."""
    path = os.path.join(out, "summary.json")
    old = read_summary(out)
    models, histories = {}, {}
    for name in MODELS:
        p = os.path.join(out, f"{name}.npz")
        if not os.path.exists(p):
            continue
        ck = nn.load_checkpoint(p)
        if "summary" in ck.extra:
            models[name] = ck.extra["summary"]
            histories[name] = ck.extra["history"]
    vs_seed = {n: {"ours": m["test_mse"], "seed": m.get("seed_test_mse"),
                   "at_or_below_seed": (m["test_mse"] <= m["seed_test_mse"])
                   if m.get("seed_test_mse") else None} for n, m in models.items()}
    summary = {**old, "app": APP, "run": out,
               "split": "official (index 0-4 test, 300 recordings)", "models": models,
               "test_mse_vs_seed": vs_seed}
    files = set(old.get("files", []))
    if histories:
        png = plot_training_curves(histories, os.path.join(out, "curves.png"))
        if png:
            files.add(png)
    for m in models.values():
        files.update(m.get("files", []))
    files.add(path)
    summary["files"] = sorted(files)
    write_summary(out, summary)
    return summary
