"""Evaluation of apps/drum_accompaniment.py: the model's test metrics beside the baselines
(baselines.py: the drum machine, the nearest training beat) and the seed report's table, the
learned judges' AUC and the groove metrics, the hit thresholds chosen on validation, the
humanisation errors, their printed tables, an example figure, and the ``evaluate`` command.

Predictions are dicts of (B, T, K) arrays: H (hits 0/1), V (velocities in [0, 1]), O (offsets
in steps), v_raw / o_raw (before masking by H), p (hit probabilities), and hvo (B, T, 3K), the
targets; loss.drum_metrics turns one into accuracy, precision, recall, F1 and the MSEs.
"""
from __future__ import annotations

import os

import numpy as np

import nnscratch as nn
from apps.common.runs import write_summary

from . import groove
from . import groove_metrics as gm
from .baselines import nearest_baseline, rock_baseline, shuffled_drums
from .generate import draw_candidates, judge_scores
from .judge import (
    JudgeConfig,
    judge_features,
    judge_path,
    load_judge,
    onset_density,
    roc_auc,
    save_judge,
    train_judge,
)
from .loss import drum_metrics
from .model import load_model
from .tasks import K, Task, load_task, use_run_data_settings

#: the seed report's held-out table (section 5.1), for comparison
SEED_TABLE = {"accuracy": 0.9178, "precision": 0.6382, "recall": 0.7764, "note_loss": 0.3437,
              "velocity_mse": 0.0210, "timing_mse": 0.0054}


# ==============================================================================================
# Evaluation: the model, the baselines
# ==============================================================================================
def predict(model, task: Task, split: str, mode: str, threshold: float = 0.5,
            batch: int = 128) -> dict:
    """Concatenated predictions on a split: teacher forcing ('tf') or free-running ('free')."""
    outs = {k: [] for k in ("H", "V", "O", "v_raw", "o_raw", "p")}
    hvos = []
    model.eval()
    try:
        for s in range(0, task.size(split), batch):
            idx = np.arange(s, min(s + batch, task.size(split)))
            x, hvo = task.batch(split, idx)
            if mode == "tf":
                with nn.no_grad():
                    logits, v, o, _, _ = model(x, hvo)
                p = nn.functions.sigmoid(nn.to_cpu(logits))
                v, o = nn.to_cpu(v), nn.to_cpu(o)
                h = (p > threshold).astype(np.float32)
                res = {"H": h, "V": v * h, "O": o * h, "v_raw": v, "o_raw": o, "p": p}
            elif mode == "free":
                res = model.generate(x, hvo.shape[1], threshold=threshold)
            elif mode == "humanise":
                res = model.generate(x, hvo.shape[1], hits=hvo[..., :K])
            else:
                raise ValueError(mode)
            for k in outs:
                outs[k].append(res[k])
            hvos.append(hvo)
    finally:
        model.train()
    out = {k: np.concatenate(v) for k, v in outs.items()}
    out["hvo"] = np.concatenate(hvos)
    return out


def metrics_of(pred: dict) -> dict:
    return drum_metrics(pred["H"], pred["V"], pred["O"], pred["hvo"], pred.get("v_raw"),
                             pred.get("o_raw"))


def note_loss(pred: dict, pos_weight: float) -> float:
    """The weighted BCE (10) of hit probabilities against the targets."""
    p = np.clip(pred["p"].astype(np.float64), 1e-7, 1 - 1e-7)
    H = pred["hvo"][..., :K]
    return float(-(pos_weight * H * np.log(p) + (1 - H) * np.log(1 - p)).mean())


THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


def threshold_sweep(model, task: Task, split: str, mode: str, grid=THRESHOLDS) -> dict:
    """{threshold: {precision, recall, f1}} of the hits on a split, teacher-forced ('tf') or
    free-running ('free': one generation per threshold)."""
    out = {}
    pred = predict(model, task, split, "tf") if mode == "tf" else None
    for t in grid:
        if mode == "tf":
            m = metrics_of({**pred, "H": (pred["p"] > t).astype(np.float32)})
        else:
            m = metrics_of(predict(model, task, split, "free", t))
        out[t] = {k: round(m[k], 5) for k in ("precision", "recall", "f1")}
    return out


def choose_thresholds(sweep: dict) -> dict:
    """Two operating points from a validation sweep: 'f1' (the best F1) and 'recall' (the
    highest threshold whose recall reaches the seed's 77.64 %, the lowest if none does)."""
    best_f1 = max(sweep, key=lambda t: sweep[t]["f1"])
    ok = [t for t in sweep if sweep[t]["recall"] >= SEED_TABLE["recall"]]
    return {"f1": best_f1, "recall": max(ok) if ok else min(sweep)}


def choose_model_thresholds(model, task: Task, log=print) -> tuple:
    """Hit thresholds chosen on validation (best F1), teacher-forced and free-running, with the
    sweeps and the teacher-forced recall-matched one: (thresholds, chosen, sweeps)."""
    sweeps_val = {m: threshold_sweep(model, task, "val", m) for m in ("tf", "free")}
    chosen = {m: choose_thresholds(sweeps_val[m]) for m in ("tf", "free")}
    log("validation F1 by hit threshold: teacher forcing "
        + ", ".join(f"{t}: {v['f1']:.3f}" for t, v in sweeps_val["tf"].items())
        + "; free-running "
        + ", ".join(f"{t}: {v['f1']:.3f}" for t, v in sweeps_val["free"].items()))
    return {m: chosen[m]["f1"] for m in ("tf", "free")}, chosen, sweeps_val


def class_thresholds(model, task: Task, start: float, split: str = "val", grid=THRESHOLDS,
                     rounds: int = 2, log=print) -> tuple:
    """Free-running hit thresholds, one per drum class, chosen on ``split`` (validation) by
    coordinate ascent of the hit F1 from the best common threshold ``start``: each class's
    threshold in turn takes the grid value that raises the F1 most (one generation of the
    split per trial), ``rounds`` times over the classes. Returns (thresholds (K,), val F1)."""
    t = np.full(K, float(start))
    best = metrics_of(predict(model, task, split, "free", t))["f1"]
    start_f1 = best
    for _ in range(rounds):
        changed = False
        for k in range(K):
            for g in grid:
                if g == t[k]:
                    continue
                trial = t.copy()
                trial[k] = g
                f1 = metrics_of(predict(model, task, split, "free", trial))["f1"]
                if f1 > best + 1e-9:
                    best, t, changed = f1, trial, True
        if not changed:
            break
    log(f"per-class free-running thresholds on {split}: "
        + ", ".join(f"{n} {v:g}" for n, v in zip(groove.CLASS_NAMES, t))
        + f" (F1 {start_f1:.4f} at {start:g} for all -> {best:.4f})")
    return [float(v) for v in t], best


def _hvo_of(pred: dict) -> np.ndarray:
    return np.concatenate([pred["H"], pred["V"], pred["O"]], axis=-1).astype(np.float32)


def best_of_candidates(model, task: Task, split: str, judge, threshold: float, candidates: int,
                       seed: int = 0, batch: int = 32) -> dict:
    """Free-running drums, the best of ``candidates`` codes per window by the judge's score
    (candidate 0 at z = mu, as ``accompany --rank judge`` chooses)."""
    rng = np.random.default_rng(seed)
    outs, hvos, chosen = {k: [] for k in ("H", "V", "O", "v_raw", "o_raw", "p")}, [], []
    model.eval()
    for s in range(0, task.size(split), batch):
        idx = np.arange(s, min(s + batch, task.size(split)))
        x, hvo = task.batch(split, idx)
        xs = [x[:, i] for i in range(x.shape[1])]
        cand = draw_candidates(model, xs, hvo.shape[1], candidates, threshold, rng)
        xs_c = [np.repeat(a, candidates, axis=0) for a in xs]
        score = judge_scores(judge, xs_c, cand).reshape(len(idx), candidates)
        best = np.arange(len(idx)) * candidates + np.argmax(score, axis=1)
        for k in outs:
            outs[k].append(cand[k][best])
        hvos.append(hvo)
        chosen.append(np.argmax(score, axis=1))
    out = {k: np.concatenate(v) for k, v in outs.items()}
    out["hvo"] = np.concatenate(hvos)
    out["chosen"] = np.concatenate(chosen)
    return out


#: the rows of the printed table, in order: (key in the results, label)
TABLE_ROWS = (("model_teacher_forced", "model, teacher-forced"),
              ("model_free_running", "model, free-running"),
              ("model_free_running_judge_ranked", "model, free-running, best of N by judge"),
              ("drum_machine", "drum machine (rock beat)"),
              ("nearest_training_beat_by_inputs", "nearest training beat (inputs' rhythm)"),
              ("seed", "seed report (teacher-forced)"))


def evaluate_accompaniment(model, task: Task, hp: dict, thresholds: dict | None = None,
                           judges: dict | None = None, candidates: int = 4, log=print) -> dict:
    """Test metrics of the model (teacher-forced and free-running) and the baselines, beside
    the seed's: hit precision, recall, F1, the judges' ROC AUC (real against each), velocity
    and timing errors, and the groove metrics. Hit thresholds are chosen on validation (best
    F1; ``thresholds`` {'tf', 'free'} overrides them); the teacher-forced model is also
    reported at 0.5 and at the recall-matched threshold, with a threshold sweep on the test
    set for information. ``judges``: {'hvo': DrumJudge, 'h': DrumJudge} (either may be
    missing: no AUC, no judge-ranked row)."""
    thresholds = dict(thresholds or {})
    judges = judges or {}
    auto, chosen, sweeps_val = choose_model_thresholds(model, task, log)
    for mode in ("tf", "free"):
        if thresholds.get(mode) is None:
            thresholds[mode] = auto[mode]
    tf = predict(model, task, "test", "tf", thresholds["tf"])
    free = predict(model, task, "test", "free", thresholds["free"])
    at = lambda t: metrics_of({**tf, "H": (tf["p"] > t).astype(np.float32)})  # noqa: E731
    preds = {"model_teacher_forced": tf, "model_free_running": free,
             "drum_machine": rock_baseline(tf["hvo"]),
             "nearest_training_beat_by_inputs": nearest_baseline(task.data, "test", "inputs")}
    if "hvo" in judges:
        preds["model_free_running_judge_ranked"] = best_of_candidates(
            model, task, "test", judges["hvo"], thresholds["free"], candidates, hp.get("seed", 0))
    res = {"test_windows": task.size("test"), "thresholds": thresholds,
           "threshold_recall_matched_tf": chosen["tf"]["recall"],
           "threshold_sweep_val": sweeps_val,
           "threshold_sweep_test": {m: threshold_sweep(model, task, "test", m)
                                    for m in ("tf", "free")},
           **{k: metrics_of(v) for k, v in preds.items()},
           "model_teacher_forced_at_0.5": at(0.5),
           "model_teacher_forced_recall_matched": at(chosen["tf"]["recall"]),
           "nearest_training_beat_by_hits_oracle":
               metrics_of(nearest_baseline(task.data, "test", "hits")),
           "seed": {**SEED_TABLE, "f1": 2 * SEED_TABLE["precision"] * SEED_TABLE["recall"]
                    / (SEED_TABLE["precision"] + SEED_TABLE["recall"])},
           "candidates": candidates if "hvo" in judges else 0}
    if np.ndim(thresholds["free"]):
        # per-class thresholds: the common one (chosen on validation too), for information
        res["model_free_running_common_threshold"] = metrics_of(
            predict(model, task, "test", "free", auto["free"]))
        res["threshold_common_free"] = auto["free"]
    res["model_teacher_forced"]["note_loss"] = note_loss(tf, hp["pos_weight"])
    # the judges: the area under the ROC curve of real test windows against each kind of drums
    onsets = split_onsets(task, "test")
    real = tf["hvo"]
    res["judge_auc"] = {}
    for feat, judge in judges.items():
        def score(hvo, judge=judge, feat=feat):
            return judge.score(judge_features(hvo, onsets, feat))

        s_real = score(real)
        aucs = {k: roc_auc(s_real, score(_hvo_of(v))) for k, v in preds.items()}
        aucs["shuffled_real"] = roc_auc(s_real, score(shuffled_drums(task, "test")))
        res["judge_auc"][feat] = {k: round(v, 4) for k, v in aucs.items()}
    # groove metrics, real drums first
    songs = task.data.window_song["test"]
    bpm = np.array([task.data.songs[s]["bpm"] for s in songs])
    sets = {"real drums": (real[..., :K], real[..., K:2 * K], real[..., 2 * K:])}
    for key, label in TABLE_ROWS:
        if key in preds and key != "model_teacher_forced":
            sets[label.replace(" N ", f" {candidates} ")] = (preds[key]["H"], preds[key]["V"],
                                                           preds[key]["O"])
    res["groove"] = gm.compare(sets, bpm=bpm, song=songs)
    res["table"] = table_rows(res)
    return res


def table_rows(res: dict) -> list:
    """The one table (summary.json's ``table``): a dict per row with its figures."""
    rows = []
    for key, label in TABLE_ROWS:
        if key not in res:
            continue
        m = res[key]
        row = {"row": label, "key": key, "precision": m["precision"], "recall": m["recall"],
               "f1": m["f1"]}
        for feat, name in (("hvo", "judge_auc"), ("h", "judge_hits_auc")):
            row[name] = res.get("judge_auc", {}).get(feat, {}).get(key)
        if key == "seed":
            row["velocity_mse_hits"], row["timing_mse_hits"] = m["velocity_mse"], m["timing_mse"]
        else:
            row["velocity_mse_hits"] = m["velocity_mse_hits"]
            row["timing_mse_hits"] = m["timing_mse_hits"]
            row["velocity_mse_all"], row["timing_mse_all"] = m["velocity_mse_all"], \
                m["timing_mse_all"]
        rows.append(row)
    return rows


# ==============================================================================================
# The judges: their training data and training
# ==============================================================================================
def split_onsets(task: Task, split: str) -> np.ndarray:
    """(N, T, E) onset densities of a split's windows (the judges' view of the music)."""
    out = []
    for s in range(0, task.size(split), 256):
        x, _ = task.batch(split, np.arange(s, min(s + 256, task.size(split))))
        out.append(onset_density(x))
    return np.concatenate(out)


def fake_drums(model, task: Task, split: str, threshold: float, seed: int = 0) -> dict:
    """The fakes the judges learn from and are scored on, for a split: {'model': free-running
    drums, 'drum_machine': the rock beat, 'shuffled': real drums of another song}, each
    (N, T, 27)."""
    free = predict(model, task, split, "free", threshold)
    dm_ = rock_baseline(free["hvo"])
    return {"model": np.concatenate([free["H"], free["V"], free["O"]], -1).astype(np.float32),
            "drum_machine": np.concatenate([dm_["H"], dm_["V"], dm_["O"]], -1).astype(
                np.float32),
            "shuffled": shuffled_drums(task, split, seed)}


def train_judges(model, task: Task, threshold: float, run_dir: str, epochs: int = 8,
                 seed: int = 0, log=print) -> dict:
    """Train the two judges (H, V, O and hits only) on the training songs: real windows against
    the model's free-running drums, the drum machine and shuffled real drums; validation
    songs pick the epoch. Writes judge.npz and judge_hits.npz into ``run_dir``."""
    onsets = {s: split_onsets(task, s) for s in ("train", "val")}
    real = {s: {"hvo": task.data.hvo(s, np.arange(task.size(s))), "onsets": onsets[s]}
            for s in ("train", "val")}
    fakes = {s: {k: {"hvo": v, "onsets": onsets[s]} for k, v in
                 fake_drums(model, task, s, threshold, seed).items()} for s in ("train", "val")}
    reports = {}
    for features in ("hvo", "h"):
        judge, rep = train_judge(JudgeConfig(features=features, streams=onsets["train"].shape[-1]),
                                 real["train"], fakes["train"], real["val"], fakes["val"],
                                 epochs=epochs, seed=seed, log=log)
        path = save_judge(judge_path(os.path.join(run_dir, "best.npz"), features), judge, rep)
        reports[features] = {**rep, "path": path}
    return reports


def evaluate_humanisation(model, task: Task, log=print) -> dict:
    """From H, predict V and O on the Groove test split, against constant baselines."""
    tf = predict(model, task, "test", "tf")
    free = predict(model, task, "test", "humanise")
    hvo = tf["hvo"]
    H = hvo[..., :K] > 0.5
    tr = task.data.hvo("train", np.arange(task.size("train")))
    Htr = tr[..., :K] > 0.5
    mean_v = float(tr[..., K:2 * K][Htr].mean())
    class_v = np.array([tr[..., K + k][Htr[..., k]].mean() if Htr[..., k].any() else mean_v
                        for k in range(K)])
    class_o = np.array([tr[..., 2 * K + k][Htr[..., k]].mean() if Htr[..., k].any() else 0.0
                        for k in range(K)])

    def errs(v, o):
        v = np.broadcast_to(v, H.shape)
        o = np.broadcast_to(o, H.shape)
        ve = float(((v - hvo[..., K:2 * K]) ** 2)[H].mean())
        oe = float(((o - hvo[..., 2 * K:]) ** 2)[H].mean())
        bpm = np.array([task.data.songs[s]["bpm"] for s in task.data.window_song["test"]])
        ms = groove.offsets_to_ms(np.broadcast_to(o, H.shape) - hvo[..., 2 * K:],
                                  bpm[:, None, None])
        return {"velocity_mse": ve, "timing_mse": oe,
                "velocity_rmse_midi": float(np.sqrt(ve) * 127),
                "timing_rmse_ms": float(np.sqrt((ms ** 2)[H].mean()))}

    return {"test_windows": task.size("test"), "test_hits": int(H.sum()),
            "model_teacher_forced": errs(tf["v_raw"], tf["o_raw"]),
            "model_free_running_given_hits": errs(free["v_raw"], free["o_raw"]),
            "constant_baseline": {**errs(mean_v, 0.0), "velocity": mean_v * 127},
            "per_class_mean_baseline": errs(class_v, class_o)}


# ----------------------------------------------------------------------------------------------
# Printed tables and an example figure
# ----------------------------------------------------------------------------------------------
def log_humanisation(res: dict, log=print) -> None:
    log(f"humanisation on {res['test_windows']} Groove test windows ({res['test_hits']} hits): "
        "velocity MSE / timing MSE (steps^2) / velocity RMSE (MIDI) / timing RMSE (ms)")
    for name in ("model_teacher_forced", "model_free_running_given_hits", "constant_baseline",
                 "per_class_mean_baseline"):
        r = res[name]
        log(f"  {name:32s} {r['velocity_mse']:.4f}  {r['timing_mse']:.4f}  "
            f"{r['velocity_rmse_midi']:.1f}  {r['timing_rmse_ms']:.1f}")


def log_accompaniment(res: dict, log=print) -> None:
    """The one table, then the groove metrics and what is there for information."""
    th = res["thresholds"]
    free = th["free"] if not np.ndim(th["free"]) else \
        "per class " + "/".join(f"{v:g}" for v in th["free"])
    log(f"test set: {res['test_windows']} windows; hit thresholds chosen on validation: "
        f"{th['tf']} (teacher-forced), {free} (free-running); judge AUC: real test "
        "windows against each row's drums (0.5: the judge cannot tell; lower is better)")

    def f(v, w=7, d=4):
        return f"{'-':>{w}s}" if v is None else f"{v:{w}.{d}f}"

    log(f"  {'':44s} {'prec':>7s} {'recall':>7s} {'F1':>7s} {'AUC':>7s} {'AUC(H)':>7s} "
        f"{'velMSE':>7s} {'timMSE':>7s}")
    for row in res["table"]:
        label = row["row"]
        if row["key"] == "model_free_running_judge_ranked":
            label = label.replace(" N ", f" {res['candidates']} ") + " *"
        log(f"  {label:44s} {f(row['precision'])} {f(row['recall'])} {f(row['f1'])} "
            f"{f(row['judge_auc'])} {f(row['judge_hits_auc'])} {f(row['velocity_mse_hits'])} "
            f"{f(row['timing_mse_hits'])}")
    if res.get("judge_auc"):
        log("  AUC: the H/V/O judge; AUC(H): the judge of the hits alone; velMSE / timMSE: on the "
            "true hits (the seed's measure)")
        if "model_free_running_judge_ranked" in res:
            log("  * chosen among the candidates by the H/V/O judge: its AUC there is not an "
                "independent figure")
        log("  judge AUC, real against real drums of another song: "
            + ", ".join(f"{k} {v['shuffled_real']:.4f}" for k, v in res["judge_auc"].items()))
    log("groove metrics on the test songs (hits per bar, share of bars with a fill, hi-hat "
        "velocity SD in MIDI units, cells changed bar to bar, cells changed per bar between "
        "consecutive 8-bar sections, and its correlation with the real drums' changes):")
    for line in gm.format_table(res["groove"]):
        log(line)
    log("for information:")
    for name in ("model_teacher_forced_at_0.5", "model_teacher_forced_recall_matched",
                 "model_free_running_common_threshold", "nearest_training_beat_by_hits_oracle"):
        if name not in res:
            continue
        r = res[name]
        log(f"  {name:40s} prec {r['precision']:.4f} recall {r['recall']:.4f} F1 {r['f1']:.4f}")
    log(f"  model note loss (weighted BCE, teacher-forced): "
        f"{res['model_teacher_forced']['note_loss']:.4f} (seed: {res['seed']['note_loss']})")
    for mode, name in (("tf", "teacher-forced"), ("free", "free-running")):
        log(f"  test precision / recall by threshold ({name}): "
            + ", ".join(f"{t}: {v['precision']:.3f}/{v['recall']:.3f}"
                        for t, v in res["threshold_sweep_test"][mode].items()))


def plot_example(model, task: Task, threshold: float, path: str, window: int = 0) -> None:
    """Target and generated hits of one test window, velocity as colour."""
    import matplotlib  # slow to import; only this figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, hvo = task.batch("test", np.array([window]))
    gen = model.generate(x, hvo.shape[1], threshold=threshold)
    fig, axes = plt.subplots(2, 1, figsize=(12, 4.5), sharex=True)
    for ax, (title, v) in zip(axes, (("target drums", hvo[0, :, K:2 * K]),
                                     ("generated (free-running)", gen["V"][0]))):
        ax.imshow(v.T, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_yticks(range(K), groove.CLASS_NAMES, fontsize=7)
        ax.set_title(title, fontsize=9)
        for b in range(0, hvo.shape[1], 16):
            ax.axvline(b - 0.5, color="tab:blue", lw=0.5)
    axes[-1].set_xlabel("step (sixteenth notes)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------
def load_judges(checkpoint: str, judge: str | None = None, log=print) -> dict:
    """{'hvo': judge, 'h': judge} of a run: ``judge`` (a judge.npz; its hits-only sibling
    judge_hits.npz beside it) or the ones beside the checkpoint; {} when there are none."""
    base = judge or checkpoint
    out = {}
    for feat in ("hvo", "h"):
        path = judge if (judge and feat == "hvo") else judge_path(base, feat)
        if os.path.isfile(path):
            out[feat] = load_judge(path)[0]
            log(f"judge ({'hits, velocities, offsets' if feat == 'hvo' else 'hits only'}): {path}")
    if judge and "hvo" not in out:
        raise FileNotFoundError(f"judge not found: {judge}")
    return out


def cmd_evaluate(args, log=print) -> dict:
    """``evaluate``: a checkpoint's test report, on the data settings it was trained with,
    written to --out (default: evaluation.json beside the checkpoint), with the run's judges
    (judge.npz, judge_hits.npz beside it, or --judge)."""
    model, ck = load_model(args.checkpoint)
    hp = ck.config["hp"]
    if getattr(args, "split_seed", 0) not in (0, hp.get("split_seed", 0)):
        log(f"note: --split-seed {args.split_seed} ignored: a checkpoint is evaluated on the "
            f"split it was trained on (split seed {hp.get('split_seed', 0)})")
    use_run_data_settings(args, hp)
    task = load_task(ck.config["task"], args, log)
    if ck.config["task"] == "humanisation":
        res = {"humanisation": evaluate_humanisation(model, task, log)}
        log_humanisation(res["humanisation"], log)
    else:
        thr = dict(ck.config.get("thresholds") or {})
        if args.threshold is not None:
            thr = {"tf": args.threshold, "free": args.threshold}
        elif getattr(args, "class_thresholds", False):
            auto, _, _ = choose_model_thresholds(model, task, log)
            thr = {"tf": thr.get("tf", auto["tf"]),
                   "free": class_thresholds(model, task, auto["free"], log=log)[0]}
        judges = load_judges(args.checkpoint, getattr(args, "judge", None), log)
        res = {"evaluation": evaluate_accompaniment(model, task, hp, thr, judges,
                                                    getattr(args, "candidates", 4), log)}
        log_accompaniment(res["evaluation"], log)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                                   "evaluation.json")
    write_summary(os.path.dirname(os.path.abspath(out)), {"checkpoint": args.checkpoint, **res},
                  name=os.path.basename(out))
    log(f"wrote {out}")
    return res
