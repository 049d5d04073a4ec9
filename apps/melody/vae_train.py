"""Training the notes VAE and the rhythm VAE, scoring their reconstructions, and the ``train``
command (samples and an interpolation at the end).

Presets: ``slides`` is the slides' configuration (notes: latent 250, Adam lr 1e-5, weight decay
1e-6, 200 epochs, batch 32; rhythm: latent 300, lr 1e-3, 8 epochs, batch 64; KL weight 1).
``tuned`` (default) keeps the architecture and the loss but weights the KL term by
beta = 1e-4, trains longer (notes 150 epochs, lr 1e-3 divided by 3.3 every 50; rhythm 60
epochs, every 20).

Writes in the run folder: notes.npz and rhythm.npz (checkpoints, every epoch; ``--resume``),
heldout.npz, curves.png, reconstruction.png, sample_*.mid, interp_*.mid, summary.json.
"""
from __future__ import annotations

import os
import time

import numpy as np

import nnscratch as nn
from apps.common.runs import make_run_dir, write_summary
from nnscratch import optim

from .data import (
    PITCH_HIGH,
    PITCH_LOW,
    REST_CODE,
    denormalise,
    load_split,
    normalise,
    segments,
)
from .plots import plot_reconstruction, plot_vae_curves
from .vae_generate import interpolate, sample_melodies, write_melody
from .vae_model import MelodyVAE, VAELoss, latent_prior, reconstruct

APP = "melody_vae"

PRESETS = {
    "slides": {"notes": {"hidden": 500, "latent": 250, "lr": 1e-5, "weight_decay": 1e-6,
                         "epochs": 200, "batch": 32, "beta": 1.0, "lr_step": 0, "lr_gamma": 1.0},
               "rhythm": {"hidden": 500, "latent": 300, "lr": 1e-3, "weight_decay": 0.0,
                          "epochs": 8, "batch": 64, "beta": 1.0, "lr_step": 0, "lr_gamma": 1.0}},
    "tuned": {"notes": {"hidden": 500, "latent": 250, "lr": 1e-3, "weight_decay": 1e-6,
                        "epochs": 150, "batch": 32, "beta": 1e-4, "lr_step": 50, "lr_gamma": 0.3},
              "rhythm": {"hidden": 500, "latent": 300, "lr": 1e-3, "weight_decay": 0.0,
                         "epochs": 60, "batch": 64, "beta": 1e-4, "lr_step": 20, "lr_gamma": 0.3}},
}


def train_step(model, loss_fn, opt, x, eps=None) -> tuple:
    """One Adam step on a batch x (B, D); returns (loss, {'recon', 'kl'})."""
    x = nn.to_device(x)
    loss, parts = loss_fn(model(x, eps), x)
    model.backward(loss_fn.backward())
    opt.step()
    opt.zero_grad()
    return loss, parts


def recon_accuracy(model, codes, lengths, kind: str) -> dict:
    """Token accuracy of the reconstructions of codes (S, max_len): on the songs' real events,
    and on all positions; ``within_1``: a pitch off by at most one semitone (or class off by
    one) counts, a rest must be a rest."""
    out = denormalise(reconstruct(model, normalise(codes, kind).astype(np.float32)), kind)
    mask = np.arange(codes.shape[1])[None, :] < lengths[:, None]
    hit = out == codes
    near = np.abs(out - codes) <= 1
    if kind == "notes":
        near &= (out == REST_CODE) == (codes == REST_CODE)
    return {"accuracy": float(hit[mask].mean()), "accuracy_with_padding": float(hit.mean()),
            "within_1": float(near[mask].mean()), "tokens": int(mask.sum())}


def mean_baseline(train_codes, train_len, codes, lengths, kind: str) -> dict:
    """Accuracy of always answering the training set's most common code at each position."""
    mode = np.array([np.bincount(train_codes[:, j]).argmax() for j in range(codes.shape[1])])
    mask = np.arange(codes.shape[1])[None, :] < lengths[:, None]
    hit = mode[None, :] == codes
    return {"accuracy": float(hit[mask].mean()), "accuracy_with_padding": float(hit.mean())}


def fit(kind: str, cfg: dict, x_train, x_val, codes_val, len_val, ckpt_path: str, args,
        resume: bool = False) -> tuple:
    """Train one VAE on x_train (S, max_len); checkpoint every epoch. Returns (model, history)."""
    from tqdm import tqdm

    model = MelodyVAE(x_train.shape[1], cfg["hidden"], cfg["latent"])
    opt = optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = optim.StepLR(opt, cfg["lr_step"], cfg["lr_gamma"]) if cfg.get("lr_step") else None
    loss_fn = VAELoss(cfg["beta"])
    history, start = [], 1
    if resume and os.path.isfile(ckpt_path):
        ck = nn.load_checkpoint(ckpt_path, model, opt)
        history, start = ck.extra.get("history", []), int(ck.extra.get("epoch", 0)) + 1
        if sched is not None and ck.extra.get("schedule"):
            sched.load_state_dict(ck.extra["schedule"])
        print(f"[{kind}] resumed from {ckpt_path} at epoch {start}")
    rng = np.random.default_rng(args.seed + start + (0 if kind == "notes" else 1000))
    epochs = cfg["epochs"] if args.epochs is None else args.epochs
    bar = tqdm(range(start, epochs + 1), desc=f"{kind} VAE", unit="epoch",
               disable=not args.progress)
    for epoch in bar:
        t0 = time.perf_counter()
        order = rng.permutation(len(x_train))
        tot = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        for s in range(0, len(order), cfg["batch"]):
            xb = x_train[order[s:s + cfg["batch"]]]
            loss, parts = train_step(model, loss_fn, opt, xb)
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
        model.train()
        acc = recon_accuracy(model, codes_val, len_val, kind)
        history.append({"epoch": epoch, "train": tot, "val_loss": vloss,
                        "val_recon": vparts["recon"], "val_kl": vparts["kl"],
                        "val_accuracy": acc["accuracy"], "lr": lr,
                        "segments_per_s": len(order) / secs})
        bar.set_postfix(loss=f"{tot['loss']:.2f}", val=f"{vloss:.2f}",
                        acc=f"{acc['accuracy']:.3f}", seg_s=f"{len(order) / secs:,.0f}")
        if epoch % max(1, args.log_every) == 0 or epoch == epochs:
            print(f"[{kind}] epoch {epoch:4d}/{epochs}: train {tot['loss']:.3f} (recon "
                  f"{tot['recon']:.3f}, KL {tot['kl']:.3f})  val {vloss:.3f}  held-out token "
                  f"accuracy {acc['accuracy']:.4f}  ({len(order) / secs:,.0f} segments/s)",
                  flush=True)
        nn.save_checkpoint(ckpt_path, model, opt,
                           config={"kind": kind, "input_dim": model.input_dim, **cfg},
                           extra={"epoch": epoch, "history": history,
                                  "schedule": sched.state_dict() if sched is not None else None},
                           arrays=latent_prior(model, x_train))
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
    return cfgs


def train(args) -> dict:
    """``train``: both VAEs on one subset, then reconstruction scores, samples, interpolation."""
    nn.manual_seed(args.seed)
    run = make_run_dir(args.out, APP)
    t0 = time.perf_counter()
    _, stats, train_songs, val_songs = load_split(args.subset, args.data, args.limit,
                                                  args.val_frac, args.seed, args.progress)
    Nt, Rt, Lt, _, skip_t = segments(train_songs, args.max_len)
    Nv, Rv, Lv, _, skip_v = segments(val_songs, args.max_len)
    print(f"data: {args.subset}: {stats['kept']} songs kept of {stats['tunes']} (dropped "
          f"{stats['dropped']}); {len(train_songs)} train / {len(val_songs)} held-out songs -> "
          f"{len(Nt)} / {len(Nv)} segments of {args.max_len} events ({skip_t + skip_v} songs "
          f"skipped for pitches outside {PITCH_LOW}-{PITCH_HIGH})")
    cfgs = _configs(args)
    data = {"notes": (Nt, Nv, Lv), "rhythm": (Rt, Rv, Lv)}
    models, hist, results = {}, {}, {}
    for kind in ("notes", "rhythm"):
        tr_codes, va_codes, va_len = data[kind]
        x_tr = normalise(tr_codes, kind).astype(np.float32)
        x_va = normalise(va_codes, kind).astype(np.float32)
        ckpt = os.path.join(run, f"{kind}.npz")
        models[kind], hist[kind] = fit(kind, cfgs[kind], x_tr, x_va, va_codes, va_len, ckpt, args,
                                       resume=args.resume)
        r = results[kind] = {
            "held_out": recon_accuracy(models[kind], va_codes, va_len, kind),
            "train": recon_accuracy(models[kind], tr_codes, Lt, kind),
            "most_common_per_position": mean_baseline(tr_codes, Lt, va_codes, va_len, kind),
            "final_val_loss": hist[kind][-1]["val_loss"] if hist[kind] else None}
        models[kind].eval()
        print(f"[{kind}] held-out reconstruction token accuracy "
              f"{r['held_out']['accuracy']:.4f} (within one step "
              f"{r['held_out']['within_1']:.4f}; with padding "
              f"{r['held_out']['accuracy_with_padding']:.4f}; train "
              f"{r['train']['accuracy']:.4f}; most-common-per-position baseline "
              f"{r['most_common_per_position']['accuracy']:.4f})")
    # Held-out codes ride along in the run folder for `interpolate`.
    np.savez(os.path.join(run, "heldout.npz"), notes=Nv, rhythm=Rv, lengths=Lv)
    files = [os.path.join(run, f) for f in ("notes.npz", "rhythm.npz", "heldout.npz")]
    curves = plot_vae_curves(hist, os.path.join(run, "curves.png"))
    rec_n = denormalise(reconstruct(models["notes"],
                                    normalise(Nv[:1], "notes").astype(np.float32)), "notes")[0]
    rec_r = denormalise(reconstruct(models["rhythm"],
                                    normalise(Rv[:1], "rhythm").astype(np.float32)), "rhythm")[0]
    rec_png = os.path.join(run, "reconstruction.png")
    plot_reconstruction(Nv[0], rec_n, Rv[0], rec_r, int(Lv[0]), rec_png)
    files += [f for f in (curves, rec_png) if f]
    rng = np.random.default_rng(args.seed)
    priors = None
    if args.prior == "fitted":
        priors = {}
        for k in ("notes", "rhythm"):
            fitted = latent_prior(models[k], normalise(data[k][0], k).astype(np.float32))
            priors[k] = (fitted["latent_mean"], fitted["latent_std"])
    samples = []
    for i, (p, d) in enumerate(sample_melodies(models["notes"], models["rhythm"], args.samples,
                                               rng, priors)):
        path = write_melody(os.path.join(run, f"sample_{i}.mid"), p, d)
        samples.append({"file": path, "notes": sum(x is not None for x in p), "events": len(p)})
        files.append(path)
    interp = []
    a, b = 0, min(1, len(Nv) - 1)
    for k, (p, d) in enumerate(interpolate(models["notes"], models["rhythm"], Nv[a], Rv[a], Nv[b],
                                           Rv[b], args.interp_steps)):
        path = write_melody(os.path.join(run, f"interp_{k}.mid"), p, d)
        interp.append({"file": path, "notes": sum(x is not None for x in p)})
        files.append(path)
    summary = {
        "app": APP, "subset": args.subset, "preset": args.preset, "config": cfgs,
        "max_len": args.max_len, "prior": args.prior,
        "data": {"songs": stats, "train_songs": len(train_songs), "held_out_songs": len(val_songs),
                 "train_segments": int(len(Nt)), "held_out_segments": int(len(Nv))},
        "reconstruction": results, "samples": samples, "interpolation": interp,
        "history": hist, "files": files, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_summary(run, summary)
    print(f"wrote {len(files)} files and summary.json to {run}")
    return summary
