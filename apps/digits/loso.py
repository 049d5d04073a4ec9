"""The `loso` command: leave-one-speaker-out, with the settings chosen inside the training speakers.

For each of FSDD's six speakers (or those named by --held-out):
    1. the other speakers are the training speakers; the held-out speaker is not looked at;
    2. when several candidate settings are given (--search-augment x --search-cmvn x
       --search-freq-pool x --search-scale), each is
       scored by cross-validation over the training speakers: they are dealt into K groups
       (--inner-folds, default one group per speaker) and each group is predicted by a model
       trained on the others; the candidate with the best mean accuracy over the training
       speakers wins (ties: the first given);
    3. a model with the chosen settings is trained on all the training speakers (the best
       epoch picked on a share of their own recordings, train.fit_and_test) and tested once on
       the held-out speaker; with --ensemble K, K models from seeds seed .. seed + K - 1, their
       log-probabilities averaged, and with --tta each word also heard at the speeds of
       apps/digits/tta.py (the inner CV scores single models without TTA).
A candidate's front end is a set of feature scales (--search-scale db pcen db+pcen): 'db' and
'pcen' are one model's features (apps/audio/features.py), 'db+pcen' one model on each, their
log-probabilities averaged (in the inner CV too, from the same per-scale models); `--scale
db+pcen` without --search-scale fixes the pair. Models on different front ends err on
different words, which averaging seeds of one front end does not buy (docs/digits.md).
Written to the run folder: summary.json, rewritten after every fold ("complete": false until
the last; per fold: held-out speaker, accuracy, chosen settings, the inner CV table with
per-speaker accuracies, confusion matrix, seconds; the mean, the worst speaker and the pooled
confusion matrix), confusion_without_<speaker>.png per fold, confusion.png pooled,
model_without_<speaker>.npz.

    python apps/spoken_digits.py loso --search-augment shift shift,specaugment,vtlp \\
        --search-cmvn dataset utterance --search-freq-pool 2,2 3,2 --inner-folds 5
    python apps/spoken_digits.py loso --model cnn_pool --epochs 40 --augment shift,noise \\
        --freq-pool 3 2 --search-scale db pcen db+pcen --tta
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import time
from types import SimpleNamespace

import numpy as np

from apps.audio import fsdd
from apps.common.errors import UsageError
from apps.common.runs import make_run_dir, write_summary
from apps.digits.augment import settings as augment_settings
from apps.digits.data import APP, cache_dir_for, load_dataset
from apps.digits.evaluate import classification_report, error_distances, plot_confusion
from apps.digits.model import HParams, save_model
from apps.digits.train import (
    check_split_sizes,
    feature_config,
    fit_and_test,
    hparams,
    pooled_test,
)
from apps.digits.tta import EPS, TTA_SPEEDS


def speaker_groups(ds, idx, k: int):
    """The speakers of ``idx`` dealt into min(k, speakers) groups: [(train, val, names)]."""
    names = sorted({ds.speaker_names[s] for s in ds.speakers[idx]})
    k = min(k, len(names))
    groups = [names[g::k] for g in range(k)]
    spk = np.array([ds.speaker_names[s] for s in ds.speakers[idx]])
    return [(idx[~np.isin(spk, g)], idx[np.isin(spk, g)], g) for g in groups]


def candidates(args) -> list:
    """HParams for every (augment, cmvn, freq_pool) of --search-augment x --search-cmvn x
    --search-freq-pool."""
    base = hparams(args)
    augs = args.search_augment or [base.augment]
    cmvns = args.search_cmvn or [base.cmvn]
    pools = args.search_freq_pool or [base.freq_pool]
    return [HParams.from_dict({**base.to_dict(), "augment": list(a), "cmvn": c,
                               "freq_pool": list(p)})
            for a, c, p in itertools.product(augs, cmvns, pools)]


def scale_sets(args) -> list:
    """The candidate front ends: tuples of feature scales (--search-scale, else --scale)."""
    return [tuple(s) for s in args.search_scale] if args.search_scale else [tuple(args.scale)]


def label(hp: HParams, scales=("db",)) -> str:
    text = f"augment={','.join(hp.augment) or 'none'} cmvn={hp.cmvn}"
    if hp.model != "mlp":  # the MLP has no pooling
        text += f" freq_pool={hp.freq_pool[0]},{hp.freq_pool[1]}"
    return text + f" scale={'+'.join(scales)}"


def scales_in(sets) -> list:
    """The feature scales a list of scale sets needs, each once, in order of appearance."""
    return list(dict.fromkeys(s for ss in sets for s in ss))


def inner_cv(dss, hp, sets, train_idx, k, args, log=print) -> list:
    """Cross-validation of one candidate over the training speakers only: one model per
    feature scale the sets need and per group of speakers; a row for each scale set, its
    models' log-probabilities averaged. dss: {scale: Dataset}, the same recordings."""
    ds = next(iter(dss.values()))
    logp = {}
    for scale in scales_in(sets):
        logp[scale] = np.zeros((len(ds.recs), len(ds.class_names("digit"))))
        for tr, va, names in speaker_groups(ds, train_idx, k):
            res = fit_and_test(dss[scale], "digit", hp, tr, va, args.val_fraction, args.seed,
                               args.progress, desc=f"inner cv without {'+'.join(names)}",
                               log=None)
            logp[scale][va] = np.log(np.maximum(res.extra["proba"], EPS))
    rows = []
    for ss in sets:
        pred = np.mean([logp[s][train_idx] for s in ss], axis=0).argmax(1)
        per_speaker = classification_report(
            ds.digits[train_idx], pred, ds.speakers[train_idx], ds.speaker_names,
            ds.class_names("digit"), "digit")["per_speaker_accuracy"]
        mean = round(float(np.mean(list(per_speaker.values()))), 4)
        log(f"[loso]   inner cv {label(hp, ss)}: mean {mean:.4f} "
            f"({', '.join(f'{s} {a:.3f}' for s, a in per_speaker.items())})")
        rows.append({"augment": list(hp.augment), "cmvn": hp.cmvn, "freq_pool": list(hp.freq_pool),
                     "scales": list(ss), "mean": mean, "per_speaker_accuracy": per_speaker})
    return rows


def _check(args, ds_names):
    unknown = [s for s in args.held_out or [] if s not in ds_names]
    if unknown:
        raise UsageError(f"--held-out {' '.join(unknown)}: not an FSDD speaker; the speakers are "
                         f"{', '.join(ds_names)}")


def _summary(args, cfg, cands, sets, ds, folds, per_speaker, pooled, y_true, y_pred, files, out,
             t_start, complete: bool) -> dict:
    """summary.json (and the pooled confusion.png) of the folds done so far."""
    classes = ds.class_names("digit")
    accs = list(per_speaker.values())
    worst = min(per_speaker, key=per_speaker.get)
    yt, yp = np.concatenate(y_true), np.concatenate(y_pred)
    png = plot_confusion(pooled, classes, os.path.join(out, "confusion.png"),
                         f"leave-one-speaker-out, pooled: mean {np.mean(accs):.4f}, "
                         f"worst {worst} {per_speaker[worst]:.4f}")
    summary = {"app": APP, "command": "loso", "complete": complete, "features": cfg.to_dict(),
               "feature_scales": scales_in(sets),
               "candidates": [label(c, ss) for c in cands for ss in sets],
               "inner_folds": args.inner_folds,
               "ensemble": args.ensemble,
               "tta_speeds": list(TTA_SPEEDS) if args.tta else None,
               "hparams": cands[0].to_dict(), "seed": args.seed,
               "augment_settings": {label(c, ss): augment_settings(c.augment)
                                    for c in cands for ss in sets},
               "data": fsdd.resolve_root(args.data), "n_recordings": len(ds.recs),
               "threads": os.environ.get("NNSCRATCH_THREADS"),
               "folds": folds, "per_speaker_accuracy": dict(per_speaker),
               "mean": round(float(np.mean(accs)), 4), "worst_speaker": worst,
               "worst": per_speaker[worst], "pooled_accuracy": round(float((yt == yp).mean()), 4),
               "confusion": pooled.tolist(), "classes": classes,
               "error_distance_percent": error_distances(yt, yp, len(classes)),
               "seconds": round(time.perf_counter() - t_start, 1),
               "files": files + [png, os.path.join(out, "summary.json")]}
    write_summary(out, summary)
    return summary


def cmd_loso(args, log=print) -> int:
    t_start = time.perf_counter()
    cfg = feature_config(args)
    cands, sets = candidates(args), scale_sets(args)
    ensemble = args.ensemble
    check_split_sizes(SimpleNamespace(**{**vars(args), "split": "loso", "cv": 0, "grid": False}))
    names = fsdd.speaker_names(fsdd.list_recordings(args.data))
    _check(args, names)
    out = make_run_dir(args.out, APP)
    scales = scales_in(sets)
    cfgs = {s: dataclasses.replace(cfg, scale=s) for s in scales}
    dss = {s: load_dataset(args.data, cfgs[s], limit_per_class=args.limit,
                           progress=args.progress, cache_dir=cache_dir_for(args), log=log)
           for s in scales}
    ds = dss[scales[0]]   # the recordings, labels and speakers, shared by every scale's images
    classes = ds.class_names("digit")
    folds, per_speaker, files = [], {}, []
    pooled = np.zeros((len(classes), len(classes)), dtype=np.int64)
    y_true, y_pred = [], []
    for name, train_idx, test_idx in fsdd.loso_splits(ds.recs):
        if args.held_out and name not in args.held_out:
            continue
        t0 = time.perf_counter()
        table = []
        if len(cands) * len(sets) > 1:
            log(f"[loso] without {name}: choosing among {len(cands) * len(sets)} settings by "
                f"{min(args.inner_folds, len(names) - 1)}-fold speaker CV on the others")
            table = [row for hp in cands
                     for row in inner_cv(dss, hp, sets, train_idx, args.inner_folds, args, log)]
            i = int(np.argmax([r["mean"] for r in table]))
            best, best_set = cands[i // len(sets)], sets[i % len(sets)]
        else:
            best, best_set = cands[0], sets[0]
        members = [(scale, m, fit_and_test(
            dss[scale], "digit", best, train_idx, test_idx, args.val_fraction, args.seed + m,
            args.progress, log=log, desc=f"loso without {name}"
            + (f", {scale}" if len(best_set) > 1 else "")
            + (f", member {m + 1}/{ensemble}" if m else "")))
            for scale in best_set for m in range(ensemble)]
        res = members[0][2]
        single = res.test["accuracy"]
        if len(members) > 1 or args.tta:  # pooled: the scales', the seeds' models and the speeds
            pred, test = pooled_test(dss, [(s, r) for s, _, r in members], best, test_idx,
                                     "digit", tta=args.tta)
        else:
            pred, test = res.extra["proba"].argmax(1), res.test
        acc = test["accuracy"]
        per_speaker[name] = acc
        pooled += np.asarray(test["confusion"])
        y_true.append(ds.digits[test_idx])
        y_pred.append(pred)
        seconds = round(time.perf_counter() - t0, 1)
        png = plot_confusion(test["confusion"], classes,
                             os.path.join(out, f"confusion_without_{name}.png"),
                             f"held-out speaker {name}: accuracy {acc:.4f}\n"
                             f"{label(best, best_set)}")
        for k, (scale, m, r) in enumerate(members):
            suffix = ("" if k == 0 or len(best_set) == 1 else f"_{scale}") + \
                ("" if m == 0 else f"_member{m + 1}")
            files.append(save_model(os.path.join(out, f"model_without_{name}{suffix}.npz"),
                                    r.model, best, cfgs[scale], r.norm, "digit", classes,
                                    extra={"held_out": name, "accuracy": r.test["accuracy"],
                                           "seed": args.seed + m}))
        files.append(png)
        folds.append({"held_out": name, "accuracy": acc, "single_model_accuracy": single,
                      "n_test": len(test_idx),
                      "chosen": {"augment": list(best.augment), "cmvn": best.cmvn,
                                 "freq_pool": list(best.freq_pool), "scales": list(best_set)},
                      "inner_cv": table, "confusion": test["confusion"],
                      "best_epoch": max((h["epoch"] for h in res.history if h.get("best")),
                                        default=None),
                      "seconds": seconds})
        n_models = f"{len(members)} model{'s' if len(members) > 1 else ''}"
        pooled_note = (f" ({n_models}{', speeds pooled' if args.tta else ''}; the "
                       f"first alone {single:.4f})" if len(members) > 1 or args.tta else "")
        log(f"[loso] held-out speaker {name}: accuracy {acc:.4f}{pooled_note} with "
            f"{label(best, best_set)} ({seconds:.0f} s)")
        # written after every fold: a run cut short keeps the folds it finished
        _summary(args, cfg, cands, sets, ds, folds, per_speaker, pooled, y_true, y_pred, files,
                 out, t_start, complete=False)
    summary = _summary(args, cfg, cands, sets, ds, folds, per_speaker, pooled, y_true, y_pred,
                       files, out, t_start, complete=True)
    log(f"[loso] mean accuracy over {len(per_speaker)} held-out speakers {summary['mean']:.4f}, "
        f"worst {summary['worst_speaker']} {summary['worst']:.4f} ({summary['seconds']:.0f} s); "
        f"wrote {out}/")
    return 0
