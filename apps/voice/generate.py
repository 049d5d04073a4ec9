"""Generation commands of apps/voice_vae.py: `reconstruct` (a recording through an
auto-encoder), `sample` (a digit's centroid, the prior, a point, or the CVAE's chosen digit),
`generate` (any digit in any voice: the conditional VAEs, judged) and `interpolate` (the
straight line between two recordings' codes, or between two digits or two voices of the
conditional VAE), each back to sound.

Codes z are (n, latent) float32; images (n, n_mels, frames) in [0, 1]; condition vectors c
(n, n_classes) (apps/voice/data.condition); every command writes one WAV per image and a PNG of
the images (apps/voice/plots.write_generated) to --out, default <run>/generated/<what>-<time>/.
"""
from __future__ import annotations

import os

import numpy as np

from apps.audio import fsdd
from apps.audio.wav import read_wav
from apps.common.errors import UsageError
from apps.common.runs import timestamp, write_summary
from apps.voice.checkpoint import Loaded, find_checkpoint, to_audio
from apps.voice.data import (
    CACHE_DIR,
    N_DIGITS,
    check_digit,
    features_of,
    load_data,
    pair_grid,
    speaker_index,
)
from apps.voice.judge import Judge, heard, optional_judge
from apps.voice.latent_mixture import sample_mixture
from apps.voice.phase import PhaseBank
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
        title = r["title"].replace("\n", "; ")
        log(f"wrote {r['file']} ({title}; {r['seconds']:.2f} s, spectral convergence "
            f"{r['spectral_convergence']:.3f})")
    log(f"wrote {png}")


def cmd_reconstruct(args, log=print) -> int:
    m = Loaded(find_checkpoint(args.run, args.model, args.checkpoint))
    digit = None
    if m.model.n_classes:
        digit = check_digit(args.digit)
    elif args.digit is not None:
        check_digit(args.digit)
    if m.speakers and not args.speaker:
        raise UsageError(f"{m.name} is conditioned on the voice too: reconstruct needs --speaker "
                         f"(one of {', '.join(m.speakers)})")
    x, hop = _encode_file(m, args.file)
    c = (m.condition([digit], [args.speaker] if m.speakers else None)
         if digit is not None else None)
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
        if m.speakers:
            raise UsageError(f"{m.name} is conditioned on the voice too: use 'generate --digit "
                             "D --speaker NAME'")
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


def _judges(args, m: Loaded, log=print):
    """(digit judge or None, speaker judge or None) for a generation command: what is found,
    each missing one said in a line (--no-judge: neither)."""
    if not args.judge:
        return None, None
    digit = optional_judge(args.classifier, "digit", log)
    speaker = optional_judge(args.speaker_classifier, "speaker", log) if m.speakers else None
    return digit, speaker


def _heard(m: Loaded, signals, digit_judge, speaker_judge):
    """(lines of what the judges heard, digit probabilities, speaker probabilities) for the
    signals; empty lines and None without judges."""
    if digit_judge is None:
        return [""] * len(signals), None, None
    dp = digit_judge.proba(signals, m.cfg.sr)
    sp = None if speaker_judge is None else speaker_judge.proba(signals, m.cfg.sr)
    return heard(dp, sp, speaker_judge.classes if speaker_judge else ()), dp, sp


def _phase_bank(args, m: Loaded, log=print) -> PhaseBank:
    """The training recordings (FSDD, --data) that generated words may take their phase from."""
    data = load_data(args.data, m.cfg, limit=args.limit, progress=args.progress, log=log,
                     cache_dir=None if args.no_cache else CACHE_DIR, protocol=m.protocol)
    return PhaseBank(m, data, fsdd.official_split(data.recs)[0])


def cmd_generate(args, log=print) -> int:
    """Any digit in any voice: the conditional VAE decodes z ~ N(0, T^2 I) with each chosen
    digit (and speaker); WAVs <digit>_<speaker>_<k>.wav, one PNG sheet titled with what the
    judges heard, and generated.json. --phase recording starts Griffin-Lim from the phase of
    the nearest training recording of the same digit and voice (apps/voice/phase.py)."""
    m = Loaded(find_checkpoint(args.run, args.model or "cvae_speaker", args.checkpoint))
    if not m.model.n_classes:
        raise UsageError(f"{m.path}: generate needs a conditional VAE (cvae_speaker or cvae), "
                         f"not {m.name}: use 'sample' for the other models")
    digits = [check_digit(d) for d in args.digit] if args.digit else list(range(N_DIGITS))
    if m.speakers:
        voices = m.speakers if not args.speaker or args.speaker == ["all"] else args.speaker
        speaker_index(voices, m.speakers)  # an unknown voice: a UsageError naming the known ones
    elif args.speaker:
        raise UsageError(f"{m.path}: {m.name} is conditioned on the digit only; train "
                         "cvae_speaker for --speaker ('python apps/voice_vae.py train --models "
                         "cvae_speaker')")
    else:
        voices = [None]
    n = args.n
    pair_d, pair_s = pair_grid(voices, n, digits)
    rng = np.random.default_rng(args.seed)
    z = rng.standard_normal((len(pair_d), m.latent)) * args.temperature
    imgs = m.decode(z, pair_d, pair_s if m.speakers else None)
    hops = [m.hop_for(d, s) for d, s in zip(pair_d, pair_s)]
    inits, sources = ["random"] * len(imgs), [None] * len(imgs)
    if args.phase == "recording":  # each word starts from its nearest recording's phase
        bank = _phase_bank(args, m, log)
        for k, (img, d, s) in enumerate(zip(imgs, pair_d, pair_s)):
            j = bank.nearest(img, d, s)
            hops[k], inits[k] = bank.phase(j)
            sources[k] = os.path.basename(bank.data.recs[j].path)
    it = range(len(imgs))
    if args.progress and len(imgs) > 8:
        from tqdm import tqdm

        it = tqdm(it, desc="Griffin-Lim", unit="clip", leave=False)
    signals = [to_audio(m, imgs[k], hops[k], seed=args.seed + k, n_iter=args.iterations,
                        init=inits[k]) for k in it]
    digit_judge, speaker_judge = _judges(args, m, log)
    lines, dp, sp = _heard(m, [y for y, _ in signals], digit_judge, speaker_judge)
    asked = [f"{d} {s}" if s else f"digit {d}" for d, s in zip(pair_d, pair_s)]
    names = [f"{d}_{s}_{k % n}" if s else f"{d}_{k % n}"
             for k, (d, s) in enumerate(zip(pair_d, pair_s))]
    out = _gen_out(args, m, "generate")
    cols = len(voices) * n if len(voices) * n <= 12 else 8
    records, png = write_generated(
        m, imgs, hops, out, "generate", [f"{a}\n{h}" if h else a for a, h in zip(asked, lines)],
        f"{m.name}: z ~ N(0, {args.temperature:g}^2 I)", signals=signals, names=names,
        cols=cols)
    report = {"checkpoint": m.path, "temperature": args.temperature, "seed": args.seed,
              "phase": args.phase, "iterations": args.iterations, "files": [], "sheet": png}
    for k, r in enumerate(records):
        item = {"file": r["file"], "digit": int(pair_d[k]), "speaker": pair_s[k],
                "spectral_convergence": round(r["spectral_convergence"], 4)}
        if sources[k]:
            item["phase_from"] = sources[k]
        if dp is not None:
            item.update(heard_digit=int(dp[k].argmax()), digit_p=round(float(dp[k].max()), 4))
        if sp is not None:
            item.update(heard_speaker=speaker_judge.classes[int(sp[k].argmax())],
                        speaker_p=round(float(sp[k].max()), 4))
        report["files"].append(item)
        log(f"wrote {r['file']} ({asked[k]}{'; ' + lines[k] if lines[k] else ''})")
    if dp is not None:
        report["digit_recognised"] = round(float(np.mean(dp.argmax(1) == pair_d)), 4)
        tail = f"[judge] digit recognised {report['digit_recognised']:.3f}"
        if sp is not None:
            report["speaker_recognised"] = round(float(np.mean(
                sp.argmax(1) == speaker_judge.labels(pair_s))), 4)
            tail += f", voice recognised {report['speaker_recognised']:.3f}"
        log(f"{tail} (n = {len(pair_d)})")
    path = write_summary(out, report, name="generated.json")
    log(f"wrote {png} and {path}")
    return 0


def _conditional_path(args, m: Loaded, t):
    """(condition vectors (steps, n_classes), hops, the two ends' labels) of the straight line
    from (digit a, voice a) to (digit b, voice b): --digits A B and/or --speakers A B, the other
    held by --digit / --speaker."""
    if args.digits:
        da, db = (check_digit(d) for d in args.digits)
    else:
        da = db = check_digit(args.digit)
    if args.speakers and not m.speakers:
        raise UsageError(f"{m.name} is conditioned on the digit only: --speakers needs "
                         "cvae_speaker")
    if m.speakers:
        if args.speakers:
            sa, sb = args.speakers
        elif args.speaker:
            sa = sb = args.speaker
        else:
            raise UsageError(f"{m.name} is conditioned on the voice too: give --speaker NAME "
                             f"or --speakers A B (from {', '.join(m.speakers)})")
        ca, cb = m.condition([da], [sa]), m.condition([db], [sb])
        ha, hb = m.hop_for(da, sa), m.hop_for(db, sb)
        ends = (f"{da} {sa}", f"{db} {sb}")
    else:
        ca, cb = m.condition([da]), m.condition([db])
        ha, hb = m.hop_for(da), m.hop_for(db)
        ends = (f"digit {da}", f"digit {db}")
    c = (1 - t) * ca + t * cb  # (steps, n_classes): the one-hots blended
    hops = [int(round((1 - s) * ha + s * hb)) for s in t[:, 0]]
    return c.astype(np.float32), hops, ends


def cmd_interpolate(args, log=print) -> int:
    """The straight line between two recordings' codes (unconditional models), or, with
    --digits / --speakers, between two digits or two voices of a conditional VAE at a fixed
    code z (0, the prior's mean, unless --temperature draws one)."""
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    conditional = bool(args.digits or args.speakers)
    if conditional == bool(args.a):
        raise UsageError("interpolate takes two recordings (a.wav b.wav), or --digits A B / "
                         "--speakers A B for a conditional VAE, not both")
    if not conditional and args.b is None:
        raise UsageError("interpolate needs two recordings: a.wav b.wav")
    default = "cvae_speaker" if conditional else "vae"
    m = Loaded(find_checkpoint(args.run, args.model or default, args.checkpoint))
    t = np.linspace(0.0, 1.0, args.steps)[:, None]
    if conditional:
        if not m.model.n_classes:
            raise UsageError(f"{m.name} is not conditional: --digits / --speakers need "
                             "cvae_speaker or cvae")
        c, hops, ends = _conditional_path(args, m, t)
        z = np.random.default_rng(args.seed).standard_normal((1, m.latent)) * args.temperature
        imgs = m.model.decode(np.repeat(z, args.steps, axis=0).astype(np.float32), c)
        title = f"{m.name}: {ends[0]} -> {ends[1]}"
    else:
        if m.model.n_classes:
            raise UsageError("interpolating two recordings uses an unconditional model (dense3, "
                             "conv3, conv10, vae); for the conditional VAEs use --digits or "
                             "--speakers")
        (xa, ha), (xb, hb) = _encode_file(m, args.a), _encode_file(m, args.b)
        mu, _ = m.model.encode(np.stack([xa, xb]))
        z = (1 - t) * mu[0] + t * mu[1]
        imgs = m.decode(z.astype(np.float32))
        hops = [int(round((1 - s) * ha + s * hb)) for s in t[:, 0]]
        title = f"{m.name}: {os.path.basename(args.a)} -> {os.path.basename(args.b)}"
    signals = [to_audio(m, img, hop, seed=args.seed + k)
               for k, (img, hop) in enumerate(zip(imgs, hops))]
    digit_judge, speaker_judge = _judges(args, m, log)
    lines, _, _ = _heard(m, [y for y, _ in signals], digit_judge, speaker_judge)
    titles = [f"t = {s:.2f}" + (f"\n{h}" if h else "") for s, h in zip(t[:, 0], lines)]
    out = _gen_out(args, m, "interpolate")
    records, png = write_generated(m, imgs, hops, out, f"{m.name}_interp", titles, title,
                                   signals=signals)
    _report(records, png, log)
    return 0
