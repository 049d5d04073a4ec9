"""Training of apps/voice_vae.py: one model of a run (``train_one``: fit, checkpoints, metrics,
latent plot) and the run's summary.json (``build_summary``).

X: (N, n_mels, frames) images in [0, 1]; idx: the (train, val, test) index arrays of
voice_data.split. The optimisation loop itself is apps/voice_models.fit.
"""
from __future__ import annotations

import csv
import json
import os
import time

import nnscratch as nn
from apps.voice_data import APP, MODELS, SEED_TEST_MSE, VoiceData, latent_stats, save_model
from apps.voice_models import SpectrogramAE, evaluate, fit, one_hot
from apps.voice_plots import plot_curves, plot_latent

METRIC_FIELDS = ["epoch", "loss", "mse", "kl", "val_loss", "val_mse", "val_kl", "lr", "seconds"]


def _write_metrics(path, history):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow(row)


def train_one(name, args, data: VoiceData, X, idx, scaler, hops, out, log=print) -> dict:
    """Train (or resume) one model; write its checkpoints, metrics and latent plot. Returns its
    summary entry."""
    tr, va, te = idx
    spec = dict(MODELS[name])
    if name == "vae" and args.vae_latent:
        spec["latent"] = args.vae_latent
    if name == "cvae" and args.cvae_latent:
        spec["latent"] = args.cvae_latent
    nn.manual_seed(args.seed)
    model = SpectrogramAE(data.cfg.shape, channels=tuple(args.channels), hidden=args.hidden,
                          dense_hidden=tuple(args.dense_hidden), **spec)
    lam = args.lam if model.variational else 1.0
    C = one_hot(data.digits) if model.n_classes else None
    sub = (lambda a, i: None if a is None else a[i])
    best_path, last_path = os.path.join(out, f"{name}.npz"), os.path.join(out, f"{name}_last.npz")
    state = None
    if args.resume and os.path.exists(last_path):
        ck = nn.load_checkpoint(last_path, model)
        state = {"opt": ck.optimizer, "history": ck.extra.get("history", []), "best": ck.extra.get("best"),
                 "epoch": ck.extra.get("epoch", 0), "rng": ck.extra.get("rng"),
                 "best_state": nn.load_checkpoint(best_path).model if os.path.exists(best_path) else None}
        log(f"[{name}] resumed from {last_path} after epoch {state['epoch']}")
    epochs = args.epochs if args.epochs else (args.dense_epochs if model.kind == "dense" else args.conv_epochs)
    metrics_csv = os.path.join(out, f"{name}_metrics.csv")

    def on_epoch(m, opt, st):
        extra = {"epoch": st["epoch"], "history": st["history"], "best": st["best"], "rng": st["rng"],
                 "epochs": epochs}
        save_model(last_path, name, m, data.cfg, scaler, lam, hops, extra, opt=opt, protocol=data.protocol)
        if st["history"][-1].get("best"):
            save_model(best_path, name, m, data.cfg, scaler, lam,
                       {**hops, **latent_stats(m, X[tr], data.digits[tr])},
                       {"epoch": st["epoch"], "history": st["history"]}, protocol=data.protocol)
        _write_metrics(metrics_csv, st["history"])

    t0 = time.perf_counter()
    model, st = fit(model, X[tr], X[va], sub(C, tr), sub(C, va), epochs=epochs, batch_size=args.batch_size,
                    lr=args.lr, lam=lam, seed=args.seed, progress=args.progress, desc=name,
                    log=log if (not args.progress or args.log_epochs) else None, on_epoch=on_epoch,
                    state=state, lr_decay_epoch=args.lr_decay_epoch)
    test = evaluate(model, X[te], sub(C, te), lam)
    val = evaluate(model, X[va], sub(C, va), lam)
    stats = latent_stats(model, X[tr], data.digits[tr])
    history = st["history"]
    best_epoch = max((h["epoch"] for h in history if h.get("best")), default=None)
    entry = {"model": model.config(), "protocol": data.protocol, "parameters": model.num_parameters(), "lambda": lam,
             "epochs": epochs, "best_epoch": best_epoch, "test_mse": round(test["mse"], 6),
             "val_mse": round(val["mse"], 6), "seed_test_mse": SEED_TEST_MSE.get(name),
             "seconds": round(time.perf_counter() - t0, 1)}
    if model.variational:
        entry.update(test_kl=round(test["kl"], 4), test_loss=round(test["loss"], 5),
                     test_mse_sampled_z=round(test["mse_sampled"], 6))
    save_model(best_path, name, model, data.cfg, scaler, lam, {**hops, **stats},
               {"epoch": best_epoch, "history": history, "test": test, "val": val, "summary": entry},
               protocol=data.protocol)
    mu, _ = model.encode(X[tr], sub(C, tr))
    png = plot_latent(mu, data.digits[tr], stats["centroids"], os.path.join(out, f"latent_{name}.png"),
                      f"{name}: training codes ({model.latent}-D{', principal axes' if model.latent > 3 else ''})",
                      histogram=model.variational)
    seed_txt = f" (seed: {SEED_TEST_MSE[name]})" if name in SEED_TEST_MSE else ""
    log(f"[{name}] test MSE {test['mse']:.5f}{seed_txt}, validation {val['mse']:.5f}, best epoch "
        f"{best_epoch}/{epochs}" + (f", test KL {test['kl']:.3f}" if model.variational else ""))
    entry["files"] = [best_path, last_path, metrics_csv, png]
    return entry


def build_summary(out) -> dict:
    """summary.json from the checkpoints in the run folder (several processes may train models
    into one folder; the judge adds its figures)."""
    path = os.path.join(out, "summary.json")
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    models, histories = {}, {}
    for name in MODELS:
        p = os.path.join(out, f"{name}.npz")
        if not os.path.exists(p):
            continue
        ck = nn.load_checkpoint(p)
        if "summary" in ck.extra:
            models[name] = ck.extra["summary"]
            histories[name] = ck.extra["history"]
    summary = {**old, "app": APP, "run": out, "split": "official (index 0-4 test, 300 recordings)",
               "models": models,
               "test_mse_vs_seed": {n: {"ours": m["test_mse"], "seed": m.get("seed_test_mse"),
                                        "at_or_below_seed": (m["test_mse"] <= m["seed_test_mse"])
                                        if m.get("seed_test_mse") else None} for n, m in models.items()}}
    files = set(old.get("files", []))
    if histories:
        files.add(plot_curves(histories, os.path.join(out, "curves.png")))
    for m in models.values():
        files.update(m.get("files", []))
    files.add(path)
    summary["files"] = sorted(files)
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
    return summary
