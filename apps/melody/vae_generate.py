"""Melodies from the two VAEs: a notes code and a rhythm code decoded together into one melody,
either sampled (``sample``) or taken along the line between two held-out songs' codes
(``interpolate``), each written as MIDI with its piano roll (PNG), score (MusicXML) and, where
fluidsynth or timidity is installed, a WAV (apps/music/render.py).

Interpolations are judged by how smoothly they change (``interpolation_report``), over many pairs
of held-out segments: between consecutive steps, the share of events (pitch and duration) that
differ, and the path efficiency, the edit distance between the two ends over the edits summed
along the steps (1.0: no detour; docs/derivations/melody_vae.md, section 4).
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


def interpolate_streams(notes_vae, rhythm_vae, a: tuple, b: tuple, steps: int = 5) -> tuple:
    """The two streams decoded along the straight line between the codes (mu) of segments a and
    b, each given as (note codes, duration classes, length) of one segment of max_len events:
    (notes (steps, max_len), their lengths, rhythm (steps, max_len), their lengths)."""
    check_note_codes(a[0]), check_note_codes(b[0])
    lengths = np.array([a[2], b[2]])
    mn, _ = encode_codes(notes_vae, np.array([a[0], b[0]]), lengths, "notes")
    mr, _ = encode_codes(rhythm_vae, np.array([a[1], b[1]]), lengths, "rhythm")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    notes, n_len = decode_codes(notes_vae, (1 - t) * mn[0] + t * mn[1], "notes")
    rhythm, r_len = decode_codes(rhythm_vae, (1 - t) * mr[0] + t * mr[1], "rhythm")
    return notes, n_len, rhythm, r_len


def interpolate(notes_vae, rhythm_vae, a: tuple, b: tuple, steps: int = 5) -> list:
    """Melodies decoded along the straight line between the codes (mu) of segments a and b
    (``interpolate_streams``), each stream cut at its own end, then zipped."""
    return _melodies(*interpolate_streams(notes_vae, rhythm_vae, a, b, steps))


def edit_distance(e1, e2) -> int:
    """Levenshtein distance between two sequences: the fewest elements to substitute, insert
    or delete to turn e1 into e2. A metric: d(a, c) <= d(a, b) + d(b, c)."""
    row = list(range(len(e2) + 1))
    for i, a in enumerate(e1, 1):
        prev, row[0] = row[0], i
        for j, b in enumerate(e2, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (a != b))
    return row[-1]


def change_share(m1, m2) -> float:
    """Share of events that change from melody m1 to m2: the Levenshtein distance over
    (pitch, duration) events (``edit_distance``) over the longer melody's length; 0 for equal
    melodies, 1 for melodies with nothing in common."""
    e1, e2 = list(zip(*m1)), list(zip(*m2))
    n = max(len(e1), len(e2))
    return edit_distance(e1, e2) / n if n else 0.0


def path_efficiency(seqs) -> float:
    """How straight a path of sequences (an interpolation's steps, ends first and last) is:
    the edit distance between the two ends over the sum of the edit distances of the steps.
    1.0: every step moves towards the other end (also when nothing changes at all); small: the
    path wanders through sequences unrelated to both ends. In [0, 1] by the triangle
    inequality (counts of edits are used, not shares, which are normalised by lengths that
    differ from step to step and could break it). docs/derivations/melody_vae.md (14)."""
    walked = sum(edit_distance(a, b) for a, b in zip(seqs[:-1], seqs[1:]))
    return edit_distance(seqs[0], seqs[-1]) / walked if walked else 1.0     # (14)


def _path_figures(paths) -> dict:
    """Mean change per step, mean end-to-end change and mean path efficiency of a list of
    paths (each a list of sequences)."""
    def share(a, b):
        return edit_distance(a, b) / max(len(a), len(b), 1)

    ch = [share(a, b) for p in paths for a, b in zip(p[:-1], p[1:])]
    return {"mean_change_per_step": float(np.mean(ch)),
            "mean_end_to_end_change": float(np.mean([share(p[0], p[-1]) for p in paths])),
            "mean_path_efficiency": float(np.mean([path_efficiency(p) for p in paths]))}


def interpolation_report(notes_vae, rhythm_vae, N, R, L, steps: int, pairs: int, out_dir: str,
                         rng, files: bool = True) -> dict:
    """Interpolations between held-out segments 0 and 1 (written as interp_<k>.mid + files) and
    between ``pairs`` random pairs: per step, the share of events that change; how far apart the
    two ends are; the path efficiency (``path_efficiency``: 1.0 = no detour); how many steps
    change nothing or more than half the melody; at each step k, the mean share of events that
    differ from the first melody and from the last (``distance_from_start``/``_end``: an even
    morph rises and falls in equal steps, a switch stays at 0 and jumps; MusicVAE's Hamming
    distance to the endpoints, in edits); and the same figures for each stream alone
    (``streams``: the notes VAE's pitches, the rhythm VAE's durations), to tell which VAE
    wanders."""
    out = {"steps": steps, "files": [], "first_pair": {}}
    n = len(N)
    if n < 2 or steps < 2:
        return out
    chosen = [(0, 1)] + [tuple(rng.choice(n, 2, replace=False)) for _ in range(pairs)]
    per_step, ends, effs, jumps, still, to_ends = [], [], [], 0, 0, []
    streams = {"notes": [], "rhythm": []}
    for j, (a, b) in enumerate(chosen):
        nc, nl, rc, rl = interpolate_streams(notes_vae, rhythm_vae, (N[a], R[a], L[a]),
                                             (N[b], R[b], L[b]), steps)
        mels = _melodies(nc, nl, rc, rl)
        ch = [change_share(m1, m2) for m1, m2 in zip(mels[:-1], mels[1:])]
        eff = path_efficiency([list(zip(*m)) for m in mels])
        if j == 0:
            out["first_pair"] = {"a": 0, "b": 1, "change_per_step": ch,
                                 "end_to_end": change_share(mels[0], mels[-1]),
                                 "path_efficiency": eff}
            for k, (p, d) in enumerate(mels):
                w = write_melody(os.path.join(out_dir, f"interp_{k}.mid"), p, d,
                                 title=f"interpolation step {k} of {steps - 1} (held-out 0 -> 1)",
                                 files=files)
                out["files"] += [f for f in w.values() if f]
            continue
        per_step += ch
        ends.append(change_share(mels[0], mels[-1]))
        to_ends.append([[change_share(m, mels[0]), change_share(m, mels[-1])] for m in mels])
        effs.append(eff)
        jumps += sum(c > 0.5 for c in ch)
        still += sum(c == 0 for c in ch)
        streams["notes"].append([c[:int(k)].tolist() for c, k in zip(nc, nl)])
        streams["rhythm"].append([c[:int(k)].tolist() for c, k in zip(rc, rl)])
    if per_step:
        out.update({"pairs": pairs, "mean_change_per_step": float(np.mean(per_step)),
                    "median_change_per_step": float(np.median(per_step)),
                    "max_change_per_step": float(np.max(per_step)),
                    "mean_end_to_end_change": float(np.mean(ends)),
                    "mean_path_efficiency": float(np.mean(effs)),
                    "median_path_efficiency": float(np.median(effs)),
                    "steps_changing_over_half": jumps / len(per_step),
                    "steps_changing_nothing": still / len(per_step),
                    "distance_from_start": np.mean(to_ends, axis=0)[:, 0].tolist(),
                    "distance_from_end": np.mean(to_ends, axis=0)[:, 1].tolist(),
                    "streams": {k: _path_figures(v) for k, v in streams.items()}})
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
    print("share of events changed per step: " + " ".join(f"{c:.2f}" for c in ch)
          + f"; path efficiency {path_efficiency([list(zip(*m)) for m in mels]):.2f}")
    print("share of events that differ from song a / from song b at each step: "
          + " ".join(f"{change_share(m, mels[0]):.2f}/{change_share(m, mels[-1]):.2f}"
                     for m in mels))
    return paths


def interpolation_summary(ip: dict) -> str:
    """One line for the log from ``interpolation_report``'s figures ('' without pairs)."""
    if "mean_change_per_step" not in ip:
        return ""
    even = ip["mean_end_to_end_change"] / (ip["steps"] - 1)
    return (f"interpolations ({ip['pairs']} held-out pairs, {ip['steps']} steps): "
            f"{ip['mean_change_per_step']:.2f} of the events change per step (an even path: "
            f"{even:.2f}), path efficiency {ip['mean_path_efficiency']:.2f}, steps changing "
            f"nothing {ip['steps_changing_nothing']:.0%}, over half "
            f"{ip['steps_changing_over_half']:.0%}; "
            "differing from the first song by step "
            + " ".join(f"{d:.2f}" for d in ip["distance_from_start"]))
