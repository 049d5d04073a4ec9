"""The `loso` command: leave-one-speaker-out, with the settings chosen inside the training speakers.

For each of FSDD's six speakers (or those named by --held-out):
    1. the other speakers are the training speakers; the held-out speaker is not looked at;
    2. when several candidate settings are given (--search-augment x --search-cmvn x
       --search-freq-pool), each is
       scored by cross-validation over the training speakers: they are dealt into K groups
       (--inner-folds, default one group per speaker) and each group is predicted by a model
       trained on the others; the candidate with the best mean accuracy over the training
       speakers wins (ties: the first given);
    3. a model with the chosen settings is trained on all the training speakers (the best
       epoch picked on a share of their own recordings, train.fit_and_test) and tested once on
       the held-out speaker; with --ensemble K, K models from seeds seed .. seed + K - 1, their
       log-probabilities averaged, and with --tta each word also heard at the speeds of
       apps/digits/tta.py (the inner CV scores single models without TTA).
Written to the run folder: summary.json, rewritten after every fold ("complete": false until
the last; per fold: held-out speaker, accuracy, chosen settings, the inner CV table with
per-speaker accuracies, confusion matrix, seconds; the mean, the worst speaker and the pooled
confusion matrix), confusion_without_<speaker>.png per fold, confusion.png pooled,
model_without_<speaker>.npz.

    python apps/spoken_digits.py loso --search-augment shift shift,specaugment,vtlp \\
        --search-cmvn dataset utterance --search-freq-pool 2,2 3,2 --inner-folds 5
"""
from __future__ import annotations

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
from apps.digits.train import check_split_sizes, feature_config, fit_and_test, hparams
from apps.digits.tta import TTA_SPEEDS, pooled_log_proba


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


def label(hp: HParams) -> str:
    text = f"augment={','.join(hp.augment) or 'none'} cmvn={hp.cmvn}"
    if hp.model != "mlp":  # the MLP has no pooling
        text += f" freq_pool={hp.freq_pool[0]},{hp.freq_pool[1]}"
    return text


def inner_cv(ds, hp, train_idx, k, args, log=print) -> dict:
    """Cross-validation of one candidate over the training speakers only."""
    per_speaker = {}
    for tr, va, names in speaker_groups(ds, train_idx, k):
        res = fit_and_test(ds, "digit", hp, tr, va, args.val_fraction, args.seed,
                           args.progress, desc=f"inner cv without {'+'.join(names)}", log=None)
        per_speaker.update(res.test["per_speaker_accuracy"])
    mean = round(float(np.mean(list(per_speaker.values()))), 4)
    log(f"[loso]   inner cv {label(hp)}: mean {mean:.4f} "
        f"({', '.join(f'{s} {a:.3f}' for s, a in per_speaker.items())})")
    return {"augment": list(hp.augment), "cmvn": hp.cmvn, "freq_pool": list(hp.freq_pool),
            "mean": mean,
            "per_speaker_accuracy": per_speaker}


def _check(args, ds_names):
    unknown = [s for s in args.held_out or [] if s not in ds_names]
    if unknown:
        raise UsageError(f"--held-out {' '.join(unknown)}: not an FSDD speaker; the speakers are "
                         f"{', '.join(ds_names)}")


def _summary(args, cfg, cands, ds, folds, per_speaker, pooled, y_true, y_pred, files, out,
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
               "candidates": [label(c) for c in cands], "inner_folds": args.inner_folds,
               "ensemble": args.ensemble,
               "tta_speeds": list(TTA_SPEEDS) if args.tta else None,
               "hparams": cands[0].to_dict(), "seed": args.seed,
               "augment_settings": {label(c): augment_settings(c.augment) for c in cands},
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
    cands = candidates(args)
    ensemble = args.ensemble
    check_split_sizes(SimpleNamespace(**{**vars(args), "split": "loso", "cv": 0, "grid": False}))
    names = fsdd.speaker_names(fsdd.list_recordings(args.data))
    _check(args, names)
    out = make_run_dir(args.out, APP)
    ds = load_dataset(args.data, cfg, limit_per_class=args.limit, progress=args.progress,
                      cache_dir=cache_dir_for(args), log=log)
    classes = ds.class_names("digit")
    folds, per_speaker, files = [], {}, []
    pooled = np.zeros((len(classes), len(classes)), dtype=np.int64)
    y_true, y_pred = [], []
    for name, train_idx, test_idx in fsdd.loso_splits(ds.recs):
        if args.held_out and name not in args.held_out:
            continue
        t0 = time.perf_counter()
        table = []
        if len(cands) > 1:
            log(f"[loso] without {name}: choosing among {len(cands)} settings by "
                f"{min(args.inner_folds, len(names) - 1)}-fold speaker CV on the others")
            table = [inner_cv(ds, hp, train_idx, args.inner_folds, args, log) for hp in cands]
            best = cands[int(np.argmax([r["mean"] for r in table]))]
        else:
            best = cands[0]
        res = fit_and_test(ds, "digit", best, train_idx, test_idx, args.val_fraction, args.seed,
                           args.progress, desc=f"loso without {name}", log=log)
        members = [res] + [
            fit_and_test(ds, "digit", best, train_idx, test_idx, args.val_fraction,
                         args.seed + m, args.progress,
                         desc=f"loso without {name}, member {m + 1}/{ensemble}", log=log)
            for m in range(1, ensemble)]
        single = res.test["accuracy"]
        if ensemble > 1 or args.tta:  # pooled: the seeds' models, and the speeds with --tta
            pred = pooled_log_proba([(r.model, best, cfg, r.norm) for r in members],
                                    ds.waveforms(test_idx), tta=args.tta,
                                    images=[ds.X[test_idx]] * len(members)).argmax(1)
            test = classification_report(ds.digits[test_idx], pred, ds.speakers[test_idx],
                                         ds.speaker_names, classes, "digit")
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
                             f"held-out speaker {name}: accuracy {acc:.4f}\n{label(best)}")
        for m, r in enumerate(members):
            suffix = "" if m == 0 else f"_member{m + 1}"
            files.append(save_model(os.path.join(out, f"model_without_{name}{suffix}.npz"),
                                    r.model, best, cfg, r.norm, "digit", classes,
                                    extra={"held_out": name, "accuracy": r.test["accuracy"],
                                           "seed": args.seed + m}))
        files.append(png)
        folds.append({"held_out": name, "accuracy": acc, "single_model_accuracy": single,
                      "n_test": len(test_idx),
                      "chosen": {"augment": list(best.augment), "cmvn": best.cmvn,
                                 "freq_pool": list(best.freq_pool)},
                      "inner_cv": table, "confusion": test["confusion"],
                      "best_epoch": max((h["epoch"] for h in res.history if h.get("best")),
                                        default=None),
                      "seconds": seconds})
        pooled_note = (f" ({ensemble} models{', speeds pooled' if args.tta else ''}; the "
                       f"first alone {single:.4f})" if ensemble > 1 or args.tta else "")
        log(f"[loso] held-out speaker {name}: accuracy {acc:.4f}{pooled_note} with "
            f"{label(best)} ({seconds:.0f} s)")
        # written after every fold: a run cut short keeps the folds it finished
        _summary(args, cfg, cands, ds, folds, per_speaker, pooled, y_true, y_pred, files, out,
                 t_start, complete=False)
    summary = _summary(args, cfg, cands, ds, folds, per_speaker, pooled, y_true, y_pred, files,
                       out, t_start, complete=True)
    log(f"[loso] mean accuracy over {len(per_speaker)} held-out speakers {summary['mean']:.4f}, "
        f"worst {summary['worst_speaker']} {summary['worst']:.4f} ({summary['seconds']:.0f} s); "
        f"wrote {out}/")
    return 0
