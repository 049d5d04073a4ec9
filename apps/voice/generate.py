"""Generation commands of apps/voice_vae.py: `reconstruct` (a recording through an
auto-encoder), `sample` (a digit's centroid, the prior, a point, or the CVAE's chosen digit) and
`interpolate` (the straight line between two recordings' codes), each back to sound.

Codes z are (n, latent) float32; images (n, n_mels, frames) in [0, 1]; every command writes one
WAV per image and a PNG of the images (apps/voice/plots.write_generated) to --out, default
<run>/generated/<what>-<time>/.
"""
from __future__ import annotations

import os

import numpy as np

from apps.audio.wav import read_wav
from apps.common.errors import UsageError
from apps.common.runs import timestamp
from apps.voice.checkpoint import Loaded, find_checkpoint
from apps.voice.data import check_digit, features_of, one_hot
from apps.voice.judge import Judge
from apps.voice.latent_mixture import sample_mixture
from apps.voice.plots import write_generated


def _gen_out(args, loaded, what) -> str:
    return args.out or os.path.join(os.path.dirname(os.path.abspath(loaded.path)), "generated",
                                    f"{what}-{timestamp()}")


def _encode_file(loaded: Loaded, path):
    """(image in [0, 1], hop) of a recording, through the training features."""
    y, _ = read_wav(path, sr=loaded.cfg.sr, max_seconds=10.0)
    S_db, hop = features_of(y, loaded.cfg, loaded.protocol)
    return loaded.scaler.transform(S_db[None])[0], hop


def _report(records, png, log=print):
    for r in records:
        log(f"wrote {r['file']} ({r['title']}; {r['seconds']:.2f} s, spectral convergence "
            f"{r['spectral_convergence']:.3f})")
    log(f"wrote {png}")


def cmd_reconstruct(args, log=print) -> int:
    m = Loaded(find_checkpoint(args.run, args.model, args.checkpoint))
    digit = None
    if m.model.n_classes:
        digit = check_digit(args.digit)
    elif args.digit is not None:
        check_digit(args.digit)
    x, hop = _encode_file(m, args.file)
    c = one_hot([digit]) if digit is not None else None
    rec = m.model.reconstruct(x[None], c)[0]
    mse = float(np.mean((rec - x) ** 2))
    out = _gen_out(args, m, "reconstruct")
    stem = os.path.splitext(os.path.basename(args.file))[0]
    records, png = write_generated(m, [x, rec], [hop, hop], out, f"{stem}_{m.name}",
                                   ["original (resynthesised)", f"{m.name} reconstruction"],
                                   f"{args.file}: MSE {mse:.5f}", seed=args.seed)
    _report(records, png, log)
    log(f"[reconstruct] {args.file} through {m.name}: MSE {mse:.5f} on the [0, 1] spectrogram")
    return 0


def cmd_sample(args, log=print) -> int:
    if args.cvae:
        model_name = args.model or "cvae"
    elif args.source in ("prior", "mixture"):
        model_name = args.model or "vae"
    else:
        model_name = args.model or "conv3"
    m = Loaded(find_checkpoint(args.run, model_name, args.checkpoint))
    rng = np.random.default_rng(args.seed)
    n = args.n  # >= 1: the parser's positive_int
    digits = None
    if args.cvae:
        if not m.model.n_classes:
            raise UsageError(f"{m.path}: --cvae needs a conditional VAE checkpoint (cvae.npz), "
                             f"not {m.name}")
        d = check_digit(args.digit)
        digits = np.full(n, d)
        z = rng.standard_normal((n, m.latent)) * args.temperature
        titles = [f"digit {d} #{k}" for k in range(n)]
        hops, what = [m.hop_for(d)] * n, f"cvae-digit{d}"
    elif m.model.n_classes:
        raise UsageError(f"{m.path} is a conditional VAE: use 'sample --cvae --digit D'")
    elif args.source == "centroid":
        d = check_digit(args.digit)
        cent, std = m.arrays["centroids"][d], m.arrays["centroid_std"][d]
        z = cent[None] + args.spread * std[None] * rng.standard_normal((n, m.latent))
        if n >= 1:
            z[0] = cent
        titles = [f"centroid {d}" + (f" + noise #{k}" if k else "") for k in range(n)]
        hops, what = [m.hop_for(d)] * n, f"centroid-digit{d}"
    elif args.source == "prior":
        if not m.model.variational:
            log(f"note: {m.name} is not a VAE; sampling its codes' Gaussian fit (mean, std) "
                "instead of N(0, I)")
            z = m.arrays["code_mean"] + m.arrays["code_std"] * rng.standard_normal((n, m.latent))
        else:
            z = rng.standard_normal((n, m.latent)) * args.temperature
        titles, hops, what = [f"prior #{k}" for k in range(n)], [m.hop_for()] * n, "prior"
    elif args.source == "mixture":
        if "mix_means" not in m.arrays:
            raise UsageError(f"{m.path} holds no mixture prior (the unconditional VAE's best "
                             "checkpoint gets one when its training ends): use --from prior")
        z = sample_mixture(m.arrays, n, rng)
        titles, hops, what = [f"mixture #{k}" for k in range(n)], [m.hop_for()] * n, "mixture"
    else:  # a point given on the command line
        if not args.z:
            raise UsageError("--from point needs --z Z1 Z2 ... (one value per latent dimension)")
        if len(args.z) != m.latent:
            raise UsageError(f"wrong latent size: --z has {len(args.z)} values but {m.name} has a "
                             f"latent space of size {m.latent}")
        z = np.array([args.z], dtype=np.float32)
        titles, hops, what = ["z = " + ", ".join(f"{v:g}" for v in args.z)], [m.hop_for()], "point"
    if args.latent is not None and args.latent != m.latent:
        raise UsageError(f"wrong latent size: --latent {args.latent} but {m.path} has latent "
                         f"size {m.latent}")
    imgs = m.decode(z, digits)
    out = _gen_out(args, m, what)
    records, png = write_generated(m, imgs, hops, out, f"{m.name}_{what}", titles,
                                   f"{m.name}: {what}", seed=args.seed)
    _report(records, png, log)
    if args.judge:
        judge = Judge(args.classifier)
        p = judge.proba([read_wav(r["file"])[0] for r in records], m.cfg.sr)
        for r, pr in zip(records, p):
            log(f"[judge] {os.path.basename(r['file'])}: digit {int(pr.argmax())} "
                f"(p = {pr.max():.3f})")
    return 0


def cmd_interpolate(args, log=print) -> int:
    m = Loaded(find_checkpoint(args.run, args.model or "vae", args.checkpoint))
    if m.model.n_classes:
        raise UsageError("interpolate uses an unconditional model (dense3, conv3, conv10, vae), "
                         "not the cvae")
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    (xa, ha), (xb, hb) = _encode_file(m, args.a), _encode_file(m, args.b)
    mu, _ = m.model.encode(np.stack([xa, xb]))
    t = np.linspace(0.0, 1.0, args.steps)[:, None]
    z = (1 - t) * mu[0] + t * mu[1]
    imgs = m.decode(z.astype(np.float32))
    hops = [int(round((1 - s) * ha + s * hb)) for s in t[:, 0]]
    out = _gen_out(args, m, "interpolate")
    title = f"{m.name}: {os.path.basename(args.a)} -> {os.path.basename(args.b)}"
    records, png = write_generated(m, imgs, hops, out, f"{m.name}_interp",
                                   [f"t = {s:.2f}" for s in t[:, 0]], title, seed=args.seed)
    _report(records, png, log)
    return 0
