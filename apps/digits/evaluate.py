"""How good a spoken-digit classifier is, and what it says about new recordings.

    classification_report(y_true, y_pred, speakers, speaker_names, classes, task)
        -> {'accuracy', 'n', 'errors', 'per_speaker_accuracy', 'confusion', 'classes',
            'error_distance_percent' (digits only)}
    plot_confusion(C, classes, path, title); plot_history({name: history}, path)

y_true, y_pred, speakers: (N,) int arrays; the confusion matrix C[t, p] counts the examples of
class t predicted as p. The `evaluate` command scores a checkpoint on FSDD's official test split
(or every recording) and writes evaluate.json; `predict` ranks the classes for your own files.
"""
from __future__ import annotations

import itertools
import json
import os
import sys

import numpy as np

from apps.audio import fsdd
from apps.audio.recording import load_word
from apps.audio.wav import AudioError
from apps.common.errors import UsageError, describe
from apps.common.runs import Line, Panel, make_run_dir, plot_curves, write_summary
from apps.digits.data import DEFAULT_OUT_ROOT, cache_dir_for, load_dataset
from apps.digits.model import (
    latest_checkpoint,
    load_model,
    predict_proba,
    prepare,
    with_companions,
)
from apps.digits.tta import pooled_log_proba


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------
def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """C[t, p] = number of examples of class t predicted as p."""
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return C


def error_distances(y_true, y_pred, n_classes: int) -> dict:
    """Among wrong predictions, the share (%) at each distance |pred - true| (the seed's table
    5.1; meaningful for ordered classes such as digits)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = y_true != y_pred
    d = np.abs(y_true[wrong] - y_pred[wrong])
    total = int(wrong.sum())
    return {str(k): (round(100.0 * float((d == k).sum()) / total, 2) if total else 0.0)
            for k in range(1, n_classes)}


def classification_report(y_true, y_pred, speakers, speaker_names, class_names, task) -> dict:
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


# ----------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------
def plot_confusion(conf, class_names, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(conf)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    im = ax.imshow(conf, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45 if len(class_names[0]) > 2 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    thresh = conf.max() / 2 if conf.size else 0
    for i, j in itertools.product(range(conf.shape[0]), range(conf.shape[1])):
        if conf[i, j]:
            ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if conf[i, j] > thresh else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_history(histories: dict, path):
    """training.png: cross-entropy (log scale) and accuracy per epoch, train solid, val dashed,
    one pair of curves per model ({name: history})."""
    loss, acc = [], []
    for name, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        loss.append(Line(f"{name} train", ep, [h["loss"] for h in hist]))
        acc.append(Line(f"{name} train", ep, [h["train_acc"] for h in hist]))
        if hist and "val_loss" in hist[0]:
            loss.append(Line(f"{name} val", ep, [h["val_loss"] for h in hist], "--"))
            acc.append(Line(f"{name} val", ep, [h["val_acc"] for h in hist], "--"))
    return plot_curves(path, "spoken digits: training", [
        Panel("cross-entropy", loss, xlabel="epoch", logy=True),
        Panel("accuracy", acc, xlabel="epoch"),
    ])


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    model, hp, cfg, norm, config = load_model(args.checkpoint)
    task = config["task"]
    out = make_run_dir(args.out or os.path.dirname(os.path.abspath(args.checkpoint)))
    ds = load_dataset(args.data, cfg, limit_per_class=args.limit, progress=args.progress,
                      cache_dir=cache_dir_for(args))
    if args.split == "official":
        _, idx = fsdd.official_split(ds.recs)
    else:
        idx = np.arange(len(ds.recs))
    proba = predict_proba(model, hp, prepare(hp, norm, ds.X[idx]))
    classes = config["classes"]
    result = classification_report(ds.labels(task)[idx], proba.argmax(1), ds.speakers[idx],
                                   ds.speaker_names, classes, task)
    png = plot_confusion(result["confusion"], classes, os.path.join(out, "confusion_eval.png"),
                         f"{task} {hp.model}: {args.split} accuracy {result['accuracy']:.4f}")
    print(f"[evaluate] {args.checkpoint} on the {args.split} recordings ({result['n']}): accuracy "
          f"{result['accuracy']:.4f}")
    print("per-speaker accuracy: "
          + ", ".join(f"{k} {v:.3f}" for k, v in result["per_speaker_accuracy"].items()))
    path = os.path.join(out, "evaluate.json")
    write_summary(out, {"checkpoint": args.checkpoint, "split": args.split, **result,
                        "files": [png, path]}, name="evaluate.json")
    return 0


def predict_files(paths, checkpoint, downmix=True, max_seconds=10.0, top=3, tta=False):
    """Rank the classes for each recording, best first.

    Each file goes through apps/audio/recording.load_word: any sample rate (resampled to the
    model's), stereo averaged to mono (refused with ``downmix=False``), 16/24/32-bit or float
    samples, the word found by an energy detector in up to ``max_seconds``; then the training
    features (whose own silence trimming makes the final cut), CMVN and standardisation.
    ``checkpoint``: one model.npz, or a list of them (an ensemble, e.g. a `loso` fold's
    members: their log-probabilities averaged, apps/digits/tta.py); ``tta``: each word also
    heard at the speeds of tta.TTA_SPEEDS.

    Returns (results, failures, config): results [(path, [(class, probability), ...], notes)]
    for the files that could be classified, failures [(path, AudioError)] for the others
    (unreadable, empty, too long, silent, clipping only, only noise...): one bad file does not
    stop the rest. ``config`` is the first checkpoint's.
    """
    paths_ck = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    loaded = [load_model(c) for c in paths_ck]
    config = loaded[0][4]
    sr = loaded[0][2].sr
    for c, (_, _, cfg, _, conf) in zip(paths_ck[1:], loaded[1:]):
        if (conf["task"], conf["classes"]) != (config["task"], config["classes"]) or \
                cfg.sr != sr:
            raise UsageError(f"{c} cannot join {paths_ck[0]} in an ensemble: a {conf['task']} "
                             f"model over {conf['classes']} at {cfg.sr} Hz, against "
                             f"{config['task']} over {config['classes']} at {sr} Hz")
    members = [(model, hp, cfg, norm) for model, hp, cfg, norm, _ in loaded]
    results, failures = [], []
    for path in paths:
        try:
            y, notes = load_word(path, sr=sr, max_seconds=max_seconds, downmix=downmix)
            logp = pooled_log_proba(members, [y], tta=tta)[0]
        except AudioError as exc:
            failures.append((path, exc))
            continue
        p = np.exp(logp)
        order = np.argsort(-p)[:top]
        results.append((path, [(config["classes"][k], float(p[k])) for k in order], notes))
    return results, failures, config


def cmd_predict(args) -> int:
    """Print each file's ranking; each file that cannot be read gets its own ``error:`` line,
    and the exit code is then 2 (after every other file has been classified)."""
    ckpt = args.checkpoint or latest_checkpoint(task="digit")
    if ckpt is None:
        raise UsageError(f"no checkpoint given and none found under {DEFAULT_OUT_ROOT}/: run "
                         "'python apps/spoken_digits.py train' first, or pass --checkpoint")
    if not args.checkpoint:  # the latest run: its model.npz and any companions on other scales
        ckpt = with_companions(ckpt)
    results, failures, config = predict_files(args.files, ckpt, not args.mono_only,
                                              args.max_seconds, args.top, args.tta)
    what = "digit" if config["task"] == "digit" else "speaker"
    for path, ranked, notes in results:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        best, prob = ranked[0]
        others = ", ".join(f"{c} {p:.3f}" for c, p in ranked[1:])
        then = f"; then {others}" if others else ""
        print(f"{path}: {what} {best} (p = {prob:.3f}{then})")
    for _, exc in failures:
        print(f"error: {describe(exc)}", file=sys.stderr)
    if args.json:  # one line, the last on stdout
        print(json.dumps([{"file": p, "ranking": r, "notes": n} for p, r, n in results]
                         + [{"file": p, "error": describe(e)} for p, e in failures]))
    if failures:
        print(f"{len(failures)} of {len(args.files)} files could not be classified",
              file=sys.stderr)
        return 2
    return 0
