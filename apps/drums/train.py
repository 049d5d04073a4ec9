"""Training of apps/drum_accompaniment.py: the layer-wise stage schedule, the ``Trainer`` loop
with its run folder (metrics.csv, curves.png, best.npz / last.npz, exact resume, summary.json),
and the ``pretrain-groove`` and ``train`` commands (each ends with evaluate.py's report).

Batches come from tasks.py: ``Task.batch(split, idx) -> (x (B, E, T, F), hvo (B, T, 3K))``
with E input streams and T sixteenth-note steps. The model is model.py, its loss loss.py.
"""
from __future__ import annotations

import os
import time

import numpy as np

import nnscratch as nn
from apps.common.interrupt import DeferredInterrupt
from apps.common.runs import (
    RUNS_ROOT,
    Line,
    MetricsLog,
    Panel,
    make_run_dir,
    plot_curves,
    timestamp,
    write_summary,
)

from . import groove
from .data import APP
from .evaluate import (
    choose_model_thresholds,
    class_thresholds,
    evaluate_accompaniment,
    evaluate_humanisation,
    load_judges,
    log_accompaniment,
    log_humanisation,
    plot_example,
    threshold_sweep,
    train_judges,
)
from .loss import DrumLoss, LossConfig
from .model import PRESETS, DrumConfig, DrumVAE, Sampling, load_model, transfer_decoder
from .tasks import K, Task, load_task, use_run_data_settings

#: the layer-wise schedule's groups (DrumVAE.groups()), from the output towards the input
STAGE_ORDER = ("heads", "decoder", "init_state", "conductor", "bottleneck", "merge",
               "encoder_lstm", "encoder_conv")
METRIC_FIELDS = ["epoch", "stage", "train_loss", "train_note", "train_velocity", "train_offset",
                 "train_kl", "val_loss", "val_note", "val_velocity", "val_offset", "val_kl",
                 "val_f1", "val_free_f1", "val_free_threshold", "tf_ratio", "lr",
                 "windows_per_s", "elapsed_s"]


def teacher_forcing_ratio(step: int, k: float) -> float:
    """MusicVAE's inverse-sigmoid schedule: the probability of feeding the true previous step
    after ``step`` updates, k / (k + exp(step / k)); it falls from ~1 to 0, through 1/2 at
    step k ln k. k = 0: always 1 (teacher forcing only)."""
    if k <= 0:
        return 1.0
    e = step / k
    return 0.0 if e > 700 else float(k / (k + np.exp(e)))                  # drum_vae.md (7b)


def make_stages(model, schedule: str, stage_epochs: int, epochs: int, lr: float,
                ft_lr_factor: float) -> list:
    """[(name, group names or None for all, epochs, lr)]."""
    if schedule == "joint":
        return [("all", None, epochs, lr)]
    if schedule != "layerwise":
        raise ValueError(f"schedule must be 'layerwise' or 'joint', got {schedule!r}")
    stages = [(name, [name], stage_epochs, lr) for name in STAGE_ORDER]
    return stages + [("fine-tune", None, epochs, lr * ft_lr_factor)]


def evaluate_loss(model, loss_fn, task: Task, split: str, batch: int = 64) -> dict:
    """Teacher-forced loss parts (z = mu) and hit F1 at 0.5 on a split."""
    model.eval()
    tot, n, tp, fp, fn = {}, 0, 0, 0, 0
    try:
        with nn.no_grad():
            for s in range(0, task.size(split), batch):
                idx = np.arange(s, min(s + batch, task.size(split)))
                x, hvo = task.batch(split, idx)
                out = model(x, hvo)
                loss, parts = loss_fn(out, hvo)
                for k, v in {"loss": loss, **parts}.items():
                    tot[k] = tot.get(k, 0.0) + v * len(idx)
                n += len(idx)
                hit, pred = hvo[..., :K] > 0.5, nn.to_cpu(out[0]) > 0      # sigmoid > 0.5
                tp += int((hit & pred).sum())
                fp += int((~hit & pred).sum())
                fn += int((hit & ~pred).sum())
    finally:
        model.train()
    res = {k: v / n for k, v in tot.items()}
    res["f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    return res


class Trainer:
    """One training run: model, loss, optimizer, stage schedule, run folder, exact resume."""

    def __init__(self, model, task: Task, run_dir: str, hp: dict, log=print):
        self.model, self.task, self.hp, self.log = model, task, hp, log
        self.run_dir = make_run_dir(run_dir)
        self.loss_fn = DrumLoss(LossConfig(
            pos_weight=hp["pos_weight"], w_velocity=hp["w_velocity"], w_offset=hp["w_offset"],
            beta=hp["beta"], free_bits=hp["free_bits"]))
        self.opt = nn.optim.Adam(model.parameters(), lr=hp["lr"])
        self.stages = make_stages(model, hp["schedule"], hp["stage_epochs"], hp["epochs"], hp["lr"],
                                  hp["ft_lr_factor"])
        self.early = self._early_stopping()
        self.state = {"stage": 0, "stage_epoch": 0, "batch": 0, "epoch": 0, "step": 0,
                      "elapsed": 0.0, "best_val": float("inf"), "best_score": None,
                      "free_threshold": 0.5, "partial": None}
        self.history: list = []
        self.metrics = MetricsLog(os.path.join(self.run_dir, "metrics.csv"), METRIC_FIELDS)
        self.extra_arrays: dict = {}

    def _early_stopping(self):
        mode = "max" if self.hp.get("select", "loss") == "free_f1" else "min"
        return nn.optim.EarlyStopping(patience=self.hp["patience"], mode=mode)

    # -- stages -----------------------------------------------------------------------------------
    def apply_stage(self) -> None:
        name, groups, _, lr = self.stages[self.state["stage"]]
        if groups is None:
            self.model.unfreeze()
        else:
            self.model.freeze()
            g = dict(self.model.groups())
            for gname in groups:
                for layer in g[gname]:
                    layer.unfreeze()
        self.opt.lr = lr

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self, name: str) -> str:
        path = os.path.join(self.run_dir, name)
        nn.save_checkpoint(
            path, self.model, self.opt,
            config={"app": APP, "task": self.task.kind, "model": self.model.cfg.to_json(),
                    "hp": self.hp, "roll_mode": self.task.roll_mode},
            extra={"state": self.state, "history": self.history,
                   "rng": nn.backend.rng_state(), "early": self.early.state_dict()},
            arrays=self.extra_arrays)
        return path

    def restore(self, path: str) -> None:
        ck = nn.load_checkpoint(path, self.model, self.opt)
        self.state = ck.extra["state"]
        self.history = ck.extra["history"]
        nn.backend.set_rng_state(ck.extra["rng"])
        self.early.load_state_dict(ck.extra["early"])

    # -- one step --------------------------------------------------------------------------------
    def train_step(self, idx) -> tuple:
        # the augmentation's generator depends on (seed, epoch, batch) only: resuming is exact
        rng = np.random.default_rng((self.hp["seed"], self.state["epoch"], self.state["batch"]))
        x, hvo = self.task.batch("train", idx, rng, self.hp.get("transpose", 0))
        sampling = None
        ratio = teacher_forcing_ratio(self.state["step"], self.hp.get("ss_rate", 0.0))
        if ratio < 1.0:
            sampling = Sampling(ratio, np.random.default_rng(
                (self.hp["seed"], self.state["epoch"], self.state["batch"], 1)),
                self.hp.get("ss_mode", "sample"), self.state.get("free_threshold", 0.5))
        out = self.model(x, hvo, sampling=sampling)
        loss, parts = self.loss_fn(out, hvo)
        self.model.backward(self.loss_fn.backward())
        nn.optim.clip_grad_norm([p for p in self.model.parameters() if p.requires_grad],
                                self.hp["clip"])
        self.opt.step()
        self.opt.zero_grad()
        self.state["step"] += 1
        return loss, parts

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, max_minutes: float | None = None, progress: bool = True) -> str:
        from tqdm import tqdm  # slow to import; only training draws a progress bar

        deadline = None if not max_minutes else time.monotonic() + 60 * max_minutes
        n, B = self.task.size("train"), self.hp["batch"]
        n_batches = -(-n // B)
        interrupted = DeferredInterrupt(unit="batch", saving="last.npz")
        stop_reason = "schedule done"
        try:
            while self.state["stage"] < len(self.stages):
                name, _, n_epochs, _ = self.stages[self.state["stage"]]
                if self.state["stage_epoch"] >= n_epochs:
                    self.state.update(stage=self.state["stage"] + 1, stage_epoch=0, batch=0)
                    self.early = self._early_stopping()
                    continue
                self.apply_stage()
                order = np.random.default_rng(
                    self.hp["seed"] * 100_003 + self.state["epoch"]).permutation(n)
                tot = self.state["partial"] or {"n": 0, "seconds": 0.0}
                bar = tqdm(total=n_batches, initial=self.state["batch"], disable=not progress,
                           unit="batch", dynamic_ncols=True,
                           desc=f"epoch {self.state['epoch'] + 1} [{name}]")
                while self.state["batch"] < n_batches:
                    t0 = time.perf_counter()
                    idx = order[self.state["batch"] * B:(self.state["batch"] + 1) * B]
                    loss, parts = self.train_step(idx)
                    dt = time.perf_counter() - t0
                    self.state["elapsed"] += dt
                    tot["seconds"] += dt
                    for k, v in {"loss": loss, **parts}.items():
                        tot[k] = tot.get(k, 0.0) + v * len(idx)
                    tot["n"] += len(idx)
                    self.state["batch"] += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", note=f"{parts['note']:.3f}",
                                    kl=f"{parts['kl']:.1f}", win_s=f"{len(idx) / dt:.0f}")
                    if interrupted.requested or (deadline and time.monotonic() >= deadline):
                        break
                bar.close()
                if self.state["batch"] < n_batches:          # stopped inside the epoch
                    self.state["partial"] = tot
                    stop_reason = "interrupted" if interrupted.requested else "time limit"
                    path = self.save("last.npz")
                    self.log(f"{stop_reason} in epoch {self.state['epoch'] + 1}: saved {path}; "
                             f"continue with --resume {path}")
                    break
                stop = self._end_epoch(name, tot)
                if stop:
                    stop_reason = "early stopping"
                    self.state.update(stage=len(self.stages))
                    self.save("last.npz")
                    break
                if interrupted.requested or (deadline and time.monotonic() >= deadline):
                    stop_reason = "interrupted" if interrupted.requested else "time limit"
                    break
        finally:
            interrupted.restore()
        return stop_reason

    def _end_epoch(self, stage: str, tot: dict) -> bool:
        val = evaluate_loss(self.model, self.loss_fn, self.task, "val", self.hp["batch"])
        free = {"f1": float("nan"), "threshold": float("nan")}
        if self.hp.get("select", "loss") == "free_f1":
            sweep = threshold_sweep(self.model, self.task, "val", "free")
            t = max(sweep, key=lambda t: sweep[t]["f1"])
            free = {"f1": sweep[t]["f1"], "threshold": t}
            self.state["free_threshold"] = t
        nt = max(tot["n"], 1)
        row = {"epoch": self.state["epoch"] + 1, "stage": stage,
               **{f"train_{k}": round(tot.get(k, 0.0) / nt, 6)
                  for k in ("loss", "note", "velocity", "offset", "kl")},
               **{f"val_{k}": round(val[k], 6)
                  for k in ("loss", "note", "velocity", "offset", "kl")},
               "val_f1": round(val["f1"], 5), "val_free_f1": round(free["f1"], 5),
               "val_free_threshold": free["threshold"],
               "tf_ratio": round(teacher_forcing_ratio(self.state["step"],
                                                       self.hp.get("ss_rate", 0.0)), 4),
               "lr": self.opt.lr,
               "windows_per_s": round(nt / max(tot["seconds"], 1e-9), 1),
               "elapsed_s": round(self.state["elapsed"], 1)}
        self.history.append(row)
        self.metrics.append(row)
        plot_history(self.history, os.path.join(self.run_dir, "curves.png"), self.task.kind)
        self.log(f"epoch {row['epoch']} [{stage}]: train {row['train_loss']:.4f} (note "
                 f"{row['train_note']:.4f}, vel {row['train_velocity']:.4f}, off "
                 f"{row['train_offset']:.4f}, KL {row['train_kl']:.2f})  val {row['val_loss']:.4f} "
                 f"(note {row['val_note']:.4f}, vel {row['val_velocity']:.4f}, off "
                 f"{row['val_offset']:.4f})  val F1 {row['val_f1']:.4f} (free-running "
                 f"{row['val_free_f1']:.4f} at {row['val_free_threshold']})  teacher forcing "
                 f"{row['tf_ratio']:.3f}  lr {self.opt.lr:.1e}  "
                 f"{row['windows_per_s']:.0f} windows/s")
        self.state.update(epoch=self.state["epoch"] + 1, stage_epoch=self.state["stage_epoch"] + 1,
                          batch=0, partial=None)
        final_stage = self.state["stage"] == len(self.stages) - 1
        by_f1 = self.hp.get("select", "loss") == "free_f1"
        score = free["f1"] if by_f1 else val["loss"]
        stop = self.early.step(score) if final_stage else False
        self.state["best_val"] = min(self.state["best_val"], val["loss"])
        best = self.state.get("best_score")
        if best is None or (score > best if by_f1 else score < best):
            self.state["best_score"] = score
            self.state["best_epoch"] = row["epoch"]
            self.save("best.npz")
        self.save("last.npz")
        return stop


def plot_history(history: list, path: str, kind: str) -> None:
    """curves.png: the losses, the velocity and timing errors, and the hit F1 by epoch; the
    title names the epoch where each stage of the schedule begins."""
    if not history:
        return
    ep = [h["epoch"] for h in history]

    def col(key):
        return [h[key] for h in history]

    starts, prev = [], None
    for h in history:
        if h["stage"] != prev:
            starts.append(f"{h['stage']} {h['epoch']}")
            prev = h["stage"]
    title = f"drum {kind} model"
    if len(starts) > 1:
        title += " (stages from epoch: " + ", ".join(starts) + ")"
    plot_curves(path, title, [
        Panel("loss", [Line("train loss", ep, col("train_loss")),
                       Line("val loss (teacher forcing)", ep, col("val_loss"), "o-"),
                       Line("val note (BCE)", ep, col("val_note"), "--")], xlabel="epoch"),
        Panel("MSE on the hits", [Line("val velocity MSE (hits)", ep, col("val_velocity")),
                                  Line("val timing MSE (hits)", ep, col("val_offset"))],
              xlabel="epoch"),
        Panel("hit F1", [Line("val hit F1 (teacher forcing, 0.5)", ep, col("val_f1"), "g--"),
                         Line("val hit F1 (free-running, best threshold)", ep,
                              [h.get("val_free_f1", float("nan")) for h in history], "b-")],
              xlabel="epoch", ylim=(0, 1)),
    ])


# ==============================================================================================
# The commands
# ==============================================================================================
def hyperparameters(args, kind: str) -> dict:
    return {"preset": args.preset, "lr": args.lr, "batch": args.batch, "epochs": args.epochs,
            "stage_epochs": args.stage_epochs, "schedule": args.schedule,
            "ft_lr_factor": args.ft_lr_factor, "patience": args.patience, "clip": args.clip,
            "pos_weight": args.pos_weight, "w_velocity": args.w_velocity, "w_offset": args.w_offset,
            "beta": args.beta, "free_bits": args.free_bits, "dropout": args.dropout,
            "input_dropout": args.input_dropout, "transpose": getattr(args, "transpose", 0),
            "seed": args.seed, "task": kind, "bars": args.bars, "hop_bars": args.hop_bars,
            "split_seed": getattr(args, "split_seed", 0),
            "roll_mode": getattr(args, "roll_mode", "onset"), "limit": args.limit,
            "ss_rate": getattr(args, "ss_rate", 0.0), "ss_mode": getattr(args, "ss_mode", "sample"),
            "select": getattr(args, "select", "loss"),
            "class_thresholds": getattr(args, "class_thresholds", False),
            "architecture": architecture(args),
            "pretrained": (os.path.abspath(args.pretrained)
                           if getattr(args, "pretrained", None) else None)}


def architecture(args) -> dict:
    """The DrumConfig options the command line sets beside the preset's sizes."""
    arch = {"enc_layers": getattr(args, "enc_layers", 1),
            "conductor_levels": getattr(args, "conductor_levels", 1),
            "phrase_subs": getattr(args, "phrase_subs", 2),
            "position": getattr(args, "position", False),
            "local": getattr(args, "local", False),
            "bar_rhythm": getattr(args, "bar_rhythm", False),
            "feedback": not getattr(args, "no_feedback", False)}
    if getattr(args, "sub_bars", None):
        arch["sub_steps"] = args.sub_bars * groove.STEPS_PER_BAR
    return arch


def fit(kind: str, args, log=print) -> tuple:
    """Build or resume a run of ``kind`` and train it; returns (trainer, stop reason)."""
    if args.resume:
        ck = nn.load_checkpoint(args.resume)
        if ck.config.get("app") != APP:
            raise nn.CheckpointError(f"{args.resume}: not a {APP} checkpoint")
        hp = ck.config["hp"]
        use_run_data_settings(args, hp)
        run_dir = args.out or os.path.dirname(os.path.abspath(args.resume))
        cfg = DrumConfig.from_json(ck.config["model"])
    else:
        hp = hyperparameters(args, kind)
        sub = "groove" if kind == "humanisation" else "accomp"
        run_dir = args.out or os.path.join(RUNS_ROOT, "drums", f"{sub}-{timestamp()}")
        cfg = None
    nn.manual_seed(hp["seed"])
    task = load_task(kind, args, log)
    if cfg is None:
        cfg = DrumConfig(inputs=task.inputs, dropout=hp["dropout"],
                         input_dropout=hp.get("input_dropout", 0.0),
                         **{**PRESETS[hp["preset"]], **hp.get("architecture", {})})
    model = DrumVAE(cfg)
    trainer = Trainer(model, task, run_dir, hp, log)
    if kind == "accompaniment":
        Htr = task.data.hvo("train", np.arange(task.size("train")))[..., :K]
        trainer.extra_arrays = {"template": groove.beat_template(Htr)}
    if args.resume:
        trainer.restore(args.resume)
        log(f"resumed from {args.resume} at epoch {trainer.state['epoch']} (stage "
            f"{trainer.stages[min(trainer.state['stage'], len(trainer.stages) - 1)][0]}, batch "
            f"{trainer.state['batch']})")
    elif getattr(args, "pretrained", None):
        src = load_model(args.pretrained)[0]
        copied = transfer_decoder(src, model)
        log(f"loaded the decoder side ({len(copied)} arrays: bottleneck, conductor, decoder-state "
            f"layer, decoder, heads) from {args.pretrained}")
    log(f"{kind} model: {model.num_parameters():,} parameters ({hp['preset']} preset); "
        f"{task.size('train')} training windows of {task.data.steps} steps; stages: "
        + ", ".join(f"{n} x{e}" for n, _, e, _ in trainer.stages))
    reason = trainer.run(args.max_minutes, progress=args.progress)
    return trainer, reason


def finish(trainer, reason: str, results: dict, log=print) -> dict:
    """Write the run's summary.json (settings, data, history, ``results``, files)."""
    files = sorted(os.listdir(trainer.run_dir))
    summary = {"app": APP, "task": trainer.task.kind, "run_dir": trainer.run_dir,
               "stop_reason": reason, "hyperparameters": trainer.hp,
               "model": trainer.model.cfg.to_json(), "parameters": trainer.model.num_parameters(),
               "data": trainer.task.data.summary(), "epochs": trainer.state["epoch"],
               "train_seconds": round(trainer.state["elapsed"], 1),
               "best_val_loss": trainer.state["best_val"],
               "selection": {"by": trainer.hp.get("select", "loss"),
                             "best_epoch": trainer.state.get("best_epoch"),
                             "best_score": trainer.state.get("best_score")},
               "history": trainer.history,
               **results, "files": files + ["summary.json"]}
    write_summary(trainer.run_dir, summary)
    log(f"wrote summary.json and {len(files)} files to {trainer.run_dir}")
    return summary


def _trained(trainer, reason: str) -> bool:
    """Whether the run ended with a best.npz to evaluate (not Ctrl-C, at least one epoch)."""
    return reason != "interrupted" and os.path.exists(os.path.join(trainer.run_dir, "best.npz"))


def cmd_pretrain_groove(args, log=print) -> int:
    """``pretrain-groove``: the humanisation model on Groove MIDI, then its test report."""
    trainer, reason = fit("humanisation", args, log)
    if not _trained(trainer, reason):
        return 130 if reason == "interrupted" else 0
    model = load_model(os.path.join(trainer.run_dir, "best.npz"))[0]
    res = evaluate_humanisation(model, trainer.task, log)
    log_humanisation(res, log)
    finish(trainer, reason, {"humanisation": res}, log)
    return 0


def cmd_train(args, log=print) -> int:
    """``train``: the accompaniment model (layer-wise by default); the hit thresholds chosen on
    validation, stored in best.npz; the two judges trained on the training songs against the
    model's free-running drums (judge.npz, judge_hits.npz); then the test report."""
    trainer, reason = fit("accompaniment", args, log)
    if not _trained(trainer, reason):
        return 130 if reason == "interrupted" else 0
    best = os.path.join(trainer.run_dir, "best.npz")
    model, ck = load_model(best)
    thresholds, _, _ = choose_model_thresholds(model, trainer.task, log)
    if trainer.hp.get("class_thresholds"):
        thresholds["free"], _ = class_thresholds(model, trainer.task, thresholds["free"], log=log)
    nn.save_checkpoint(best, model, None, config={**ck.config, "thresholds": thresholds},
                       extra=ck.extra, arrays=ck.arrays)
    judges, judge_reports = {}, {}
    if getattr(args, "judge_epochs", 0):
        t0 = time.perf_counter()
        judge_reports = train_judges(model, trainer.task, thresholds["free"], trainer.run_dir,
                                     args.judge_epochs, trainer.hp["seed"], log)
        judge_reports["train_seconds"] = round(time.perf_counter() - t0, 1)
        judges = load_judges(best, log=log)
    res = evaluate_accompaniment(model, trainer.task, trainer.hp, thresholds, judges, log=log)
    log_accompaniment(res, log)
    plot_example(model, trainer.task, res["thresholds"]["free"],
                 os.path.join(trainer.run_dir, "example.png"))
    finish(trainer, reason, {"evaluation": res, "judges": judge_reports}, log)
    return 0
