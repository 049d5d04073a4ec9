"""Training the spoken-digit classifiers: the loop, held-out fits, K-fold CV, the majority vote
of the fold models, a small grid search, and the `train` / `speakers` commands.

    model, history = train_model(hp, Xtr, ytr, n_classes=10, Xval=Xva, yval=yva)
    res = fit_and_test(ds, "digit", hp, train_idx, test_idx)      # RunResult: model, test report

Training: Adam (AdamW with weight_decay > 0) on the softmax cross-entropy, mini-batches, random
time shifts as augmentation, progress bars (tqdm) with loss and accuracy, and the weights of the
best validation epoch kept. The standardisation statistics always come from the training
examples only. Splits (apps/audio/fsdd.py): the official one (recordings 0-4 of each speaker and
digit are the test set) or leave-one-speaker-out (6 models). `--scale db+pcen` (official split
only) trains one model per front end, model.npz and model_pcen.npz, and reports the pair's
accuracy, their log-probabilities averaged as `predict` pools them (apps/digits/tta.py).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

import nnscratch as nn
from apps.audio import fsdd
from apps.audio.features import FeatureConfig, Standardizer
from apps.common.errors import UsageError
from apps.common.runs import make_run_dir, write_summary
from apps.digits.augment import PER_EXAMPLE, Augmenter
from apps.digits.augment import settings as augment_settings
from apps.digits.data import APP, Dataset, cache_dir_for, load_dataset
from apps.digits.evaluate import (
    classification_report,
    error_distances,
    plot_confusion,
    plot_history,
)
from apps.digits.model import (
    HParams,
    as_input,
    build_model,
    fit_normaliser,
    predict_proba,
    prepare,
    save_model,
)
from apps.digits.tta import pooled_log_proba

GRID = {"lr": [1e-3, 3e-3], "dropout": [0.25, 0.5]}


# ==============================================================================================
# The training loop
# ==============================================================================================
def _shift_batch(xb, max_shift, rng):
    """Augmentation: shift each image by -max_shift..max_shift frames, repeating the edge frame."""
    if max_shift <= 0:
        return xb
    out = np.empty_like(xb)
    T = xb.shape[-1]
    for i, s in enumerate(rng.integers(-max_shift, max_shift + 1, size=len(xb))):
        idx = np.clip(np.arange(T) - s, 0, T - 1)
        out[i] = xb[i][..., idx]
    return out


def train_model(hp: HParams, Xtr, ytr, n_classes: int, Xval=None, yval=None, seed: int = 0,
                progress: bool = True, desc: str = "train", log=print,
                augmenter: Augmenter | None = None):
    """Train one model; returns (model, history). Keeps the weights of the best validation epoch
    (highest accuracy, ties to the lowest loss) when a validation set is given, else the last.

    Xtr, Xval: standardised (N, H, T) float32; ytr, yval: (N,) int class indices.
    augmenter: fresh augmented images each epoch and SpecAugment per batch (augment.py); the
    random frame shift is on when 'shift' is in hp.augment.
    history: per epoch {'epoch', 'loss', 'train_acc', 'val_loss', 'val_acc', 'seconds'}.
    """
    nn.manual_seed(seed)
    model = build_model(hp, Xtr.shape[1:], n_classes)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    if hp.weight_decay > 0:
        opt = nn.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    else:
        opt = nn.optim.Adam(model.parameters(), lr=hp.lr)
    rng = np.random.default_rng(seed)
    history, best, best_state = [], None, None
    n = len(Xtr)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=hp.epochs * ((n + hp.batch_size - 1) // hp.batch_size), desc=desc,
                   unit="batch", leave=False, dynamic_ncols=True)
    shift = hp.shift if "shift" in hp.augment else 0
    for epoch in range(1, hp.epochs + 1):
        t0 = time.perf_counter()
        X_epoch = augmenter.epoch(Xtr, rng) if augmenter is not None else Xtr
        model.train()
        perm = rng.permutation(n)
        tot_loss, tot_correct = 0.0, 0
        for i in range(0, n, hp.batch_size):
            b = perm[i:i + hp.batch_size]
            xb = _shift_batch(X_epoch[b], shift, rng)
            if augmenter is not None:
                xb = augmenter.batch(xb, rng)
            xb = nn.to_device(as_input(hp, xb))
            tb = nn.to_device(ytr[b])
            logits = model(xb)
            loss = loss_fn(logits, tb)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            tot_loss += loss * len(b)
            tot_correct += int((nn.to_cpu(logits).argmax(axis=1) == ytr[b]).sum())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{tot_loss / min(i + len(b), n):.3f}",
                                acc=f"{tot_correct / min(i + len(b), n):.3f}")
        rec = {"epoch": epoch, "loss": tot_loss / n, "train_acc": tot_correct / n}
        if Xval is not None and len(Xval):
            p = predict_proba(model, hp, Xval)
            rec["val_loss"] = float(-np.log(np.maximum(p[np.arange(len(yval)), yval],
                                                       1e-12)).mean())
            rec["val_acc"] = float((p.argmax(axis=1) == yval).mean())
            score = (rec["val_acc"], -rec["val_loss"])  # accuracy first, ties to the lower loss
            if best is None or score > best:
                best, best_state = score, model.state_dict()
                rec["best"] = True
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(rec)
        if bar is not None:
            bar.set_postfix(epoch=epoch, loss=f"{rec['loss']:.3f}", acc=f"{rec['train_acc']:.3f}",
                            val=f"{rec.get('val_acc', float('nan')):.3f}")
        elif log is not None:
            val = (f", val loss {rec['val_loss']:.4f} acc {rec['val_acc']:.4f}"
                   if "val_acc" in rec else "")
            log(f"[{desc}] epoch {epoch:3d}/{hp.epochs}: loss {rec['loss']:.4f}, train acc "
                f"{rec['train_acc']:.4f}{val} ({rec['seconds']:.1f} s)")
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


# ==============================================================================================
# Held-out fits, cross-validation, grid search
# ==============================================================================================
@dataclass
class RunResult:
    model: object
    norm: Standardizer
    history: list
    test: dict
    extra: dict = field(default_factory=dict)


def _val_split(idx, labels, fraction, seed):
    """Hold out a stratified ``fraction`` of idx for validation: (train, val)."""
    if fraction <= 0:
        return idx, idx[:0]
    k = max(2, int(round(1 / fraction)))
    train, val = fsdd.kfold(idx, labels[idx], k=k, seed=seed)[0]
    return train, val


def make_augmenter(ds: Dataset, hp: HParams, norm, idx) -> Augmenter | None:
    """The Augmenter of the training examples ``idx`` (None when hp.augment asks for nothing
    beyond the frame shift)."""
    if not set(hp.augment) - {"shift"}:
        return None
    per_example = any(n in PER_EXAMPLE for n in hp.augment)
    return Augmenter(hp.augment, ds.cfg, ds.waveforms(idx) if per_example else None,
                     lambda X: prepare(hp, norm, X))


def fit_and_test(ds: Dataset, task, hp, train_idx, test_idx, val_fraction=0.1, seed=0,
                 progress=True, desc="train", log=print) -> RunResult:
    """Standardise on train_idx (minus a validation share), train, predict test_idx."""
    y = ds.labels(task)
    n_classes = len(ds.class_names(task))
    tr, va = _val_split(train_idx, y, val_fraction, seed)
    norm = fit_normaliser(hp, ds.X[tr])  # statistics from the training examples only
    model, history = train_model(hp, prepare(hp, norm, ds.X[tr]), y[tr], n_classes,
                                 prepare(hp, norm, ds.X[va]) if len(va) else None, y[va],
                                 seed=seed, progress=progress, desc=desc, log=log,
                                 augmenter=make_augmenter(ds, hp, norm, tr))
    proba = predict_proba(model, hp, prepare(hp, norm, ds.X[test_idx]))
    pred = proba.argmax(axis=1)
    test = classification_report(y[test_idx], pred, ds.speakers[test_idx], ds.speaker_names,
                                 ds.class_names(task), task)
    return RunResult(model, norm, history, test,
                     {"proba": proba, "n_train": len(tr), "n_val": len(va)})


def pooled_test(dss, members, hp, test_idx, task, tta=False) -> tuple:
    """(predictions, classification report) on test_idx of models on several front ends or
    seeds, their log-probabilities averaged as `predict` pools them (apps/digits/tta.py).
    dss: {scale: Dataset}, the same recordings; members: [(scale, RunResult)]."""
    ds = next(iter(dss.values()))
    pred = pooled_log_proba([(r.model, hp, dss[s].cfg, r.norm) for s, r in members],
                            ds.waveforms(test_idx), tta=tta,
                            images=[dss[s].X[test_idx] for s, _ in members]).argmax(1)
    return pred, classification_report(ds.labels(task)[test_idx], pred, ds.speakers[test_idx],
                                       ds.speaker_names, ds.class_names(task), task)


def cross_validate(ds: Dataset, task, hp, train_idx, k=5, seed=0, progress=True, log=print,
                   desc="cv"):
    """K-fold CV on the training indices: per-fold validation accuracy and the fold models."""
    y = ds.labels(task)
    n_classes = len(ds.class_names(task))
    folds = fsdd.kfold(train_idx, y[train_idx], k=k, seed=seed)
    results = []
    for f, (tr, va) in enumerate(folds):
        norm = fit_normaliser(hp, ds.X[tr])
        model, hist = train_model(hp, prepare(hp, norm, ds.X[tr]), y[tr], n_classes,
                                  seed=seed + f, progress=progress,
                                  desc=f"{desc} fold {f + 1}/{k}", log=None,
                                  augmenter=make_augmenter(ds, hp, norm, tr))
        proba = predict_proba(model, hp, prepare(hp, norm, ds.X[va]))
        acc = float((proba.argmax(1) == y[va]).mean())
        log(f"[{desc}] fold {f + 1}/{k}: validation accuracy {acc:.4f}")
        results.append({"fold": f + 1, "val_acc": round(acc, 4), "model": model, "norm": norm,
                        "history": hist})
    accs = [r["val_acc"] for r in results]
    return results, {"folds": k, "val_acc": accs, "mean": round(float(np.mean(accs)), 4),
                     "std": round(float(np.std(accs)), 4)}


def majority_vote(results, hp, X):
    """The seed's rule (chapter 3.3, step 7): each example gets the class that most of the K
    sub-models predict; ties go to the class with the larger summed probability."""
    probas = np.stack([predict_proba(r["model"], hp, prepare(hp, r["norm"], X))
                       for r in results])
    n_cls = probas.shape[-1]
    counts = np.stack([(probas.argmax(-1) == c).sum(0) for c in range(n_cls)], axis=1)
    return (counts + 1e-3 * probas.sum(0) / len(results)).argmax(axis=1)


def grid_search(ds, task, hp, train_idx, k=3, seed=0, progress=True, log=print):
    """Every combination of GRID, scored by K-fold CV on the training data; returns
    (best hp, table)."""
    table = []
    for values in itertools.product(*GRID.values()):
        cand = HParams.from_dict({**hp.to_dict(), **dict(zip(GRID, values))})
        _, stats = cross_validate(ds, task, cand, train_idx, k=k, seed=seed, progress=progress,
                                  log=lambda *a: None, desc=f"grid {dict(zip(GRID, values))}")
        row = {**dict(zip(GRID, values)), "cv_mean": stats["mean"], "cv_std": stats["std"]}
        log(f"[grid] {row}")
        table.append(row)
    best = max(table, key=lambda r: r["cv_mean"])
    return HParams.from_dict({**hp.to_dict(), **{k_: best[k_] for k_ in GRID}}), table


# ==============================================================================================
# The train and speakers commands
# ==============================================================================================
def feature_config(args) -> FeatureConfig:
    """The features of the command line; without --time-mode, 'fixed' for the model that pools
    over time (cnn_pool reads a word wherever it lies) and 'stretch' for the others."""
    time_mode = args.time_mode or ("fixed" if args.model == "cnn_pool" else "stretch")
    cfg = FeatureConfig(kind=args.features, n_mels=args.n_mels, n_frames=args.frames,
                        n_mfcc=args.n_mfcc, time_mode=time_mode,
                        trim_db=args.trim_db, top_db=args.top_db, fmin=args.fmin,
                        scale=args.scale[0])
    if cfg.fmin >= cfg.sr / 2:  # refused here, before a run folder exists
        raise UsageError(f"--fmin {cfg.fmin:g}: the mel bands must start below half the sample "
                         f"rate ({cfg.sr / 2:g} Hz)")
    if args.model != "mlp":
        pools = [tuple(args.freq_pool)] + \
            [tuple(p) for p in getattr(args, "search_freq_pool", None) or []]  # loso only
        for f1, f2 in pools:
            if cfg.height // f1 // f2 < 1:
                raise UsageError(f"frequency pooling {f1},{f2} leaves no band of the "
                                 f"{cfg.height} feature rows: pool fewer bands")
    return cfg


def hparams(args) -> HParams:
    return HParams(model=args.model, channels=tuple(args.channels), hidden=tuple(args.hidden),
                   dense=args.dense, dropout=args.dropout, lr=args.lr,
                   weight_decay=args.weight_decay, batch_size=args.batch_size, epochs=args.epochs,
                   shift=args.shift, norm=args.norm, augment=tuple(args.augment),
                   cmvn=args.cmvn, freq_pool=tuple(args.freq_pool))


def _train_official(args, dss, task, hp, cfg, out, summary, log):
    """Official split: optional grid search and CV, then one model tested on recordings 0-4,
    or with --scale db+pcen one model per feature scale (dss: {scale: Dataset}, the same
    recordings), their log-probabilities averaged on the test set as predict pools them."""
    scales = list(dss)
    ds = dss[scales[0]]
    classes, label = ds.class_names(task), f"{task} {hp.model} {cfg.kind}"
    train_idx, test_idx = fsdd.official_split(ds.recs)
    if args.grid:
        hp, table = grid_search(ds, task, hp, train_idx, k=args.cv or 3, seed=args.seed,
                                progress=args.progress, log=log)
        summary["grid"] = {"grid": GRID, "folds": args.cv or 3, "results": table,
                           "best": {k: getattr(hp, k) for k in GRID}}
        summary["hparams"] = hp.to_dict()
        log(f"[grid] best: {summary['grid']['best']}")
    if args.cv:
        results, stats = cross_validate(ds, task, hp, train_idx, k=args.cv, seed=args.seed,
                                        progress=args.progress, log=log)
        vote_pred = majority_vote(results, hp, ds.X[test_idx])
        vote = classification_report(ds.labels(task)[test_idx], vote_pred, ds.speakers[test_idx],
                                     ds.speaker_names, classes, task)
        stats["test_majority_vote"] = vote["accuracy"]
        summary["cv"] = stats
        log(f"[cv] {args.cv}-fold validation accuracy {stats['mean']:.4f} +- "
            f"{stats['std']:.4f}; test accuracy of the majority vote: {vote['accuracy']:.4f}")
    members = []  # (scale, RunResult, checkpoint path), the first scale's model.npz first
    for k, scale in enumerate(scales):
        res = fit_and_test(dss[scale], task, hp, train_idx, test_idx, args.val_fraction,
                           args.seed, args.progress, log=log,
                           desc=label + (f", {scale}" if len(scales) > 1 else ""))
        name = "model.npz" if k == 0 else f"model_{scale}.npz"  # predict finds them by name
        members.append((scale, res, save_model(
            os.path.join(out, name), res.model, hp, dss[scale].cfg, res.norm, task, classes,
            extra={"test_accuracy": res.test["accuracy"]})))
    res = members[0][1]
    test = res.test
    if len(members) > 1:
        _, test = pooled_test(dss, [(s, r) for s, r, _ in members], hp, test_idx, task)
        summary["members"] = [{"scale": s, "test_accuracy": r.test["accuracy"], "checkpoint": c}
                              for s, r, c in members]
        log("[members] " + ", ".join(f"{s} alone {r.test['accuracy']:.4f}"
                                     for s, r, _ in members))
        label += f", {'+'.join(scales)}"
    png = plot_confusion(test["confusion"], classes, os.path.join(out, "confusion.png"),
                         f"{label}, official split: accuracy {test['accuracy']:.4f}")
    hist_png = plot_history({("model" if len(members) == 1 else s): r.history
                             for s, r, _ in members}, os.path.join(out, "training.png"))
    best_epoch = max((h["epoch"] for h in res.history if h.get("best")), default=None)
    summary.update({"test": test, "n_train": res.extra["n_train"], "n_val": res.extra["n_val"],
                    "n_test": len(test_idx), "history": res.history, "best_epoch": best_epoch})
    summary["files"] += [c for _, _, c in members] + [png, hist_png]
    log(f"[{label}] official split test accuracy {test['accuracy']:.4f} "
        f"({test['errors']} errors / {test['n']})")
    log("per-speaker accuracy: "
        + ", ".join(f"{k} {v:.3f}" for k, v in test["per_speaker_accuracy"].items()))
    if "error_distance_percent" in test:
        log("error distances (% of errors): " + json.dumps(test["error_distance_percent"]))


def _train_loso(args, ds, task, hp, cfg, out, summary, log):
    """Leave one speaker out: six models, each tested on the speaker it never heard."""
    classes, label = ds.class_names(task), f"{task} {hp.model} {cfg.kind}"
    per_speaker, histories = {}, {}
    conf = np.zeros((len(classes), len(classes)), dtype=np.int64)
    all_true, all_pred = [], []
    vote_per_speaker, cv_per_speaker = {}, {}
    for name, train_idx, test_idx in fsdd.loso_splits(ds.recs):
        res = fit_and_test(ds, task, hp, train_idx, test_idx, args.val_fraction, args.seed,
                           args.progress, desc=f"{label} without {name}", log=log)
        per_speaker[name] = res.test["accuracy"]
        if args.cv:  # K fold models on the other speakers, majority vote on this one
            results, stats = cross_validate(ds, task, hp, train_idx, k=args.cv, seed=args.seed,
                                            progress=args.progress, log=log,
                                            desc=f"cv without {name}")
            vote_pred = majority_vote(results, hp, ds.X[test_idx])
            vote_per_speaker[name] = round(
                float((vote_pred == ds.labels(task)[test_idx]).mean()), 4)
            cv_per_speaker[name] = stats
            log(f"[loso] held-out speaker {name}: majority vote of {args.cv} fold models "
                f"{vote_per_speaker[name]:.4f}")
        histories[name] = res.history
        conf += np.asarray(res.test["confusion"])
        all_true.append(ds.labels(task)[test_idx])
        all_pred.append(res.extra["proba"].argmax(1))
        log(f"[loso] held-out speaker {name}: accuracy {res.test['accuracy']:.4f}")
        ckpt = save_model(os.path.join(out, f"model_without_{name}.npz"), res.model, hp, cfg,
                          res.norm, task, classes,
                          extra={"held_out": name, "accuracy": res.test["accuracy"]})
        summary["files"].append(ckpt)
    y_true, y_pred = np.concatenate(all_true), np.concatenate(all_pred)
    accs = list(per_speaker.values())
    worst = min(per_speaker, key=per_speaker.get)
    summary["loso"] = {"per_speaker_accuracy": per_speaker, "mean": round(float(np.mean(accs)), 4),
                       "worst_speaker": worst, "worst": per_speaker[worst],
                       "pooled_accuracy": round(float((y_true == y_pred).mean()), 4),
                       "confusion": conf.tolist(), "classes": classes,
                       "error_distance_percent": error_distances(y_true, y_pred, len(classes))}
    if args.cv:
        v = list(vote_per_speaker.values())
        worst_v = min(vote_per_speaker, key=vote_per_speaker.get)
        summary["loso"]["cv_majority_vote"] = {
            "folds": args.cv, "per_speaker_accuracy": vote_per_speaker,
            "mean": round(float(np.mean(v)), 4), "worst_speaker": worst_v,
            "worst": vote_per_speaker[worst_v], "cv": cv_per_speaker}
        log(f"[loso] majority vote of {args.cv} fold models: mean {np.mean(v):.4f}, worst "
            f"{worst_v} {vote_per_speaker[worst_v]:.4f}")
    summary["histories"] = histories
    png = plot_confusion(conf, classes, os.path.join(out, "confusion.png"),
                         f"{label}, leave-one-speaker-out: mean {np.mean(accs):.4f}")
    hist_png = plot_history(histories, os.path.join(out, "training.png"))
    summary["files"] += [png, hist_png]
    log(f"[loso] mean accuracy over speakers {np.mean(accs):.4f}, worst {worst} "
        f"{per_speaker[worst]:.4f}")


def check_split_sizes(args) -> None:
    """Refuse, before a run folder is made or a feature computed, a ``--limit`` (with
    ``--split``, ``--cv``, ``--grid`` and ``--val-fraction``) that leaves a split nothing, or too
    little, to train or test on. Only the file names are read."""
    recs = fsdd.list_recordings(args.data)
    if args.limit is not None:
        recs = [r for r in recs if r.index < args.limit]
        kept = "recording 0" if args.limit == 1 else f"recordings 0-{args.limit - 1}"
        where = f"with --limit {args.limit} ({kept} of each speaker and digit)"
    else:
        where = f"in {fsdd.resolve_root(args.data)}"
    if args.split == "official":
        splits = [("the official split", *fsdd.official_split(recs))]
        if len(splits[0][1]) == 0:
            raise UsageError(f"{where}, every recording is in the official split's test set "
                             "(recordings 0-4): nothing is left to train on; use --limit 6 or "
                             "more, or --split loso")
    else:
        splits = [(f"the split without {name}", tr, te) for name, tr, te in fsdd.loso_splits(recs)]
    folds = max([args.cv, (args.cv or 3) if args.grid else 0]
                + ([max(2, int(round(1 / args.val_fraction)))] if args.val_fraction > 0 else []))
    for name, train_idx, test_idx in splits:
        if len(test_idx) == 0 or len(train_idx) == 0:
            raise UsageError(f"{where}, {name} has {len(train_idx)} recordings to train on and "
                             f"{len(test_idx)} to test on")
        if len(train_idx) < folds:
            raise UsageError(
                f"{where}, {name} has {len(train_idx)} training recordings, too few to split "
                f"into {folds} folds (--cv, --grid, --val-fraction {args.val_fraction:g}); use "
                "a larger --limit, fewer folds or a larger --val-fraction")


def cmd_train(args, task: str = "digit", log=print) -> int:
    """`train` (task 'digit') and `speakers` (task 'speaker'): fit, test, write the run folder."""
    t_start = time.perf_counter()
    cfg, hp = feature_config(args), hparams(args)
    if task == "speaker" and args.split == "loso":
        raise UsageError("speaker identification needs every speaker in training: "
                         "use --split official")
    if len(args.scale) > 1 and (args.split == "loso" or args.cv or args.grid):
        raise UsageError(f"--scale {'+'.join(args.scale)} trains one model per front end on the "
                         "official split only: without --split loso, --cv and --grid (the loso "
                         "command takes --scale db+pcen for leave-one-speaker-out)")
    check_split_sizes(args)
    out = make_run_dir(args.out, APP)
    dss = {s: load_dataset(args.data, dataclasses.replace(cfg, scale=s),
                           limit_per_class=args.limit, progress=args.progress,
                           cache_dir=cache_dir_for(args), log=log) for s in args.scale}
    ds = dss[args.scale[0]]
    summary = {"app": APP, "task": task, "split": args.split, "model": hp.model,
               "features": cfg.to_dict(), "scales": list(args.scale), "hparams": hp.to_dict(),
               "seed": args.seed,
               "augment": augment_settings(hp.augment), "cmvn": hp.cmvn,
               "data": fsdd.resolve_root(args.data), "n_recordings": len(ds.recs), "files": []}
    if args.split == "official":
        _train_official(args, dss, task, hp, cfg, out, summary, log)
    else:
        _train_loso(args, ds, task, hp, cfg, out, summary, log)
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    summary["files"].append(os.path.join(out, "summary.json"))
    write_summary(out, summary)
    log(f"wrote {out}/ (summary.json, confusion.png, training.png, checkpoints)")
    return 0
