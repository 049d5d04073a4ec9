"""Melodies from the two VAEs: a notes code and a rhythm code decoded together into one melody,
either sampled (``sample``) or taken along the line between two held-out songs' codes
(``interpolate``), each written as MIDI with its piano roll (PNG), score (MusicXML) and, where
fluidsynth or timidity is installed, a WAV (apps/music/render.py).

Interpolations are judged by how smoothly they change: between consecutive steps, the share of
events (pitch and duration) that differ, over many pairs of held-out segments
(``interpolation_report``).
"""
from __future__ import annotations

import os

import numpy as np

from apps.common.errors import UsageError
from apps.music import midi, render

from .data import check_note_codes, to_melody
from .vae_build import decode_codes, encode_codes, load_vae


def write_melody(path: str, pitches, durs, tempo: float = 100.0, title: str | None = None,
                 files: bool = True) -> dict:
    """A monophonic MIDI file (an empty melody becomes one bar of rest: a file still opens) and,
    with ``files``, its PNG, MusicXML and WAV beside it: {'midi', 'png', 'musicxml', 'wav'}."""
    if not pitches:
        pitches, durs = [None], [4.0]
    midi.write_monophonic(path, pitches, durs, tempo=tempo, name="melody VAE")
    if not files:
        return {"midi": path}
    return render.render_all(path, title=title or os.path.basename(path))


def _melodies(notes, n_len, rhythm, r_len) -> list:
    """(pitches, durations) per row, cut at the first end of either stream."""
    return [to_melody(a, b, int(min(la, lb))) for a, la, b, lb in zip(notes, n_len, rhythm, r_len)]


def sample_melodies(notes_vae, rhythm_vae, n: int, rng, priors=None,
                    temperature: float | None = None) -> list:
    """n melodies from z ~ N(0, I) in both latent spaces, or from the fitted priors
    ``{'notes': (mean, std, chol), 'rhythm': ...}`` (Gaussians over the training codes, full
    covariance when the Cholesky factor ``chol`` is given, else diagonal: with a small KL
    weight the codes do not fill N(0, I), and samples from it are off the data; sampling the
    codes' own spread is the "ex-post density" fix of Ghosh et al. 2020). Each position takes
    its most likely class, or (categorical models, ``temperature`` given) a draw from its
    softmax."""
    def draw(vae, kind):
        eps = rng.standard_normal((n, vae.latent))
        if priors and priors.get(kind) is not None:
            mean, std, chol = (tuple(priors[kind]) + (None,))[:3]
            eps = mean + (eps @ np.asarray(chol).T if chol is not None else std * eps)
        return eps.astype(np.float32)

    zn, zr = draw(notes_vae, "notes"), draw(rhythm_vae, "rhythm")
    sample_rng = rng if temperature else None
    notes, n_len = decode_codes(notes_vae, zn, "notes", sample_rng, temperature or 1.0)
    rhythm, r_len = decode_codes(rhythm_vae, zr, "rhythm", sample_rng, temperature or 1.0)
    return _melodies(notes, n_len, rhythm, r_len)


def interpolate(notes_vae, rhythm_vae, a: tuple, b: tuple, steps: int = 5) -> list:
    """Melodies decoded along the straight line between the codes (mu) of segments a and b, each
    given as (note codes, duration classes, length) of one segment of max_len events."""
    check_note_codes(a[0]), check_note_codes(b[0])
    lengths = np.array([a[2], b[2]])
    mn, _ = encode_codes(notes_vae, np.array([a[0], b[0]]), lengths, "notes")
    mr, _ = encode_codes(rhythm_vae, np.array([a[1], b[1]]), lengths, "rhythm")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    notes, n_len = decode_codes(notes_vae, (1 - t) * mn[0] + t * mn[1], "notes")
    rhythm, r_len = decode_codes(rhythm_vae, (1 - t) * mr[0] + t * mr[1], "rhythm")
    return _melodies(notes, n_len, rhythm, r_len)


def change_share(m1, m2) -> float:
    """Share of events that change from melody m1 to m2: the fewest events to substitute,
    insert or delete (the Levenshtein distance over (pitch, duration) events) over the longer
    melody's length; 0 for equal melodies, 1 for melodies with nothing in common."""
    e1, e2 = list(zip(*m1)), list(zip(*m2))
    n = max(len(e1), len(e2))
    if n == 0:
        return 0.0
    row = list(range(len(e2) + 1))
    for i, a in enumerate(e1, 1):
        prev, row[0] = row[0], i
        for j, b in enumerate(e2, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (a != b))
    return row[-1] / n


def interpolation_report(notes_vae, rhythm_vae, N, R, L, steps: int, pairs: int, out_dir: str,
                         rng, files: bool = True) -> dict:
    """Interpolations between held-out segments 0 and 1 (written as interp_<k>.mid + files) and
    between ``pairs`` random pairs: per step, the share of events that change; how far apart the
    two ends are; how many steps change nothing or more than half the melody."""
    out = {"steps": steps, "files": [], "first_pair": {}}
    n = len(N)
    if n < 2 or steps < 2:
        return out
    chosen = [(0, 1)] + [tuple(rng.choice(n, 2, replace=False)) for _ in range(pairs)]
    per_step, ends, jumps, still = [], [], 0, 0
    for j, (a, b) in enumerate(chosen):
        mels = interpolate(notes_vae, rhythm_vae, (N[a], R[a], L[a]), (N[b], R[b], L[b]), steps)
        ch = [change_share(m1, m2) for m1, m2 in zip(mels[:-1], mels[1:])]
        if j == 0:
            out["first_pair"] = {"a": 0, "b": 1, "change_per_step": ch,
                                 "end_to_end": change_share(mels[0], mels[-1])}
            for k, (p, d) in enumerate(mels):
                w = write_melody(os.path.join(out_dir, f"interp_{k}.mid"), p, d,
                                 title=f"interpolation step {k} of {steps - 1} (held-out 0 -> 1)",
                                 files=files)
                out["files"] += [f for f in w.values() if f]
            continue
        per_step += ch
        ends.append(change_share(mels[0], mels[-1]))
        jumps += sum(c > 0.5 for c in ch)
        still += sum(c == 0 for c in ch)
    if per_step:
        out.update({"pairs": pairs, "mean_change_per_step": float(np.mean(per_step)),
                    "median_change_per_step": float(np.median(per_step)),
                    "max_change_per_step": float(np.max(per_step)),
                    "mean_end_to_end_change": float(np.mean(ends)),
                    "steps_changing_over_half": jumps / len(per_step),
                    "steps_changing_nothing": still / len(per_step)})
    return out


def sample_cmd(args) -> list:
    """``sample``: new melodies from a run's two checkpoints."""
    (nv, n_prior), (rv, r_prior) = (load_vae(os.path.join(args.run, f"{k}.npz"))
                                    for k in ("notes", "rhythm"))
    priors = {"notes": n_prior, "rhythm": r_prior} if args.prior == "fitted" else None
    out = args.out or args.run
    os.makedirs(out, exist_ok=True)
    paths = []
    for i, (p, d) in enumerate(sample_melodies(nv, rv, args.n, np.random.default_rng(args.seed),
                                               priors, getattr(args, "temperature", None))):
        w = write_melody(os.path.join(out, f"sample_{args.seed}_{i}.mid"), p, d,
                         title=f"melody VAE sample {i} (seed {args.seed})")
        paths.append(w["midi"])
        print(f"wrote {', '.join(f for f in w.values() if f)}: "
              f"{sum(x is not None for x in p)} notes")
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
    os.makedirs(out, exist_ok=True)
    seg = [(held["notes"][i], held["rhythm"][i], held["lengths"][i]) for i in (args.a, args.b)]
    mels = interpolate(nv, rv, seg[0], seg[1], args.steps)
    paths = []
    for k, (p, d) in enumerate(mels):
        w = write_melody(os.path.join(out, f"interp_{args.a}_{args.b}_{k}.mid"), p, d,
                         title=f"interpolation {args.a} -> {args.b}, step {k}")
        paths.append(w["midi"])
        print(f"wrote {', '.join(f for f in w.values() if f)}: "
              f"{sum(x is not None for x in p)} notes")
    ch = [change_share(m1, m2) for m1, m2 in zip(mels[:-1], mels[1:])]
    print("share of events changed per step: " + " ".join(f"{c:.2f}" for c in ch))
    return paths
