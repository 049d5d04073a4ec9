"""The pictures of apps/voice_vae.py and the generated files they go with: spectrogram grids
(each image also written as a WAV by ``write_generated``), training curves, latent codes and
reconstructions.

Images are [0, 1] spectrograms (n_mels, frames) drawn low bands at the bottom; codes are
(N, latent). Every function writes one PNG with matplotlib's Agg backend (no display needed)
and returns its path; the training curves go through apps.common.runs.plot_curves.
"""
from __future__ import annotations

import os

import numpy as np

from apps.audio.wav import write_wav
from apps.common.runs import Line, Panel, plot_curves
from apps.voice.checkpoint import Loaded, to_audio
from apps.voice.model import MODELS, SEED_TEST_MSE


def plot_spectrograms(images, titles, path, suptitle="", cols=None):
    """A grid of [0, 1] images (``cols`` per row, default up to 8), each titled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    cols = max(1, min(n, cols or 8))
    rows = (n + cols - 1) // cols
    height = 2.0 * rows + 0.4
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, height), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
            ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.2 / height) if suptitle else None)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_generated(loaded: Loaded, images, hops, out, stem, titles, suptitle="", seed=0,
                    signals=None, names=None, cols=None):
    """WAV files <stem>_<k>.wav (or <names[k]>.wav) for each image and <stem>.png of the images;
    returns (records, png path). ``signals``: (y, info) pairs already resynthesised (else
    Griffin-Lim runs here)."""
    os.makedirs(out, exist_ok=True)
    records = []
    for k, (img, hop) in enumerate(zip(images, hops)):
        y, info = signals[k] if signals is not None else to_audio(loaded, img, hop, seed=seed + k)
        wav = f"{names[k]}.wav" if names is not None else f"{stem}_{k}.wav"
        path = write_wav(os.path.join(out, wav), y, loaded.cfg.sr)
        records.append({"file": path, "title": titles[k], **info})
    png = plot_spectrograms(images, titles, os.path.join(out, f"{stem}.png"), suptitle, cols)
    return records, png


def plot_training_curves(histories: dict, path):
    """curves.png: train (solid) and validation (dashed) MSE per model on a log scale, with the
    seed's test MSEs as levels; the KL of the variational models beside it ({name: history})."""
    mse, kl = [], []
    for name, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        mse.append(Line(f"{name} train", ep, [h["mse"] for h in hist]))
        mse.append(Line(f"{name} val", ep, [h["val_mse"] for h in hist], "--"))
        if hist and MODELS.get(name, {}).get("variational"):
            kl.append(Line(f"{name} train KL", ep, [h["kl"] for h in hist]))
            kl.append(Line(f"{name} val KL", ep, [h["val_kl"] for h in hist], "--"))
    levels = {f"seed {name}": v for name, v in SEED_TEST_MSE.items() if name in histories}
    return plot_curves(path, "voice auto-encoders: training curves", [
        Panel("MSE on [0, 1] spectrograms (grey: seed's test MSEs)", mse, levels=levels,
              xlabel="epoch", logy=True),
        Panel("KL (nats per example)", kl, xlabel="epoch"),
    ])


def plot_latent(codes, digits, centroids, path, title, histogram: bool = False):
    """Digits coloured, centroids marked: a 3-D view and the three planes (latent 3), or the
    same on the first three principal axes (larger latents). ``histogram`` adds the histogram of
    all code values against the N(0, 1) density (a VAE; the seed's figure 6.5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = np.asarray(codes, np.float64)
    codes, centroids = raw, np.asarray(centroids, np.float64)
    axis_name = "z"
    if codes.shape[1] > 3:  # principal axes of the codes
        mean = codes.mean(0)
        _, _, Vt = np.linalg.svd(codes - mean, full_matrices=False)
        codes, centroids = (codes - mean) @ Vt[:3].T, (centroids - mean) @ Vt[:3].T
        axis_name = "PC"
    elif codes.shape[1] < 3:
        codes = np.pad(codes, ((0, 0), (0, 3 - codes.shape[1])))
        centroids = np.pad(centroids, ((0, 0), (0, 3 - centroids.shape[1])))
    n_panels = 5 if histogram else 4
    fig = plt.figure(figsize=(3.3 * n_panels, 3.8))
    cmap = plt.get_cmap("tab10")
    colors = cmap(np.asarray(digits) % 10)
    ax = fig.add_subplot(1, n_panels, 1, projection="3d")
    ax.scatter(codes[:, 0], codes[:, 1], codes[:, 2], c=colors, s=3, alpha=0.4)
    ax.scatter(centroids[:, 0], centroids[:, 1], centroids[:, 2], c=cmap(np.arange(len(centroids))),
               marker="X", s=80, edgecolors="k")
    ax.set_xlabel(f"{axis_name}1"), ax.set_ylabel(f"{axis_name}2"), ax.set_zlabel(f"{axis_name}3")
    for k, (i, j) in enumerate(((0, 1), (0, 2), (1, 2))):
        a = fig.add_subplot(1, n_panels, k + 2)
        a.scatter(codes[:, i], codes[:, j], c=colors, s=3, alpha=0.4)
        for d, c in enumerate(centroids):
            a.scatter(c[i], c[j], color=cmap(d), marker="X", s=90, edgecolors="k")
            a.annotate(str(d), (c[i], c[j]), fontsize=9, weight="bold", xytext=(3, 3),
                       textcoords="offset points")
        a.set_xlabel(f"{axis_name}{i + 1}"), a.set_ylabel(f"{axis_name}{j + 1}")
    if histogram:
        a = fig.add_subplot(1, n_panels, 5)
        a.hist(raw.ravel(), bins=60, density=True, alpha=0.7, label="codes mu (all dims)")
        g = np.linspace(-4, 4, 200)
        a.plot(g, np.exp(-0.5 * g * g) / np.sqrt(2 * np.pi), "k", label="N(0, 1)")
        a.legend(fontsize=7)
    handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(d), label=str(d))
               for d in range(10)]
    fig.legend(handles=handles, loc="center right", fontsize=7, title="digit")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.96, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reconstructions(models: dict, X, digits, speakers, titles, path):
    """Rows: the original test images, then each model's reconstruction (z = mu; the
    conditional VAEs are given the true digits, and speakers where they know voices)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("original", X)] + [(name, m.model.reconstruct(X, m.condition(digits, speakers)))
                                for name, m in models.items()]
    fig, axes = plt.subplots(len(rows), len(X), figsize=(1.6 * len(X), 1.6 * len(rows) + 0.3),
                             squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for k in range(len(X)):
            ax = axes[r, k]
            ax.imshow(imgs[k], origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[k], fontsize=7)
            if k == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle("test spectrograms and their reconstructions", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
