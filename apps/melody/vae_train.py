"""Training the notes VAE and the rhythm VAE, scoring their reconstructions, and the ``train``
command (samples and interpolations at the end).

Presets (one configuration per VAE; ``--arch seq`` picks ``tuned``, ``--arch mlp`` picks ``mlp``):

* ``slides``: the slides' sigmoid MLP (notes: latent 250, Adam lr 1e-5, weight decay 1e-6,
  200 epochs, batch 32; rhythm: latent 300, lr 1e-3, 8 epochs, batch 64; KL weight 1);
* ``regression``: the same sigmoid regression with the KL weighted by 1e-4 and more epochs
  (notes 150, rhythm 60; lr 1e-3 divided by 3.3 every 50 / 20 epochs);
* ``mlp``: the slides' encoder and decoder with categorical outputs (a softmax per position
  over 48 pitches + rest + end, or 8 durations + end), the KL weight annealed from 0 to
  ``beta`` = 0.005 over 20 epochs, a random phase of the segment cuts each epoch, 150 epochs;
* ``tuned`` (the default): vae_seq_model.SeqVAE (BiLSTM encoder, LSTM decoder, word dropout
  0.2), the same loss, KL weight 0.02 reached after 4 epochs, the same cuts, gradients clipped
  at norm 5, 50 epochs; latent 512 (notes) and 256 (rhythm). With 128 / 64 the 130-230 nats
  a segment's code carries were packed so densely that each posterior's spread was a fifth
  (notes) or an eighth (rhythm) of the codes', and a straight line between two codes crossed
  gaps the decoder had never been trained on: interpolations wandered (path efficiency 0.48,
  0.68 now; docs/derivations/melody_vae.md, section 5).

Held-out figures of each, and why the first two do not reconstruct:
docs/derivations/melody_vae.md.

Writes in the run folder: notes.npz and rhythm.npz (checkpoints, every epoch; ``--resume``),
heldout.npz, curves.png, reconstruction.png, sample_*.{mid,png,musicxml,wav},
interp_*.{mid,png,...}, summary.json.
"""
from __future__ import annotations

import os
import time

import numpy as np

import nnscratch as nn
from apps.common.runs import make_run_dir, write_summary
from nnscratch import optim

from .data import REST_CODE, all_song_codes, cut, load_split, transpose_segments
from .plots import plot_reconstruction, plot_vae_curves
from .vae_build import (
    build_vae,
    decode_codes,
    encode_codes,
    is_categorical,
    latent_prior,
    make_loss,
    model_input,
)
from .vae_generate import (
    interpolation_report,
    interpolation_summary,
    sample_melodies,
    write_melody,
)

APP = "melody_vae"

PRESETS = {
    "slides": {"notes": {"hidden": 500, "latent": 250, "lr": 1e-5, "weight_decay": 1e-6,
                         "epochs": 200, "batch": 32, "beta": 1.0, "lr_step": 0, "lr_gamma": 1.0},
               "rhythm": {"hidden": 500, "latent": 300, "lr": 1e-3, "weight_decay": 0.0,
                          "epochs": 8, "batch": 64, "beta": 1.0, "lr_step": 0, "lr_gamma": 1.0}},
    "regression": {
        "notes": {"hidden": 500, "latent": 250, "lr": 1e-3, "weight_decay": 1e-6, "epochs": 150,
                  "batch": 32, "beta": 1e-4, "lr_step": 50, "lr_gamma": 0.3},
        "rhythm": {"hidden": 500, "latent": 300, "lr": 1e-3, "weight_decay": 0.0, "epochs": 60,
                   "batch": 64, "beta": 1e-4, "lr_step": 20, "lr_gamma": 0.3}},
    "mlp": {
        "notes": {"arch": "mlp", "output": "categorical", "hidden": 500, "latent": 250,
                  "lr": 1e-3, "weight_decay": 0.0, "epochs": 150, "batch": 64, "beta": 0.005,
                  "warmup": 20, "free_bits": 0.0, "lr_step": 100, "lr_gamma": 0.3,
                  "random_cuts": True, "clip": 0.0},
        "rhythm": {"arch": "mlp", "output": "categorical", "hidden": 500, "latent": 250,
                   "lr": 1e-3, "weight_decay": 0.0, "epochs": 150, "batch": 64, "beta": 0.005,
                   "warmup": 20, "free_bits": 0.0, "lr_step": 100, "lr_gamma": 0.3,
                   "random_cuts": True, "clip": 0.0}},
    "tuned": {
        "notes": {"arch": "seq", "embed": 32, "enc_hidden": 64, "hidden": 256, "latent": 512,
                  "cond": 16, "word_dropout": 0.2, "lr": 1e-3, "weight_decay": 0.0,
                  "epochs": 50, "batch": 64, "beta": 0.02, "warmup": 4, "free_bits": 0.0,
                  "lr_step": 35, "lr_gamma": 0.3, "random_cuts": True, "clip": 5.0},
        "rhythm": {"arch": "seq", "embed": 16, "enc_hidden": 32, "hidden": 128, "latent": 256,
                   "cond": 8, "word_dropout": 0.2, "lr": 1e-3, "weight_decay": 0.0,
                   "epochs": 50, "batch": 64, "beta": 0.02, "warmup": 4, "free_bits": 0.0,
                   "lr_step": 35, "lr_gamma": 0.3, "random_cuts": True, "clip": 5.0}},
}
ARCH_PRESET = {"mlp": "mlp", "seq": "tuned"}


def train_step(model, loss_fn, opt, x, eps=None, clip: float = 0.0) -> tuple:
    """One Adam step on a batch x (what ``model.forward`` takes); returns (loss, parts)."""
    x = nn.to_device(x)
    loss, parts = loss_fn(model(x, eps), x)
    model.backward(loss_fn.backward())
    if clip:
        optim.clip_grad_norm(model.parameters(), clip)
    opt.step()
    opt.zero_grad()
    return loss, parts


def recon_accuracy(model, codes, lengths, kind: str) -> dict:
    """Exact-match accuracy of the reconstructions (decoded from z = mu, greedily) of codes
    (S, max_len), over the songs' real events; ``within_1``: a pitch off by at most one
    semitone (or class off by one) counts, a rest must be a rest; ``segments``: share of
    segments reconstructed without a single error; ``accuracy_with_padding``: over all
    positions."""
    mu, _ = encode_codes(model, codes, lengths, kind)
    out, _ = decode_codes(model, mu, kind)
    mask = np.arange(codes.shape[1])[None, :] < lengths[:, None]
    hit = out == codes
    near = np.abs(out - codes) <= 1
    if kind == "notes":
        near &= (out == REST_CODE) == (codes == REST_CODE)
    return {"accuracy": float(hit[mask].mean()), "accuracy_with_padding": float(hit.mean()),
            "within_1": float(near[mask].mean()), "tokens": int(mask.sum()),
            "segments": float(np.mean([hit[k, :lengths[k]].all() for k in range(len(codes))]))}


def mean_baseline(train_codes, train_len, codes, lengths, kind: str) -> dict:
    """Accuracy of always answering the training set's most common code at each position."""
    mode = np.array([np.bincount(train_codes[:, j]).argmax() for j in range(codes.shape[1])])
    mask = np.arange(codes.shape[1])[None, :] < lengths[:, None]
    hit = mode[None, :] == codes
    return {"accuracy": float(hit[mask].mean()), "accuracy_with_padding": float(hit.mean())}


def kl_weight(cfg: dict, epoch: int) -> float:
    """beta, ramped linearly from beta / warmup at epoch 1 to beta at epoch ``warmup``."""
    w = cfg.get("warmup", 0)
    return cfg["beta"] * (min(1.0, epoch / w) if w else 1.0)


def fit(kind: str, cfg: dict, train_codes, held: tuple, ckpt_path: str, args, max_len: int,
        resume: bool = False) -> tuple:
    """Train one VAE on the training songs' codes (``all_song_codes``), cut into segments of
    max_len (a new random phase each epoch with ``random_cuts``); score the held-out segments
    ``held`` = (codes, lengths) every epoch; checkpoint every epoch. Returns (model, history)."""
    from tqdm import tqdm

    model = build_vae(cfg, kind, max_len)
    opt = optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = optim.StepLR(opt, cfg["lr_step"], cfg["lr_gamma"]) if cfg.get("lr_step") else None
    loss_fn = make_loss(model, cfg["beta"])
    history, start = [], 1
    if resume and os.path.isfile(ckpt_path):
        ck = nn.load_checkpoint(ckpt_path, model, opt)
        history, start = ck.extra.get("history", []), int(ck.extra.get("epoch", 0)) + 1
        if sched is not None and ck.extra.get("schedule"):
            sched.load_state_dict(ck.extra["schedule"])
        print(f"[{kind}] resumed from {ckpt_path} at epoch {start}")
    rng = np.random.default_rng(args.seed + start + (0 if kind == "notes" else 1000))
    col = 0 if kind == "notes" else 1               # which codes of a cut: notes or rhythm
    fixed = cut(train_codes, max_len)
    x_val = model_input(model, held[0], held[1], kind)
    epochs = cfg["epochs"] if args.epochs is None else args.epochs
    config = {"kind": kind, "length": max_len, "input_dim": max_len, **cfg}
    bar = tqdm(range(start, epochs + 1), desc=f"{kind} VAE", unit="epoch",
               disable=not args.progress)
    for epoch in bar:
        t0 = time.perf_counter()
        seg = cut(train_codes, max_len, rng) if cfg.get("random_cuts") else fixed
        codes = seg[col]
        if kind == "notes" and cfg.get("transpose"):
            codes = transpose_segments(codes, seg[2], cfg["transpose"], rng)
        x_train = model_input(model, codes, seg[2], kind)
        loss_fn.beta = kl_weight(cfg, epoch)
        order = rng.permutation(len(x_train))
        tot = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        for s in range(0, len(order), cfg["batch"]):
            xb = x_train[order[s:s + cfg["batch"]]]
            loss, parts = train_step(model, loss_fn, opt, xb, clip=cfg.get("clip", 0.0))
            tot["loss"] += loss * len(xb)
            tot["recon"] += parts["recon"] * len(xb)
            tot["kl"] += parts["kl"] * len(xb)
        secs = time.perf_counter() - t0
        lr = opt.lr
        if sched is not None:
            sched.step()
        tot = {k: v / len(order) for k, v in tot.items()}
        model.eval()
        with nn.no_grad():
            xv = nn.to_device(x_val)
            vloss, vparts = loss_fn(model(xv), xv)
        acc = recon_accuracy(model, held[0], held[1], kind)
        model.train()
        history.append({"epoch": epoch, "train": tot, "val_loss": vloss,
                        "val_recon": vparts["recon"], "val_kl": vparts["kl"],
                        "val_accuracy": acc["accuracy"], "lr": lr, "beta": loss_fn.beta,
                        "segments_per_s": len(order) / secs, "seconds": secs})
        bar.set_postfix(loss=f"{tot['loss']:.2f}", val=f"{vloss:.2f}",
                        acc=f"{acc['accuracy']:.3f}", seg_s=f"{len(order) / secs:,.0f}")
        if epoch % max(1, args.log_every) == 0 or epoch == epochs:
            print(f"[{kind}] epoch {epoch:4d}/{epochs}: train {tot['loss']:.3f} (recon "
                  f"{tot['recon']:.3f}, KL {tot['kl']:.3f}, beta {loss_fn.beta:.3g})  val "
                  f"{vloss:.3f}  held-out exact {acc['accuracy']:.4f}  "
                  f"({len(order) / secs:,.0f} segments/s)", flush=True)
        nn.save_checkpoint(ckpt_path, model, opt, config=config,
                           extra={"epoch": epoch, "history": history,
                                  "schedule": sched.state_dict() if sched is not None else None},
                           arrays=latent_prior(model, model_input(model, fixed[col], fixed[2],
                                                                  kind)))
    model.eval()
    return model, history


def _configs(args) -> dict:
    """The preset's two configurations with the command line's overrides."""
    preset = PRESETS[args.preset]
    cfgs = {k: dict(preset[k]) for k in ("notes", "rhythm")}
    if args.notes_lr:
        cfgs["notes"]["lr"] = args.notes_lr
    if args.rhythm_lr:
        cfgs["rhythm"]["lr"] = args.rhythm_lr
    if args.beta is not None:
        cfgs["notes"]["beta"] = cfgs["rhythm"]["beta"] = args.beta
    if getattr(args, "free_bits", None) is not None:
        cfgs["notes"]["free_bits"] = cfgs["rhythm"]["free_bits"] = args.free_bits
    return cfgs


def train(args) -> dict:
    """``train``: both VAEs, their held-out reconstruction, samples, interpolations."""
    nn.manual_seed(args.seed)
    run = make_run_dir(args.out, APP)
    t0 = time.perf_counter()
    songs, stats, train_songs, val_songs = load_split(args.subset, args.data, args.limit,
                                                      args.val_frac, args.seed, args.progress,
                                                      train_half=args.train_half)
    tr_codes, tr_skipped = all_song_codes(train_songs)
    va_codes, va_skipped = all_song_codes(val_songs)
    Nt, Rt, Lt, _ = cut(tr_codes, args.max_len)
    Nv, Rv, Lv, _ = cut(va_codes, args.max_len)
    print(f"data: {args.subset}: {stats['kept']} songs kept of {stats['tunes']}; "
          f"{len(train_songs)} train / {len(val_songs)} held-out songs -> {len(Nt)} / {len(Nv)} "
          f"segments of <= {args.max_len} events (skipped {tr_skipped + va_skipped} songs "
          f"with notes outside the VAE's range)")
    cfgs = _configs(args)
    data = {"notes": (Nt, Nv), "rhythm": (Rt, Rv)}
    models, hist, results, train_secs = {}, {}, {}, {}
    for kind in ("notes", "rhythm"):
        tr, va = data[kind]
        ckpt = os.path.join(run, f"{kind}.npz")
        t_fit = time.perf_counter()
        models[kind], hist[kind] = fit(kind, cfgs[kind], tr_codes, (va, Lv), ckpt, args,
                                       args.max_len, resume=args.resume)
        train_secs[kind] = round(time.perf_counter() - t_fit, 1)
        r = results[kind] = {
            "held_out": recon_accuracy(models[kind], va, Lv, kind),
            "train": recon_accuracy(models[kind], tr, Lt, kind),
            "most_common_per_position": mean_baseline(tr, Lt, va, Lv, kind),
            "final_val_loss": hist[kind][-1]["val_loss"] if hist[kind] else None,
            "train_seconds": train_secs[kind],
            "epoch_seconds": round(sum(h.get("seconds", 0.0) for h in hist[kind]), 1)}
        print(f"[{kind}] held-out reconstruction, exact {r['held_out']['accuracy']:.4f} "
              f"(within one step {r['held_out']['within_1']:.4f}; whole segments "
              f"{r['held_out']['segments']:.4f}; train {r['train']['accuracy']:.4f}; "
              f"most-common-per-position baseline "
              f"{r['most_common_per_position']['accuracy']:.4f}); trained in "
              f"{train_secs[kind]:.0f} s")
    # Held-out codes ride along in the run folder for `interpolate`.
    np.savez(os.path.join(run, "heldout.npz"), notes=Nv, rhythm=Rv, lengths=Lv)
    files = [os.path.join(run, f) for f in ("notes.npz", "rhythm.npz", "heldout.npz")]
    curves = plot_vae_curves(hist, os.path.join(run, "curves.png"))
    rec = {k: decode_codes(models[k], encode_codes(models[k], d[1][:1], Lv[:1], k)[0], k)[0][0]
           for k, d in data.items()}
    rec_png = os.path.join(run, "reconstruction.png")
    plot_reconstruction(Nv[0], rec["notes"], Rv[0], rec["rhythm"], int(Lv[0]), rec_png)
    files += [f for f in (curves, rec_png) if f]
    rng = np.random.default_rng(args.seed)
    priors = None
    if args.prior == "fitted":
        priors = {k: tuple(latent_prior(models[k], model_input(models[k], d[0], Lt, k)).values())
                  for k, d in data.items()}      # (mean, std, Cholesky factor) per VAE
    samples = []
    for i, (p, d) in enumerate(sample_melodies(models["notes"], models["rhythm"], args.samples,
                                               rng, priors)):
        out = write_melody(os.path.join(run, f"sample_{i}.mid"), p, d,
                           title=f"melody VAE ({cfgs['notes'].get('arch', 'mlp')}) sample {i}")
        samples.append({"notes": sum(x is not None for x in p), "events": len(p), **out})
        files += list(out.values())
    interp = interpolation_report(models["notes"], models["rhythm"], Nv, Rv, Lv,
                                  args.interp_steps, args.interp_pairs, run,
                                  np.random.default_rng(args.seed + 1))
    files += interp.pop("files")
    line = interpolation_summary(interp)
    if line:
        print(line)
    summary = {
        "app": APP, "subset": args.subset, "train_half": args.train_half,
        "val_frac": args.val_frac, "seed": args.seed, "preset": args.preset,
        "arch": cfgs["notes"].get("arch", "mlp"), "config": cfgs,
        "max_len": args.max_len, "prior": args.prior,
        "data": {"songs": stats, "train_songs": len(train_songs), "held_out_songs": len(val_songs),
                 "train_segments": int(len(Nt)), "held_out_segments": int(len(Nv)),
                 "held_out_events": int(Lv.sum()), "skipped_songs": tr_skipped + va_skipped},
        "reconstruction": results, "samples": samples, "interpolation": interp,
        "categorical": is_categorical(models["notes"]), "train_seconds": train_secs,
        "history": hist, "files": files, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_summary(run, summary)
    print(f"wrote {len(files)} files and summary.json to {run}")
    return summary
