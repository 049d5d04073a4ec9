"""Melodies from the two VAEs: a notes code and a rhythm code decoded together into one melody,
either sampled (``sample``) or taken along the line between two held-out songs' codes
(``interpolate``), written as MIDI.
"""
from __future__ import annotations

import os

import numpy as np

from apps.common.errors import UsageError
from apps.music import midi

from .data import check_note_codes, denormalise, normalise, to_melody
from .vae_model import load_vae


def write_melody(path: str, pitches, durs, tempo: float = 100.0) -> str:
    """A monophonic MIDI file; an empty melody becomes one bar of rest (a file still opens)."""
    if not pitches:
        pitches, durs = [None], [4.0]
    return midi.write_monophonic(path, pitches, durs, tempo=tempo, name="melody VAE")


def sample_melodies(notes_vae, rhythm_vae, n: int, rng, priors=None) -> list:
    """n melodies from z ~ N(0, I) in both latent spaces, or from the fitted priors
    ``{'notes': (mean, std), 'rhythm': (mean, std)}`` (diagonal Gaussians over the training
    codes: with a small KL weight the codes do not fill N(0, I), and samples from it are off the
    data; sampling the codes' own spread is the "ex-post density" fix of Ghosh et al. 2020)."""
    def draw(vae, kind):
        eps = rng.standard_normal((n, vae.latent))
        if priors and priors.get(kind) is not None:
            mean, std = priors[kind]
            eps = mean + std * eps
        return eps.astype(np.float32)

    zn, zr = draw(notes_vae, "notes"), draw(rhythm_vae, "rhythm")
    notes = denormalise(notes_vae.decode(zn), "notes")
    rhythm = denormalise(rhythm_vae.decode(zr), "rhythm")
    return [to_melody(a, b) for a, b in zip(notes, rhythm)]


def interpolate(notes_vae, rhythm_vae, notes_a, rhythm_a, notes_b, rhythm_b,
                steps: int = 5) -> list:
    """Melodies decoded along the straight line between the codes (mu) of songs a and b (each
    given as note codes and duration classes of one segment, (max_len,))."""
    check_note_codes(notes_a), check_note_codes(notes_b)
    xa = normalise(np.array([notes_a, notes_b]), "notes").astype(np.float32)
    xr = normalise(np.array([rhythm_a, rhythm_b]), "rhythm").astype(np.float32)
    mn, _ = notes_vae.encode(xa)
    mr, _ = rhythm_vae.encode(xr)
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        zn = ((1 - t) * mn[0] + t * mn[1])[None].astype(np.float32)
        zr = ((1 - t) * mr[0] + t * mr[1])[None].astype(np.float32)
        out.append(to_melody(denormalise(notes_vae.decode(zn), "notes")[0],
                             denormalise(rhythm_vae.decode(zr), "rhythm")[0]))
    return out


def sample_cmd(args) -> list:
    """``sample``: new melodies from a run's two checkpoints."""
    (nv, n_prior), (rv, r_prior) = (load_vae(os.path.join(args.run, f"{k}.npz"))
                                    for k in ("notes", "rhythm"))
    priors = {"notes": n_prior, "rhythm": r_prior} if args.prior == "fitted" else None
    out = args.out or args.run
    paths = []
    for i, (p, d) in enumerate(sample_melodies(nv, rv, args.n, np.random.default_rng(args.seed),
                                               priors)):
        path = write_melody(os.path.join(out, f"sample_{args.seed}_{i}.mid"), p, d)
        paths.append(path)
        print(f"wrote {path}: {sum(x is not None for x in p)} notes")
    return paths


def interpolate_cmd(args) -> list:
    """``interpolate``: melodies between two of the run's held-out segments (heldout.npz)."""
    nv, rv = (load_vae(os.path.join(args.run, f"{k}.npz"))[0] for k in ("notes", "rhythm"))
    held = np.load(os.path.join(args.run, "heldout.npz"))
    n = len(held["notes"])
    for i in (args.a, args.b):
        if not 0 <= i < n:
            raise UsageError(f"song index {i} out of range: the run holds {n} held-out segments")
    out = args.out or args.run
    paths = []
    for k, (p, d) in enumerate(interpolate(nv, rv, held["notes"][args.a], held["rhythm"][args.a],
                                           held["notes"][args.b], held["rhythm"][args.b],
                                           args.steps)):
        path = write_melody(os.path.join(out, f"interp_{args.a}_{args.b}_{k}.mid"), p, d)
        paths.append(path)
        print(f"wrote {path}: {sum(x is not None for x in p)} notes")
    return paths
