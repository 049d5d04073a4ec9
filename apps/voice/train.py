"""Training of apps/voice_vae.py: the optimisation loop (``fit``), the test figures
(``evaluate``), one model of a run (``train_one``: fit, checkpoints, metrics, latent plot) and
the `train` command (every model, the reconstructions picture, summary.json, then the judge).

X: (N, n_mels, frames) images in [0, 1]; c: (N, n_classes) the condition vectors of the
conditional models (apps/voice/data.condition: one-hot digit, then one-hot speaker for
cvae_speaker); idx: the (train, val, test) index arrays of apps/voice/data.split.
"""
from __future__ import annotations

import os
import time

import numpy as np

import nnscratch as nn
from apps.audio import fsdd
from apps.audio.inverse import SpectrogramScaler
from apps.common.runs import MetricsLog, make_run_dir, write_summary
from apps.voice.checkpoint import Loaded, latent_stats, save_model
from apps.voice.data import (
    APP,
    CACHE_DIR,
    N_DIGITS,
    VoiceData,
    condition,
    feature_config,
    hop_stats,
    load_data,
    speaker_names,
    split,
)
from apps.voice.judge import cmd_judge
from apps.voice.model import (
    DEFAULT_CONV_EPOCHS,
    DEFAULT_LAMBDA,
    MODELS,
    RECIPES,
    SEED_TEST_MSE,
    AELoss,
    SpectrogramAE,
)
from apps.voice.plots import plot_latent, plot_reconstructions
from apps.voice.summary import build_summary

METRIC_FIELDS = ["epoch", "loss", "mse", "kl", "aux_ce", "val_loss", "val_mse", "val_kl",
                 "val_aux_accuracy", "lr", "kl_weight", "seconds"]


# ==============================================================================================
# The loop
# ==============================================================================================
def evaluate(model: SpectrogramAE, X, c=None, lam: float = 1.0, batch: int = 256,
             seed: int = 0) -> dict:
    """Test figures: the MSE of the reconstruction at z = mu; for a VAE also the KL term,
    lambda * MSE + KL (at z = mu), the MSE with z sampled once, z = mu + exp(log_var / 2) eps
    (what a Keras VAE's predict returns, the seed's likely measure), the KL of each latent
    dimension (a collapsed one carries ~0) and the number of active units."""
    mu, log_var = model.encode(X, c, batch)
    rec = model.decode(mu, c, batch)
    out = {"mse": float(np.mean((rec.astype(np.float64) - X) ** 2)), "n": int(len(X))}
    if model.variational:
        with nn.no_grad():  # a figure, not a loss: NaN is reported, not raised
            kl = nn.KLDivergence(check_finite=False)(mu, log_var)
        eps = np.random.default_rng(seed).standard_normal(mu.shape).astype(mu.dtype)
        rec_s = model.decode(mu + np.exp(0.5 * log_var) * eps, c, batch)
        m, lv = mu.astype(np.float64), log_var.astype(np.float64)
        # each latent dimension's share of the KL (variational.md (4)), and the units in use by
        # Burda et al. (2016)'s test: the code's mean moves with the input, Var_x(mu) > 0.01
        kl_per_dim = 0.5 * (m * m + np.exp(lv) - 1.0 - lv).mean(axis=0)
        out.update(kl=kl, loss=lam * out["mse"] + kl,
                   mse_sampled=float(np.mean((rec_s.astype(np.float64) - X) ** 2)),
                   kl_per_dim=[round(float(v), 4) for v in kl_per_dim],
                   active_units=int(np.sum(m.var(axis=0) > 0.01)) if len(m) > 1 else 0)
    return out


def aux_accuracy(model: SpectrogramAE, X, labels, c=None) -> float:
    """The share of ``X`` whose code mu the auxiliary classifier assigns to ``labels``."""
    mu, _ = model.encode(X, c)
    with nn.no_grad():
        logits = nn.to_cpu(model.aux_head(nn.to_device(mu)))
    return float(np.mean(logits.argmax(axis=1) == np.asarray(labels)))


def train_step(model, loss_fn, opt, xb, cb=None, clip: float | None = None, yb=None):
    """One optimisation step on a batch (yb: its digits, for an auxiliary classifier); returns
    (loss, parts)."""
    loss, parts = loss_fn(model(xb, cb), xb, yb)
    model.backward(loss_fn.backward())
    if clip:
        nn.optim.clip_grad_norm(model.parameters(), clip)
    opt.step()
    opt.zero_grad()
    return loss, parts


def fit(model: SpectrogramAE, Xtr, Xval, ctr=None, cval=None, epochs: int = 40,
        batch_size: int = 64, lr: float = 1e-3, lam: float = 1.0, seed: int = 0,
        progress: bool = True, desc: str = "train", log=print, on_epoch=None, state=None,
        lr_decay_epoch: int | None = None, clip: float | None = 5.0,
        weight_decay: float = 0.0, kl_warmup: int = 0, labels=None, val_labels=None,
        aux_weight: float = 0.0):
    """Train with Adam (AdamW, decoupled weight decay, when ``weight_decay`` > 0); keep the
    weights of the epoch with the lowest validation loss.

    Xtr, Xval: (N, H, W) float32 in [0, 1]; ctr, cval: condition vectors for a conditional model.
    ``state``: {'opt', 'history', 'best', 'best_state', 'epoch', 'rng'} from a checkpoint, to
    resume. ``on_epoch(model, opt, state)`` runs after every epoch (the app saves checkpoints).
    ``lr_decay_epoch``: divide the learning rate by 10 from that epoch on (None: constant).
    ``kl_warmup``: a VAE's KL weight rises linearly, epoch / kl_warmup, to 1 at that epoch
    (Bowman et al. 2016's annealing; 0: 1 throughout). The validation loss that picks the best
    epoch always weighs the KL by 1, so epochs compare.
    ``aux_weight`` gamma > 0: the model's auxiliary classifier reads mu and its cross-entropy
    with ``labels`` (Ntr,) joins the loss, times gamma (AELoss); it is left out of the validation
    loss, which stays lambda MSE + KL, and its validation accuracy (``val_labels``) is logged.
    Returns (model with the best weights loaded, state).
    """
    if aux_weight and labels is None:
        raise ValueError("an auxiliary classifier (aux_weight > 0) needs the training labels")
    loss_fn = AELoss(model.variational, lam, aux_weight,
                     getattr(model, "aux_head", None) if aux_weight else None)
    opt = (nn.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
           if weight_decay else nn.optim.Adam(model.parameters(), lr=lr))
    state = dict(state or {})
    if state.get("opt") is not None:
        opt.load_state_dict(state["opt"])
    history = list(state.get("history", []))
    best, best_state = state.get("best"), state.get("best_state")
    start = int(state.get("epoch", 0)) + 1
    rng = np.random.default_rng(seed)
    if state.get("rng") is not None:
        rng.bit_generator.state = state["rng"]
    n = len(Xtr)
    bar = None
    if progress and start <= epochs:
        from tqdm import tqdm

        bar = tqdm(total=(epochs - start + 1) * ((n + batch_size - 1) // batch_size), desc=desc,
                   unit="batch", leave=False, dynamic_ncols=True)
    for epoch in range(start, epochs + 1):
        if lr_decay_epoch and epoch >= lr_decay_epoch:
            opt.lr = lr / 10.0
        loss_fn.kl_weight = min(1.0, epoch / kl_warmup) if kl_warmup else 1.0
        t0 = time.perf_counter()
        model.train()
        perm = rng.permutation(n)
        tot = {"loss": 0.0, "mse": 0.0, "kl": 0.0, "aux_ce": 0.0}
        for i in range(0, n, batch_size):
            b = perm[i:i + batch_size]
            xb = nn.to_device(Xtr[b])
            cb = None if ctr is None else nn.to_device(ctr[b])
            yb = None if not aux_weight else nn.to_device(labels[b])
            loss, parts = train_step(model, loss_fn, opt, xb, cb, clip, yb)
            tot["loss"] += loss * len(b)
            for k in ("mse", "kl", "aux_ce"):
                tot[k] += parts[k] * len(b)
            if bar is not None:
                bar.update(1)
                seen = min(i + len(b), n)
                bar.set_postfix(epoch=epoch, loss=f"{tot['loss'] / seen:.4g}",
                                mse=f"{tot['mse'] / seen:.4f}")
        model.eval()
        val = evaluate(model, Xval, cval, lam)
        rec = {"epoch": epoch, "loss": tot["loss"] / n, "mse": tot["mse"] / n, "kl": tot["kl"] / n,
               "aux_ce": tot["aux_ce"] / n if aux_weight else None,
               "val_aux_accuracy": (aux_accuracy(model, Xval, val_labels, cval)
                                    if aux_weight and val_labels is not None else None),
               "val_mse": val["mse"], "val_loss": val.get("loss", val["mse"]),
               "val_kl": val.get("kl", 0.0), "lr": opt.lr, "kl_weight": loss_fn.kl_weight,
               "seconds": round(time.perf_counter() - t0, 2)}
        if best is None or rec["val_loss"] < best:
            best, best_state = rec["val_loss"], model.state_dict()
            rec["best"] = True
        history.append(rec)
        if bar is not None:
            bar.set_postfix(epoch=epoch, loss=f"{rec['loss']:.4g}", val_mse=f"{val['mse']:.5f}")
        if log is not None:
            kl = (f", KL {rec['kl']:.3f} (val {rec['val_kl']:.3f})" if model.variational
                  else "")
            if aux_weight:
                kl += f", digit CE {rec['aux_ce']:.3f}" + (
                    f" (val accuracy {rec['val_aux_accuracy']:.3f})"
                    if rec["val_aux_accuracy"] is not None else "")
            log(f"[{desc}] epoch {epoch:3d}/{epochs}: train loss {rec['loss']:.5g}, MSE "
                f"{rec['mse']:.5f}{kl}; val MSE {val['mse']:.5f}"
                f"{' *' if rec.get('best') else ''} ({rec['seconds']:.0f} s)")
        state = {"opt": opt.state_dict(), "history": history, "best": best,
                 "best_state": best_state, "epoch": epoch, "rng": rng.bit_generator.state}
        if on_epoch is not None:
            on_epoch(model, opt, state)
    if bar is not None:
        bar.close()
    if not state:
        state = {"history": history, "best": best, "best_state": best_state, "epoch": start - 1}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, state


# ==============================================================================================
# One model of a run
# ==============================================================================================
def _metrics_log(path, history) -> MetricsLog:
    """<model>_metrics.csv holding exactly ``history`` (a resumed run's past epochs, or none),
    ready for one row per new epoch."""
    if os.path.exists(path):
        os.remove(path)  # a fresh run, or rows written after the checkpoint we resume from
    log = MetricsLog(path, METRIC_FIELDS)
    for row in history:
        log.append({k: row.get(k) for k in METRIC_FIELDS})
    return log


def train_one(name, args, data: VoiceData, X, idx, scaler, hops, out, log=print) -> dict:
    """Train (or resume) one model; write its checkpoints, metrics and latent plot. Returns its
    summary entry."""
    tr, va, te = idx
    spec = dict(MODELS[name])
    # a model conditioned on the voice knows the training speakers, in this order
    voices = speaker_names(data.speakers[tr]) if spec.pop("speakers", False) else []
    recipe = RECIPES.get(name, {})  # the command line's explicit values come first
    dropout = recipe.get("dropout", 0.0) if args.dropout is None else args.dropout
    lr_decay_epoch = (recipe.get("lr_decay_epoch") if args.lr_decay_epoch is None
                      else args.lr_decay_epoch)
    spec["n_classes"] += len(voices)
    if name == "vae" and args.vae_latent:
        spec["latent"] = args.vae_latent
    if name.startswith("cvae") and args.cvae_latent:
        spec["latent"] = args.cvae_latent
    best_path, last_path = os.path.join(out, f"{name}.npz"), os.path.join(out, f"{name}_last.npz")
    aux_weight = getattr(args, "digit_aux", None)
    if aux_weight is None and args.resume and os.path.exists(last_path):
        # a run resumed goes on as it began (one trained before the VAE's recipe had none)
        ck = nn.load_checkpoint(last_path)
        aux_weight = ck.extra.get("digit_aux")
        if aux_weight is None:
            aux_weight = (recipe.get("digit_aux", 0.0)
                          if ck.config.get("model", {}).get("aux_classes") else 0.0)
    aux_weight = float(recipe.get("digit_aux", 0.0) if aux_weight is None else aux_weight)
    if aux_weight:  # an auxiliary digit classifier on the code (AELoss)
        spec["aux_classes"] = N_DIGITS
    nn.manual_seed(args.seed)
    model = SpectrogramAE(data.cfg.shape, channels=tuple(args.channels), hidden=args.hidden,
                          dense_hidden=tuple(args.dense_hidden), dropout=dropout,
                          free_bits=args.free_bits if spec["variational"] else 0.0, **spec)
    lam = (args.lam or recipe.get("lam", DEFAULT_LAMBDA)) if model.variational else 1.0
    C = condition(data.digits, data.speakers, voices) if model.n_classes else None
    if voices:  # each voice speaks at its own pace: generated words get the pair's median hop
        hops = {**hops, **hop_stats(data.hops[tr], data.digits[tr], data.speakers[tr], voices)}

    def sub(a, i):
        return None if a is None else a[i]

    state = None
    if args.resume and os.path.exists(last_path):
        ck = nn.load_checkpoint(last_path, model)
        state = {"opt": ck.optimizer, "history": ck.extra.get("history", []),
                 "best": ck.extra.get("best"), "epoch": ck.extra.get("epoch", 0),
                 "rng": ck.extra.get("rng"),
                 "best_state": (nn.load_checkpoint(best_path).model
                                if os.path.exists(best_path) else None)}
        log(f"[{name}] resumed from {last_path} after epoch {state['epoch']}")
    if args.epochs:
        epochs = args.epochs
    elif model.kind == "dense":
        epochs = args.dense_epochs
    elif model.variational:
        epochs = args.vae_epochs
    else:
        epochs = args.conv_epochs or recipe.get("epochs", DEFAULT_CONV_EPOCHS)
    metrics_csv = os.path.join(out, f"{name}_metrics.csv")
    metrics = _metrics_log(metrics_csv, state["history"] if state else [])

    def on_epoch(m, opt, st):
        extra = {"epoch": st["epoch"], "history": st["history"], "best": st["best"],
                 "rng": st["rng"], "epochs": epochs, "digit_aux": aux_weight}
        save_model(last_path, name, m, data.cfg, scaler, lam, hops, extra, opt=opt,
                   protocol=data.protocol, speakers=voices)
        if st["history"][-1].get("best"):
            save_model(best_path, name, m, data.cfg, scaler, lam,
                       {**hops, **latent_stats(m, X[tr], data.digits[tr], c=sub(C, tr))},
                       {"epoch": st["epoch"], "history": st["history"]}, protocol=data.protocol,
                       speakers=voices)
        metrics.append({k: st["history"][-1].get(k) for k in METRIC_FIELDS})

    t0 = time.perf_counter()
    model, st = fit(model, X[tr], X[va], sub(C, tr), sub(C, va), epochs=epochs,
                    batch_size=args.batch_size, lr=args.lr, lam=lam, seed=args.seed,
                    progress=args.progress, desc=name,
                    log=log if (not args.progress or args.log_epochs) else None,
                    on_epoch=on_epoch, state=state, lr_decay_epoch=lr_decay_epoch,
                    weight_decay=args.weight_decay, kl_warmup=args.kl_warmup,
                    labels=data.digits[tr], val_labels=data.digits[va], aux_weight=aux_weight)
    test = evaluate(model, X[te], sub(C, te), lam)
    val = evaluate(model, X[va], sub(C, va), lam)
    stats = latent_stats(model, X[tr], data.digits[tr], X_val=X[va], c=sub(C, tr))
    history = st["history"]
    best_epoch = max((h["epoch"] for h in history if h.get("best")), default=None)
    entry = {"model": model.config(), "protocol": data.protocol,
             "parameters": model.num_parameters(), "lambda": lam, "epochs": epochs,
             "lr_decay_epoch": lr_decay_epoch, "dropout": dropout,
             "kl_warmup": args.kl_warmup if model.variational else 0,
             "free_bits": model.free_bits,
             "best_epoch": best_epoch, "test_mse": round(test["mse"], 6),
             "val_mse": round(val["mse"], 6), "seed_test_mse": SEED_TEST_MSE.get(name),
             "seconds": round(time.perf_counter() - t0, 1)}
    if model.variational:
        entry.update(test_kl=round(test["kl"], 4), test_loss=round(test["loss"], 5),
                     test_mse_sampled_z=round(test["mse_sampled"], 6),
                     test_kl_per_dim=test["kl_per_dim"], active_units=test["active_units"])
    if "mix_means" in stats:
        entry.update(mixture_components=len(stats["mix_weights"]),
                     mixture_val_loglik=round(float(stats["mix_val_loglik"]), 4))
    if aux_weight:
        entry.update(digit_aux=aux_weight,
                     test_aux_accuracy=round(aux_accuracy(model, X[te], data.digits[te],
                                                          sub(C, te)), 4))
    if voices:
        entry["speakers"] = voices
    save_model(best_path, name, model, data.cfg, scaler, lam, {**hops, **stats},
               {"epoch": best_epoch, "history": history, "test": test, "val": val,
                "summary": entry}, protocol=data.protocol, speakers=voices)
    mu, _ = model.encode(X[tr], sub(C, tr))
    axes = ", principal axes" if model.latent > 3 else ""
    png = plot_latent(mu, data.digits[tr], stats["centroids"],
                      os.path.join(out, f"latent_{name}.png"),
                      f"{name}: training codes ({model.latent}-D{axes})",
                      histogram=model.variational)
    seed_txt = f" (seed: {SEED_TEST_MSE[name]})" if name in SEED_TEST_MSE else ""
    log(f"[{name}] test MSE {test['mse']:.5f}{seed_txt}, validation {val['mse']:.5f}, best epoch "
        f"{best_epoch}/{epochs}" + (f", test KL {test['kl']:.3f}" if model.variational else ""))
    if model.variational:
        log(f"[{name}] test KL per latent dimension (nats): "
            f"{' '.join(f'{v:.2f}' for v in test['kl_per_dim'])}; active units (Var(mu) > "
            f"0.01): {test['active_units']} of {model.latent}")
    entry["files"] = [best_path, last_path, metrics_csv, png]
    return entry


# ==============================================================================================
# The train command
# ==============================================================================================
def cmd_train(args, log=print) -> int:
    """Train the chosen models into one run folder, draw their reconstructions, write
    summary.json, then let the digit classifier judge them (unless --no-judge)."""
    t0 = time.perf_counter()
    out = make_run_dir(args.out, APP)
    cfg = feature_config(args.protocol, args.n_mels, args.frames)
    data = load_data(args.data, cfg, limit=args.limit, progress=args.progress, log=log,
                     cache_dir=None if args.no_cache else CACHE_DIR, protocol=args.protocol)
    idx = split(data, args.val_fraction, args.seed)
    tr = idx[0]
    scaler = SpectrogramScaler().fit(data.S_db[tr])  # min and max of the training images only
    X = scaler.transform(data.S_db)
    hops = hop_stats(data.hops[tr], data.digits[tr])
    log(f"data: {len(data.recs)} recordings, {len(idx[0])} train / {len(idx[1])} validation / "
        f"{len(idx[2])} test (official split); dB range [{scaler.lo:.1f}, {scaler.hi:.1f}] "
        "-> [0, 1]")
    for name in args.models:
        train_one(name, args, data, X, idx, scaler, hops, out, log=log)
    loaded = {n: Loaded(os.path.join(out, f"{n}.npz")) for n in MODELS
              if os.path.exists(os.path.join(out, f"{n}.npz"))}
    te = idx[2][::max(1, len(idx[2]) // 8)][:8]
    rec_png = plot_reconstructions(loaded, X[te], data.digits[te], data.speakers[te],
                                   [f"{data.digits[i]} {data.speakers[i]}" for i in te],
                                   os.path.join(out, "reconstructions.png"))
    summary = build_summary(out)
    summary.setdefault("files", []).append(rec_png)
    summary["train_seconds"] = round(time.perf_counter() - t0, 1)
    summary["data"] = {"root": fsdd.resolve_root(args.data), "recordings": len(data.recs),
                       "train": int(len(idx[0])), "val": int(len(idx[1])),
                       "test": int(len(idx[2])), "features": cfg.to_dict(),
                       "protocol": args.protocol, "scaler": scaler.to_dict()}
    write_summary(out, summary)
    for n, m in summary["models"].items():
        seed = f" (seed {m['seed_test_mse']})" if m.get("seed_test_mse") else ""
        log(f"test MSE {n}: {m['test_mse']:.5f}{seed}")
    if args.judge:
        args.run = out
        cmd_judge(args, log=log)
    log(f"wrote {out}/ (summary.json, curves.png, latent_*.png, reconstructions.png, "
        "checkpoints)")
    return 0
