"""Pictures of the melody apps' runs: learning curves (drawn by apps.common.runs.plot_curves)
and the VAE's reconstruction of a held-out song. Piano rolls of generated melodies are drawn
from their MIDI files by apps/music/render.py.

matplotlib is imported inside the drawing function: it is slow to load and only needed when a
picture is written.
"""
from __future__ import annotations

import numpy as np

from apps.common.runs import Line, Panel, plot_curves


def plot_lstm_curves(history: list, base: dict, path: str) -> str | None:
    """Cross-entropy and accuracy per epoch (train and held-out) beside the bigram's levels."""
    ep = [h["epoch"] for h in history]
    return plot_curves(path, "melody LSTM", [
        Panel("cross-entropy (nats/step)",
              [Line("train", ep, [h["train_loss"] for h in history], "o-"),
               Line("held-out", ep, [h["val"]["cross_entropy"] for h in history], "o-")],
              levels={"bigram (held-out)": base["cross_entropy"]}, xlabel="epoch"),
        Panel("accuracy",
              [Line("LSTM held-out", ep, [h["val"]["accuracy"] for h in history], "o-")],
              levels={"bigram": base["accuracy"]}, xlabel="epoch"),
    ])


def plot_vae_curves(hist: dict, path: str) -> str | None:
    """Per VAE (notes, rhythm): train and validation loss; then both held-out token accuracies."""
    panels = []
    for kind in ("notes", "rhythm"):
        h = hist[kind]
        ep = [e["epoch"] for e in h]
        panels.append(Panel(f"{kind} VAE: BCE + KL per segment",
                            [Line("train loss", ep, [e["train"]["loss"] for e in h]),
                             Line("val loss", ep, [e["val_loss"] for e in h])], xlabel="epoch"))
    panels.append(Panel("val token accuracy",
                        [Line(f"{kind} VAE", [e["epoch"] for e in hist[kind]],
                              [e["val_accuracy"] for e in hist[kind]], "--")
                         for kind in ("notes", "rhythm")], xlabel="epoch", ylim=(0, 1)))
    return plot_curves(path, "melody VAEs", panels)


def plot_reconstruction(orig_n, rec_n, orig_r, rec_r, length: int, path: str) -> None:
    """Note codes and duration classes (each (max_len,)) of a song and its reconstruction, over
    the song's first ``length`` events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
    k = np.arange(length)
    a.step(k, orig_n[:length], where="mid", label="original", lw=3, alpha=0.5)
    a.step(k, rec_n[:length], where="mid", label="reconstruction", ls="--")
    a.set_ylabel("pitch (99 = rest)")
    a.legend()
    b.step(k, orig_r[:length], where="mid", label="original", lw=3, alpha=0.5)
    b.step(k, rec_r[:length], where="mid", label="reconstruction", ls="--")
    b.set_ylabel("duration class")
    b.set_xlabel("event")
    fig.suptitle("held-out song: original and VAE reconstruction")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
