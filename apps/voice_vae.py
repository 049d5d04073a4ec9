"""Voice auto-encoders and VAEs on FSDD spectrograms: generate spoken digits, hear them through
Griffin-Lim, and let the digit classifier judge them.

The seed report (chapter 6) compresses 50 x 50 mel spectrograms, normalised to [0, 1], through
auto-encoders with 3 or 10 latent dimensions, generates new ones from latent points (per-digit
centroids, or N(0, I) for its VAE, loss = lambda * MSE + KL) and turns them back into sound with
Griffin-Lim; it judged the sounds by ear. Here, on the Free Spoken Digit Dataset:

    python apps/voice_vae.py train                                 # the five models, then judge
    python apps/voice_vae.py train --models conv3 vae --epochs 30  # some of them
    python apps/voice_vae.py reconstruct 7_jackson_3.wav --model conv10
    python apps/voice_vae.py sample --from centroid --digit 7      # conv3: the digit's centroid
    python apps/voice_vae.py sample --from prior --n 8             # VAE: z ~ N(0, I)
    python apps/voice_vae.py sample --cvae --digit 3               # conditional VAE: you choose
    python apps/voice_vae.py sample --from point --z 0.1 -0.4 2.0 --model conv3
    python apps/voice_vae.py interpolate a.wav b.wav --steps 8     # VAE codes, straight line
    python apps/voice_vae.py judge                                 # the classifier listens

Models (apps/voice_models.py): dense3 (dense AE, latent 3, the seed's n°3), conv3 and conv10
(convolutional AEs, latent 3 and 10, n°1 and n°2), vae (convolutional VAE, latent 10, the seed's
6.3), cvae (the same with the digit one-hot as an input of encoder and decoder).
Features (apps/audio/features.py, as the digit classifier's): silence trimmed, one hop per
recording so every word fills 50 frames, 50 mel bands in dB below the loudest bin (80 dB floor),
then x = (S_db - min) / (max - min) with the training set's min and max (apps/audio/inverse.py).
Split: FSDD's official one (recordings 0-4 of each speaker and digit are the test set, 300 files);
10 % of the rest picks the best epoch.
``--protocol seed`` trains on the seed report's own preprocessing instead (librosa's defaults:
22,050 Hz, n_fft 2048, no trimming, hop floor((L + 1) / 50), dB with ref = 1, i.e. the absolute
level, then the global min-max). Its [0, 1] images are much easier to compress: the bands above
4 kHz are empty (FSDD is 8 kHz audio) and the min-max range spans ~125 dB instead of 80, so the
same reconstruction error is a smaller MSE. PCA with 3 components already gives a test MSE of
0.0035 there, against 0.0102 on the default features: compare with the seed's MSEs on that
protocol, and between models on the default one.
Back to sound (apps/audio/inverse.py, griffinlim.py): un-normalise, dB to power, mel to linear by
non-negative least squares, fast Griffin-Lim (32 iterations, momentum 0.99), at the hop of the
recording (reconstructions) or the median hop of the digit's training recordings (generations).
The judge is the CNN of apps/spoken_digits.py (--classifier, default: the newest official-split
digit model under runs/spoken_digits/), run on the generated audio after its own front end.

Each run folder (runs/voice_vae/<timestamp>/ or --out) holds: <model>.npz (best weights, config,
normalisation, centroids, hops), <model>_last.npz (resume with --resume), <model>_metrics.csv,
curves.png, latent_<model>.png, reconstructions.png, samples/ (WAV + PNG), judge.json and
summary.json. Generation commands write WAVs and a PNG of their spectrograms to --out (default
<run>/generated/).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps.audio import fsdd  # noqa: E402
from apps.audio.inverse import SpectrogramScaler  # noqa: E402
from apps.audio.wav import AudioError, read_wav  # noqa: E402
# the app's parts: data and checkpoints, training, pictures, the judge (none imports this file)
from apps.voice_data import (  # noqa: E402
    DEFAULT_OUT_ROOT, MODELS, PROTOCOLS, Loaded, UsageError, check_digit, feature_config,
    features_of, find_checkpoint, hop_stats, load_data, split,
)
from apps.voice_judge import Judge, cmd_judge  # noqa: E402
from apps.voice_models import one_hot  # noqa: E402
from apps.voice_plots import plot_reconstructions, write_generated  # noqa: E402
from apps.voice_train import build_summary, train_one  # noqa: E402


# ==============================================================================================
# Training (train_one per model, then the pictures, the summary and the judge)
# ==============================================================================================
def cmd_train(args, log=print) -> int:
    t0 = time.perf_counter()
    out = args.out or os.path.join(DEFAULT_OUT_ROOT, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    cfg = feature_config(args.protocol, args.n_mels, args.frames)
    data = load_data(args.data, cfg, limit=args.limit, progress=args.progress, log=log,
                     cache_dir=None if args.no_cache else os.path.join(DEFAULT_OUT_ROOT, ".cache"),
                     protocol=args.protocol)
    idx = split(data, args.val_fraction, args.seed)
    tr = idx[0]
    scaler = SpectrogramScaler().fit(data.S_db[tr])
    X = scaler.transform(data.S_db)
    hops = hop_stats(data.hops[tr], data.digits[tr])
    log(f"data: {len(data.recs)} recordings, {len(idx[0])} train / {len(idx[1])} validation / "
        f"{len(idx[2])} test (official split); dB range [{scaler.lo:.1f}, {scaler.hi:.1f}] -> [0, 1]")
    for name in args.models:
        train_one(name, args, data, X, idx, scaler, hops, out, log=log)
    loaded = {n: Loaded(os.path.join(out, f"{n}.npz")) for n in MODELS
              if os.path.exists(os.path.join(out, f"{n}.npz"))}
    te = idx[2][::max(1, len(idx[2]) // 8)][:8]
    rec_png = plot_reconstructions(loaded, X[te], data.digits[te],
                                   [f"{data.digits[i]} {data.speakers[i]}" for i in te],
                                   os.path.join(out, "reconstructions.png"))
    summary = build_summary(out)
    summary.setdefault("files", []).append(rec_png)
    summary["train_seconds"] = round(time.perf_counter() - t0, 1)
    summary["data"] = {"root": fsdd.resolve_root(args.data), "recordings": len(data.recs),
                       "train": int(len(idx[0])), "val": int(len(idx[1])), "test": int(len(idx[2])),
                       "features": cfg.to_dict(), "protocol": args.protocol, "scaler": scaler.to_dict()}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    for n, m in summary["models"].items():
        seed = f" (seed {m['seed_test_mse']})" if m.get("seed_test_mse") else ""
        log(f"test MSE {n}: {m['test_mse']:.5f}{seed}")
    if args.judge:
        args.run = out
        cmd_judge(args, log=log)
    log(f"wrote {out}/ (summary.json, curves.png, latent_*.png, reconstructions.png, checkpoints)")
    return 0


# ==============================================================================================
# Generation commands
# ==============================================================================================
def _gen_out(args, loaded, what) -> str:
    return args.out or os.path.join(os.path.dirname(os.path.abspath(loaded.path)), "generated",
                                    f"{what}-{time.strftime('%Y%m%d-%H%M%S')}")


def _encode_file(loaded: Loaded, path, digit=None):
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
    elif args.source == "prior":
        model_name = args.model or "vae"
    else:
        model_name = args.model or "conv3"
    m = Loaded(find_checkpoint(args.run, model_name, args.checkpoint))
    rng = np.random.default_rng(args.seed)
    n = args.n
    if n < 1:
        raise UsageError(f"--n must be >= 1, got {n}")
    digits = None
    if args.cvae:
        if not m.model.n_classes:
            raise UsageError(f"{m.path}: --cvae needs a conditional VAE checkpoint (cvae.npz), not {m.name}")
        d = check_digit(args.digit)
        digits = np.full(n, d)
        z = rng.standard_normal((n, m.latent)) * args.temperature
        titles, hops, what = [f"digit {d} #{k}" for k in range(n)], [m.hop_for(d)] * n, f"cvae-digit{d}"
    elif m.model.n_classes:
        raise UsageError(f"{m.path} is a conditional VAE: use 'sample --cvae --digit D'")
    elif args.source == "centroid":
        d = check_digit(args.digit)
        cent, std = m.arrays["centroids"][d], m.arrays["centroid_std"][d]
        z = cent[None] + args.spread * std[None] * rng.standard_normal((n, m.latent))
        if n >= 1:
            z[0] = cent
        titles, hops, what = [f"centroid {d}" + (f" + noise #{k}" if k else "") for k in range(n)], \
            [m.hop_for(d)] * n, f"centroid-digit{d}"
    elif args.source == "prior":
        if not m.model.variational:
            log(f"note: {m.name} is not a VAE; sampling its codes' Gaussian fit (mean, std) instead of N(0, I)")
            z = m.arrays["code_mean"] + m.arrays["code_std"] * rng.standard_normal((n, m.latent))
        else:
            z = rng.standard_normal((n, m.latent)) * args.temperature
        titles, hops, what = [f"prior #{k}" for k in range(n)], [m.hop_for()] * n, "prior"
    else:  # a point given on the command line
        if not args.z:
            raise UsageError("--from point needs --z Z1 Z2 ... (one value per latent dimension)")
        if len(args.z) != m.latent:
            raise UsageError(f"wrong latent size: --z has {len(args.z)} values but {m.name} has a "
                             f"latent space of size {m.latent}")
        z = np.array([args.z], dtype=np.float32)
        titles, hops, what = ["z = " + ", ".join(f"{v:g}" for v in args.z)], [m.hop_for()], "point"
    if args.latent is not None and args.latent != m.latent:
        raise UsageError(f"wrong latent size: --latent {args.latent} but {m.path} has latent size {m.latent}")
    imgs = m.decode(z, digits)
    out = _gen_out(args, m, what)
    records, png = write_generated(m, imgs, hops, out, f"{m.name}_{what}", titles,
                                   f"{m.name}: {what}", seed=args.seed)
    _report(records, png, log)
    if args.judge:
        judge = Judge(args.classifier)
        p = judge.proba([read_wav(r["file"])[0] for r in records], m.cfg.sr)
        for r, pr in zip(records, p):
            log(f"[judge] {os.path.basename(r['file'])}: digit {int(pr.argmax())} (p = {pr.max():.3f})")
    return 0


def cmd_interpolate(args, log=print) -> int:
    m = Loaded(find_checkpoint(args.run, args.model or "vae", args.checkpoint))
    if m.model.n_classes:
        raise UsageError("interpolate uses an unconditional model (dense3, conv3, conv10, vae), not the cvae")
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    (xa, ha), (xb, hb) = _encode_file(m, args.a), _encode_file(m, args.b)
    mu, _ = m.model.encode(np.stack([xa, xb]))
    t = np.linspace(0.0, 1.0, args.steps)[:, None]
    z = (1 - t) * mu[0] + t * mu[1]
    imgs = m.decode(z.astype(np.float32))
    hops = [int(round((1 - s) * ha + s * hb)) for s in t[:, 0]]
    out = _gen_out(args, m, "interpolate")
    records, png = write_generated(m, imgs, hops, out, f"{m.name}_interp", [f"t = {s:.2f}" for s in t[:, 0]],
                                   f"{m.name}: {os.path.basename(args.a)} -> {os.path.basename(args.b)}",
                                   seed=args.seed)
    _report(records, png, log)
    return 0


# ==============================================================================================
# Command line
# ==============================================================================================
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def judge_opts(q):
        q.add_argument("--classifier", default=None,
                       help="digit classifier checkpoint (default: the newest runs/spoken_digits/*/model.npz)")
        q.add_argument("--n-per-digit", type=int, default=20, help="judged samples per digit (x 10)")
        q.add_argument("--n-prior", type=int, default=200, help="judged VAE prior samples")
        q.add_argument("--n-recon", type=int, default=300, help="judged test reconstructions")
        q.add_argument("--spread", type=float, default=0.5,
                       help="near-centroid samples: centroid + spread * the digit's code std * N(0, I)")

    t = sub.add_parser("train", help="train the auto-encoders and VAEs, then judge them")
    t.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    t.add_argument("--data", default=None, help=f"FSDD folder (default ${fsdd.ENV_VAR} or {fsdd.DEFAULT_ROOT})")
    t.add_argument("--out", default=None, help="run folder (default runs/voice_vae/<timestamp>)")
    t.add_argument("--resume", action="store_true", help="continue from <model>_last.npz in --out")
    t.add_argument("--epochs", type=int, default=None, help="epochs for every model (overrides the two below)")
    t.add_argument("--conv-epochs", type=int, default=60)
    t.add_argument("--dense-epochs", type=int, default=150)
    t.add_argument("--lr-decay-epoch", type=int, default=None, help="divide the learning rate by 10 from this epoch")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--lambda", dest="lam", type=float, default=5000.0,
                   help="VAE loss = lambda * MSE + KL (MSE per pixel, KL summed over latents)")
    t.add_argument("--vae-latent", type=int, default=None, help="latent size of the VAE (default 10)")
    t.add_argument("--cvae-latent", type=int, default=None, help="latent size of the CVAE (default 10)")
    t.add_argument("--channels", type=int, nargs=3, default=[32, 64, 64], help="conv channels")
    t.add_argument("--hidden", type=int, default=256, help="conv models' dense layer")
    t.add_argument("--dense-hidden", type=int, nargs="+", default=[512, 128], help="dense AE layers")
    t.add_argument("--protocol", choices=PROTOCOLS, default="classifier",
                   help="features: the digit classifier's (default) or the seed report's (for its MSEs)")
    t.add_argument("--n-mels", type=int, default=50)
    t.add_argument("--frames", type=int, default=50)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--limit", type=int, default=None, help="recordings with index < LIMIT only (quick runs)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-judge", dest="judge", action="store_false", help="skip the judge at the end")
    t.add_argument("--no-cache", action="store_true")
    t.add_argument("--log-epochs", action="store_true", help="a line per epoch even with progress bars")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    judge_opts(t)

    def model_opts(q, default):
        q.add_argument("--run", default=None, help="run folder (default: the newest under runs/voice_vae/)")
        q.add_argument("--model", default=default, choices=list(MODELS),
                       help=f"which model of the run (default {default})")
        q.add_argument("--checkpoint", default=None, help="a <model>.npz file (instead of --run/--model)")
        q.add_argument("--out", default=None, help="output folder (default <run>/generated/<what>-<time>)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--no-progress", dest="progress", action="store_false")

    r = sub.add_parser("reconstruct", help="a recording through an auto-encoder, back to sound")
    r.add_argument("file")
    model_opts(r, "conv3")
    r.add_argument("--digit", type=int, default=None, help="the spoken digit (needed by the cvae)")

    s = sub.add_parser("sample", help="generate: centroid, prior, a point, or the CVAE's chosen digit")
    s.add_argument("--from", dest="source", choices=["centroid", "prior", "point"], default="centroid")
    s.add_argument("--cvae", action="store_true", help="the conditional VAE with --digit")
    s.add_argument("--digit", type=int, default=None)
    s.add_argument("--n", type=int, default=4)
    s.add_argument("--z", type=float, nargs="+", default=None, help="--from point: the latent code")
    s.add_argument("--latent", type=int, default=None, help="expected latent size (checked)")
    s.add_argument("--spread", type=float, default=0.5, help="centroid: noise in units of the digit's std")
    s.add_argument("--temperature", type=float, default=1.0, help="prior / cvae: z ~ N(0, T^2 I)")
    s.add_argument("--judge", action="store_true", help="also print the classifier's label of each file")
    s.add_argument("--classifier", default=None)
    model_opts(s, None)

    i = sub.add_parser("interpolate", help="decode the straight line between two recordings' codes")
    i.add_argument("a")
    i.add_argument("b")
    i.add_argument("--steps", type=int, default=8)
    model_opts(i, None)

    j = sub.add_parser("judge", help="the digit classifier listens to generated audio")
    j.add_argument("--run", default=None, help="run folder (default: the newest)")
    j.add_argument("--data", default=None)
    j.add_argument("--limit", type=int, default=None, help="recordings with index < LIMIT only")
    j.add_argument("--models", nargs="+", choices=list(MODELS), default=None, help="judge only these")
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--no-progress", dest="progress", action="store_false")
    judge_opts(j)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "reconstruct": cmd_reconstruct, "sample": cmd_sample,
                "interpolate": cmd_interpolate, "judge": cmd_judge}
    try:
        for name in ("epochs", "batch_size", "limit", "n_per_digit", "n_prior"):
            v = getattr(args, name, None)
            if v is not None and v < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        return commands[args.command](args)
    except (UsageError, AudioError, FileNotFoundError, nn.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
