"""Spoken-digit and speaker classifiers on FSDD: dense and convolutional networks on spectrograms.

The seed report (chapter 5) classifies sounds from 50 x 50 mel spectrograms with dense networks,
and adds convolutions and dropout for harder tasks. Here, on the Free Spoken Digit Dataset
(3,000 recordings, 6 speakers, ../shared/data/fsdd):

    python apps/spoken_digits.py train                         # CNN, mel 50x50, official split
    python apps/spoken_digits.py train --model mlp             # the seed's dense network
    python apps/spoken_digits.py train --features both         # mel and MFCC stacked
    python apps/spoken_digits.py train --split loso            # leave one speaker out (6 models)
    python apps/spoken_digits.py train --cv 5                  # + 5-fold CV, majority vote on test
    python apps/spoken_digits.py train --grid                  # small grid search by CV first
    python apps/spoken_digits.py speakers                      # speaker identification, 6 classes
    python apps/spoken_digits.py evaluate runs/spoken_digits/<run>/model.npz
    python apps/spoken_digits.py predict my_seven.wav          # the latest run's model

Features (apps/audio/features.py): silence trimmed, hop chosen per recording so every word fills
50 frames (the seed's rule), mel spectrogram in dB relative to its loudest bin; standardised per
mel band with statistics from the training examples only. Models (apps/audio/classifier.py):
MLP (flattened image, Dense 256, Dense 128, dropout, softmax) and CNN (2 x [Conv 3x3, ReLU,
MaxPool 2], dropout, Dense 128, dropout, softmax), trained with Adam on the softmax cross-entropy.

Each run writes in its folder (default runs/spoken_digits/<timestamp>/, or --out): model.npz
(checkpoint: weights, feature config, normalisation), confusion.png, training.png and
summary.json (accuracy, per-speaker accuracy, confusion matrix, distribution of error distances).
Data: --data PATH, else $NNSCRATCH_DATA_FSDD, else ../shared/data/fsdd beside the project.
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps.audio import fsdd  # noqa: E402
from apps.audio.features import FeatureConfig, Standardizer, extract, extract_many  # noqa: E402
from apps.audio.classifier import (  # noqa: E402
    HParams, build_model, confusion_matrix, error_distances, plot_confusion, plot_history,
    predict_proba, train_model,
)
from apps.audio.wav import AudioError, load_clip, read_wav  # noqa: E402

DEFAULT_OUT_ROOT = os.path.join("runs", "spoken_digits")
DIGITS = [str(d) for d in range(10)]


# ==============================================================================================
# Data
# ==============================================================================================
@dataclass
class Dataset:
    """Feature images of every recording and their labels, in fsdd.list_recordings order."""

    recs: list
    X: np.ndarray            # (N, height, frames) float32
    digits: np.ndarray       # (N,) 0-9
    speakers: np.ndarray     # (N,) index into speaker_names
    speaker_names: list
    cfg: FeatureConfig

    def labels(self, task: str) -> np.ndarray:
        return self.digits if task == "digit" else self.speakers

    def class_names(self, task: str) -> list:
        return DIGITS if task == "digit" else list(self.speaker_names)


def _cache_path(cache_dir, root, cfg, n_files):
    import hashlib

    key = json.dumps({"root": os.path.abspath(root), "cfg": cfg.to_dict(), "n": n_files, "v": 1},
                     sort_keys=True)
    return os.path.join(cache_dir, f"fsdd-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz")


def load_dataset(root=None, cfg: FeatureConfig | None = None, limit_per_class: int | None = None,
                 cache_dir: str | None = None, progress: bool = True, log=print) -> Dataset:
    """Read the FSDD recordings and compute their feature images (cached under ``cache_dir``).

    ``limit_per_class``: keep only the recordings with index < limit (all speakers and digits,
    e.g. 8 -> indices 0-7: a small real slice for tests and quick runs).
    """
    cfg = cfg or FeatureConfig()
    root = fsdd.resolve_root(root)
    recs = fsdd.list_recordings(root)
    if limit_per_class is not None:
        recs = [r for r in recs if r.index < limit_per_class]
    names = fsdd.speaker_names(recs)
    digits = np.array([r.digit for r in recs])
    speakers = np.array([names.index(r.speaker) for r in recs])
    path = _cache_path(cache_dir, root, cfg, len(recs)) if cache_dir else None
    if path and os.path.exists(path):
        with np.load(path, allow_pickle=False) as z:
            X = z["X"]
        return Dataset(recs, X, digits, speakers, names, cfg)
    t0 = time.perf_counter()
    signals = [read_wav(r.path, sr=cfg.sr)[0] for r in recs]
    X = extract_many(signals, cfg, progress=progress, desc="features")
    log(f"features: {len(recs)} recordings -> {X.shape[1:]} {cfg.kind} images in "
        f"{time.perf_counter() - t0:.1f} s")
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, X=X)
        os.replace(tmp, path)
    return Dataset(recs, X, digits, speakers, names, cfg)


# ==============================================================================================
# Evaluation
# ==============================================================================================
def evaluate(y_true, y_pred, speakers, speaker_names, class_names, task) -> dict:
    """Accuracy, per-speaker accuracy, confusion matrix and error distances."""
    y_true, y_pred, speakers = map(np.asarray, (y_true, y_pred, speakers))
    per_speaker = {}
    for s, name in enumerate(speaker_names):
        m = speakers == s
        if m.any():
            per_speaker[name] = round(float((y_true[m] == y_pred[m]).mean()), 4)
    out = {
        "accuracy": round(float((y_true == y_pred).mean()), 4) if len(y_true) else float("nan"),
        "n": int(len(y_true)),
        "errors": int((y_true != y_pred).sum()),
        "per_speaker_accuracy": per_speaker,
        "confusion": confusion_matrix(y_true, y_pred, len(class_names)).tolist(),
        "classes": list(class_names),
    }
    if task == "digit":
        out["error_distance_percent"] = error_distances(y_true, y_pred, len(class_names))
    return out


# ==============================================================================================
# Runs
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


def fit_and_test(ds: Dataset, task, hp, train_idx, test_idx, val_fraction=0.1, seed=0,
                 progress=True, desc="train", log=print) -> RunResult:
    """Standardise on train_idx (minus a validation share), train, predict test_idx."""
    y = ds.labels(task)
    n_classes = len(ds.class_names(task))
    tr, va = _val_split(train_idx, y, val_fraction, seed)
    norm = Standardizer(hp.norm).fit(ds.X[tr])  # statistics from the training examples only
    model, history = train_model(hp, norm.transform(ds.X[tr]), y[tr], n_classes,
                                 norm.transform(ds.X[va]) if len(va) else None, y[va],
                                 seed=seed, progress=progress, desc=desc, log=log)
    proba = predict_proba(model, hp, norm.transform(ds.X[test_idx]))
    pred = proba.argmax(axis=1)
    test = evaluate(y[test_idx], pred, ds.speakers[test_idx], ds.speaker_names,
                    ds.class_names(task), task)
    return RunResult(model, norm, history, test, {"proba": proba, "n_train": len(tr), "n_val": len(va)})


def cross_validate(ds: Dataset, task, hp, train_idx, k=5, seed=0, progress=True, log=print,
                   desc="cv"):
    """K-fold CV on the training indices: per-fold validation accuracy and the fold models."""
    y = ds.labels(task)
    n_classes = len(ds.class_names(task))
    folds = fsdd.kfold(train_idx, y[train_idx], k=k, seed=seed)
    results = []
    for f, (tr, va) in enumerate(folds):
        norm = Standardizer(hp.norm).fit(ds.X[tr])
        model, hist = train_model(hp, norm.transform(ds.X[tr]), y[tr], n_classes, seed=seed + f,
                                  progress=progress, desc=f"{desc} fold {f + 1}/{k}", log=None)
        acc = float((predict_proba(model, hp, norm.transform(ds.X[va])).argmax(1) == y[va]).mean())
        log(f"[{desc}] fold {f + 1}/{k}: validation accuracy {acc:.4f}")
        results.append({"fold": f + 1, "val_acc": round(acc, 4), "model": model, "norm": norm,
                        "history": hist})
    accs = [r["val_acc"] for r in results]
    return results, {"folds": k, "val_acc": accs, "mean": round(float(np.mean(accs)), 4),
                     "std": round(float(np.std(accs)), 4)}


def majority_vote(results, hp, X):
    """The seed's rule (chapter 3.3, step 7): each example gets the class that most of the K
    sub-models predict; ties go to the class with the larger summed probability."""
    probas = np.stack([predict_proba(r["model"], hp, r["norm"].transform(X)) for r in results])
    n_cls = probas.shape[-1]
    counts = np.stack([(probas.argmax(-1) == c).sum(0) for c in range(n_cls)], axis=1)
    return (counts + 1e-3 * probas.sum(0) / len(results)).argmax(axis=1)


GRID = {"lr": [1e-3, 3e-3], "dropout": [0.25, 0.5]}


def grid_search(ds, task, hp, train_idx, k=3, seed=0, progress=True, log=print):
    """Every combination of GRID, scored by K-fold CV on the training data; returns (best hp, table)."""
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


def save_model(path, model, hp, cfg, norm, task, class_names, extra=None):
    config = {"app": "spoken_digits", "task": task, "hparams": hp.to_dict(),
              "features": cfg.to_dict(), "norm_per": norm.per, "classes": list(class_names),
              "input_shape": list(cfg.shape)}
    nn.save_checkpoint(path, model, config=config, extra=extra or {}, arrays=norm.arrays())
    return path


def load_model(path):
    """(model, hp, cfg, norm, config) from a checkpoint written by ``save_model``."""
    meta = nn.load_checkpoint(path)
    config = meta.config
    if config.get("app") != "spoken_digits":
        raise nn.CheckpointError(f"{path}: not a spoken_digits checkpoint")
    hp = HParams.from_dict(config["hparams"])
    cfg = FeatureConfig.from_dict(config["features"])
    model = build_model(hp, cfg.shape, len(config["classes"]))
    nn.load_checkpoint(path, model)
    norm = Standardizer.from_arrays(config["norm_per"], meta.arrays["norm_mean"], meta.arrays["norm_std"])
    model.eval()
    return model, hp, cfg, norm, config


# ==============================================================================================
# Commands
# ==============================================================================================
def _feature_cfg(args) -> FeatureConfig:
    return FeatureConfig(kind=args.features, n_mels=args.n_mels, n_frames=args.frames,
                         n_mfcc=args.n_mfcc, time_mode=args.time_mode)


def _hparams(args) -> HParams:
    return HParams(model=args.model, channels=tuple(args.channels), hidden=tuple(args.hidden),
                   dense=args.dense, dropout=args.dropout, lr=args.lr, weight_decay=args.weight_decay,
                   batch_size=args.batch_size, epochs=args.epochs, shift=args.shift, norm=args.norm)


def _out_dir(args) -> str:
    out = args.out or os.path.join(DEFAULT_OUT_ROOT, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    return out


def _write_summary(out, summary) -> str:
    path = os.path.join(out, "summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
    return path


def cmd_train(args, task: str = "digit") -> int:
    t_start = time.perf_counter()
    cfg, hp = _feature_cfg(args), _hparams(args)
    if task == "speaker" and args.split == "loso":
        raise SystemExit("error: speaker identification needs every speaker in training: use --split official")
    out = _out_dir(args)
    log = print
    ds = load_dataset(args.data, cfg, limit_per_class=args.limit, progress=args.progress,
                      cache_dir=None if args.no_cache else os.path.join(DEFAULT_OUT_ROOT, ".cache"),
                      log=log)
    classes = ds.class_names(task)
    summary = {"app": "spoken_digits", "task": task, "split": args.split, "model": hp.model,
               "features": cfg.to_dict(), "hparams": hp.to_dict(), "seed": args.seed,
               "data": fsdd.resolve_root(args.data), "n_recordings": len(ds.recs), "files": []}
    label = f"{task} {hp.model} {cfg.kind}"
    if args.split == "official":
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
            vote = evaluate(ds.labels(task)[test_idx], vote_pred, ds.speakers[test_idx],
                            ds.speaker_names, classes, task)
            stats["test_majority_vote"] = vote["accuracy"]
            summary["cv"] = stats
            log(f"[cv] {args.cv}-fold validation accuracy {stats['mean']:.4f} +- {stats['std']:.4f}; "
                f"test accuracy of the majority vote: {vote['accuracy']:.4f}")
        res = fit_and_test(ds, task, hp, train_idx, test_idx, args.val_fraction, args.seed,
                           args.progress, desc=label, log=log)
        test = res.test
        ckpt = save_model(os.path.join(out, "model.npz"), res.model, hp, cfg, res.norm, task, classes,
                          extra={"test_accuracy": test["accuracy"]})
        png = plot_confusion(test["confusion"], classes, os.path.join(out, "confusion.png"),
                             f"{label}, official split: accuracy {test['accuracy']:.4f}")
        hist_png = plot_history({"model": res.history}, os.path.join(out, "training.png"))
        summary.update({"test": test, "n_train": res.extra["n_train"], "n_val": res.extra["n_val"],
                        "n_test": len(test_idx), "history": res.history,
                        "best_epoch": max((h["epoch"] for h in res.history if h.get("best")), default=None)})
        summary["files"] += [ckpt, png, hist_png]
        log(f"[{label}] official split test accuracy {test['accuracy']:.4f} "
            f"({test['errors']} errors / {test['n']})")
        log("per-speaker accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in test["per_speaker_accuracy"].items()))
        if "error_distance_percent" in test:
            log("error distances (% of errors): " + json.dumps(test["error_distance_percent"]))
    else:  # leave one speaker out
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
                                                progress=args.progress, log=log, desc=f"cv without {name}")
                vote_pred = majority_vote(results, hp, ds.X[test_idx])
                vote_per_speaker[name] = round(float((vote_pred == ds.labels(task)[test_idx]).mean()), 4)
                cv_per_speaker[name] = stats
                log(f"[loso] held-out speaker {name}: majority vote of {args.cv} fold models "
                    f"{vote_per_speaker[name]:.4f}")
            histories[name] = res.history
            conf += np.asarray(res.test["confusion"])
            all_true.append(ds.labels(task)[test_idx])
            all_pred.append(res.extra["proba"].argmax(1))
            log(f"[loso] held-out speaker {name}: accuracy {res.test['accuracy']:.4f}")
            ckpt = save_model(os.path.join(out, f"model_without_{name}.npz"), res.model, hp, cfg, res.norm,
                              task, classes, extra={"held_out": name, "accuracy": res.test["accuracy"]})
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
            log(f"[loso] majority vote of {args.cv} fold models: mean {np.mean(v):.4f}, worst {worst_v} "
                f"{vote_per_speaker[worst_v]:.4f}")
        summary["histories"] = histories
        png = plot_confusion(conf, classes, os.path.join(out, "confusion.png"),
                             f"{label}, leave-one-speaker-out: mean {np.mean(accs):.4f}")
        hist_png = plot_history(histories, os.path.join(out, "training.png"))
        summary["files"] += [png, hist_png]
        log(f"[loso] mean accuracy over speakers {np.mean(accs):.4f}, worst {worst} {per_speaker[worst]:.4f}")
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    summary["files"].append(os.path.join(out, "summary.json"))
    _write_summary(out, summary)
    log(f"wrote {out}/ (summary.json, confusion.png, training.png, checkpoints)")
    return 0


def cmd_evaluate(args) -> int:
    model, hp, cfg, norm, config = load_model(args.checkpoint)
    task = config["task"]
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    os.makedirs(out, exist_ok=True)
    ds = load_dataset(args.data, cfg, limit_per_class=args.limit, progress=args.progress,
                      cache_dir=None if args.no_cache else os.path.join(DEFAULT_OUT_ROOT, ".cache"))
    if args.split == "official":
        _, idx = fsdd.official_split(ds.recs)
    else:
        idx = np.arange(len(ds.recs))
    proba = predict_proba(model, hp, norm.transform(ds.X[idx]))
    classes = config["classes"]
    result = evaluate(ds.labels(task)[idx], proba.argmax(1), ds.speakers[idx], ds.speaker_names,
                      classes, task)
    png = plot_confusion(result["confusion"], classes, os.path.join(out, "confusion_eval.png"),
                         f"{task} {hp.model}: {args.split} accuracy {result['accuracy']:.4f}")
    print(f"[evaluate] {args.checkpoint} on the {args.split} recordings ({result['n']}): accuracy "
          f"{result['accuracy']:.4f}")
    print("per-speaker accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in result["per_speaker_accuracy"].items()))
    path = os.path.join(out, "evaluate.json")
    with open(path, "w") as f:
        json.dump({"checkpoint": args.checkpoint, "split": args.split, **result,
                   "files": [png, path]}, f, indent=2)
    return 0


def latest_checkpoint(root=DEFAULT_OUT_ROOT, task: str | None = None):
    """The newest model.npz under runs/spoken_digits/* (of the given task), or None."""
    paths = sorted(glob.glob(os.path.join(root, "*", "model.npz")), key=os.path.getmtime, reverse=True)
    for p in paths:
        if task is None:
            return p
        try:
            if nn.load_checkpoint(p).config.get("task") == task:
                return p
        except nn.CheckpointError:
            continue
    return None


def predict_files(paths, checkpoint, downmix=False, max_seconds=10.0, top=3):
    """[(path, [(class, probability), ...])] for each recording, best first."""
    model, hp, cfg, norm, config = load_model(checkpoint)
    results = []
    for path in paths:
        # read, check, resample; silence is trimmed by the feature pipeline, as in training
        y = load_clip(path, sr=cfg.sr, max_seconds=max_seconds, downmix=downmix, trim_db=None)
        X = norm.transform(extract(y, cfg)[None])
        p = predict_proba(model, hp, X)[0]
        order = np.argsort(-p)[:top]
        results.append((path, [(config["classes"][k], float(p[k])) for k in order]))
    return results, config


def cmd_predict(args) -> int:
    ckpt = args.checkpoint or latest_checkpoint(task="digit")
    if ckpt is None:
        raise SystemExit(f"error: no checkpoint given and none found under {DEFAULT_OUT_ROOT}/: run "
                         "'python apps/spoken_digits.py train' first, or pass --checkpoint")
    try:
        results, config = predict_files(args.files, ckpt, args.downmix, args.max_seconds, args.top)
    except AudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = "digit" if config["task"] == "digit" else "speaker"
    for path, ranked in results:
        best, prob = ranked[0]
        others = ", ".join(f"{c} {p:.3f}" for c, p in ranked[1:])
        print(f"{path}: {what} {best} (p = {prob:.3f}; then {others})")
    if args.json:
        print(json.dumps([{"file": p, "ranking": r} for p, r in results]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("--data", default=None, help=f"FSDD folder (default: ${fsdd.ENV_VAR} or {fsdd.DEFAULT_ROOT})")
        q.add_argument("--out", default=None, help="run folder (default: runs/spoken_digits/<timestamp>)")
        q.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
        q.add_argument("--no-cache", action="store_true", help="recompute features (no cache under runs/)")
        q.add_argument("--limit", type=int, default=None,
                       help="use only recordings with index < LIMIT (a small slice for quick runs)")

    for name, helptext in (("train", "train a digit classifier (CNN or MLP)"),
                           ("speakers", "train a speaker classifier (6 classes)")):
        q = sub.add_parser(name, help=helptext, description=helptext)
        common(q)
        q.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
        q.add_argument("--features", choices=["mel", "mfcc", "both"], default="mel")
        q.add_argument("--split", choices=["official", "loso"], default="official",
                       help="official: recordings 0-4 are the test set; loso: leave one speaker out")
        q.add_argument("--cv", type=int, default=0, metavar="K",
                       help="also K-fold cross-validation on the training data, and the majority "
                            "vote of the K fold models on the test data (the seed's procedure)")
        q.add_argument("--grid", action="store_true",
                       help=f"grid search over {GRID} by K-fold CV (K = --cv or 3) before training")
        q.add_argument("--epochs", type=int, default=20)
        q.add_argument("--batch-size", type=int, default=64)
        q.add_argument("--lr", type=float, default=1e-3)
        q.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decay (0: Adam)")
        q.add_argument("--dropout", type=float, default=0.3)
        q.add_argument("--channels", type=int, nargs=2, default=[16, 32], help="CNN filters")
        q.add_argument("--dense", type=int, default=128, help="CNN dense units")
        q.add_argument("--hidden", type=int, nargs="+", default=[256, 128], help="MLP hidden sizes")
        q.add_argument("--shift", type=int, default=3, help="augmentation: max random time shift (frames)")
        q.add_argument("--norm", choices=list(Standardizer.PER), default="band")
        q.add_argument("--n-mels", type=int, default=50)
        q.add_argument("--frames", type=int, default=50)
        q.add_argument("--n-mfcc", type=int, default=20)
        q.add_argument("--time-mode", choices=["stretch", "fixed"], default="stretch")
        q.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the training data held out to pick the best epoch")
        q.add_argument("--seed", type=int, default=0)

    q = sub.add_parser("evaluate", help="evaluate a checkpoint on the official test split")
    common(q)
    q.add_argument("checkpoint")
    q.add_argument("--split", choices=["official", "all"], default="official")

    q = sub.add_parser("predict", help="classify your own recordings (any sample rate and length)")
    q.add_argument("files", nargs="+", help="WAV (or FLAC/OGG) files, one spoken digit each")
    q.add_argument("--checkpoint", default=None, help="model.npz (default: the latest digit run)")
    q.add_argument("--downmix", action="store_true", help="average the channels of stereo files")
    q.add_argument("--max-seconds", type=float, default=10.0, help="refuse longer recordings")
    q.add_argument("--top", type=int, default=3)
    q.add_argument("--json", action="store_true", help="also print the rankings as JSON")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("epochs", "batch_size", "limit"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {v}")
    if getattr(args, "cv", 0) and args.cv < 2:
        raise SystemExit(f"error: --cv needs K >= 2, got {args.cv}")
    if args.command == "train":
        return cmd_train(args, "digit")
    if args.command == "speakers":
        return cmd_train(args, "speaker")
    if args.command == "evaluate":
        return cmd_evaluate(args)
    return cmd_predict(args)


if __name__ == "__main__":
    sys.exit(main())
