"""Training of apps/drum_accompaniment.py: the two tasks' batches, the layer-wise stage
schedule, and the ``Trainer`` loop with its run folder (metrics.csv, curves.png, best.npz /
last.npz, exact resume), plus ``load_model`` to read those checkpoints back.

Shapes: ``Task.batch(split, idx) -> (x (B, E, T, F), hvo (B, T, 3K))`` with E input streams
(piano, guitar, bass rolls of dd.N_KEYS keys; or the hits H of K = 9 drum classes for the
humanisation task), T sixteenth-note steps, and hvo the hits, velocities and offsets side by
side. The model and loss are apps/drum_model.py.
"""
from __future__ import annotations

import csv
import os
import time

import numpy as np

import nnscratch as nn
from apps import drum_model as dmod
from apps.interrupt import DeferredInterrupt
from apps.music import drum_dataset as dd

APP = "drum_accompaniment"
K = dmod.K
STAGE_ORDER = ("heads", "decoder", "init_state", "conductor", "bottleneck", "merge",
               "encoder_lstm", "encoder_conv")


# ==============================================================================================
# Data access for the two tasks
# ==============================================================================================
class Task:
    """Batches of one task: ``accompaniment`` (Lakh rolls -> drums) or ``humanisation`` (Groove:
    hits -> drums). ``batch(split, idx) -> (x (B, E, T, F), hvo (B, T, 27))``."""

    def __init__(self, kind: str, data: dd.DrumData, roll_mode: str = "onset"):
        self.kind, self.data, self.roll_mode = kind, data, roll_mode
        self.inputs = (9,) if kind == "humanisation" else (dd.N_KEYS,) * len(dd.FAMILIES)

    def size(self, split: str) -> int:
        return self.data.size(split)

    def batch(self, split: str, idx, transpose_rng=None, max_shift: int = 0) -> tuple:
        """``transpose_rng``: transpose each window's rolls by a random number of semitones in
        [-max_shift, max_shift] (the drums do not change when the band changes key)."""
        hvo = self.data.hvo(split, idx)
        if self.kind == "humanisation":
            return np.ascontiguousarray(hvo[:, None, :, :K]), hvo
        x = self.data.inputs(split, idx, self.roll_mode)
        if transpose_rng is not None and max_shift > 0:
            x = transpose(x, transpose_rng.integers(-max_shift, max_shift + 1, len(x)))
        return x, hvo


def transpose(x, shifts) -> np.ndarray:
    """Shift rolls (B, E, T, keys) by ``shifts[b]`` keys (notes pushed off the keyboard drop)."""
    out = np.zeros_like(x)
    for b, s in enumerate(shifts):
        if s > 0:
            out[b, ..., s:] = x[b, ..., :-s]
        elif s < 0:
            out[b, ..., :s] = x[b, ..., -s:]
        else:
            out[b] = x[b]
    return out


def load_task(kind: str, args, log=print) -> Task:
    progress = getattr(args, "progress", False)
    if kind == "humanisation":
        data = dd.load_groove(args.groove_data, cache=args.cache, use_cache=not args.no_cache,
                              progress=progress, log=log, bars=args.bars, hop_bars=args.hop_bars,
                              limit=args.limit)
    else:
        data = dd.load_lakh(args.data, cache=args.cache, use_cache=not args.no_cache,
                            progress=progress, log=log, bars=args.bars, hop_bars=args.hop_bars,
                            limit=args.limit)
    for s in dd.SPLITS:
        if data.size(s) == 0:
            raise ValueError(f"{kind}: the {s} split has no windows (too few files: raise --limit)")
    return Task(kind, data, getattr(args, "roll_mode", "onset"))


# ==============================================================================================
# Training
# ==============================================================================================
METRIC_FIELDS = ["epoch", "stage", "train_loss", "train_note", "train_velocity", "train_offset",
                 "train_kl", "val_loss", "val_note", "val_velocity", "val_offset", "val_kl",
                 "val_f1", "lr", "windows_per_s", "elapsed_s"]


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
        self.model, self.task, self.run_dir, self.hp, self.log = model, task, run_dir, hp, log
        os.makedirs(run_dir, exist_ok=True)
        self.loss_fn = dmod.DrumLoss(dmod.LossConfig(
            pos_weight=hp["pos_weight"], w_velocity=hp["w_velocity"], w_offset=hp["w_offset"],
            beta=hp["beta"], free_bits=hp["free_bits"]))
        self.opt = nn.optim.Adam(model.parameters(), lr=hp["lr"])
        self.stages = make_stages(model, hp["schedule"], hp["stage_epochs"], hp["epochs"], hp["lr"],
                                  hp["ft_lr_factor"])
        self.early = nn.optim.EarlyStopping(patience=hp["patience"])
        self.state = {"stage": 0, "stage_epoch": 0, "batch": 0, "epoch": 0, "step": 0,
                      "elapsed": 0.0, "best_val": float("inf"), "partial": None}
        self.history: list = []
        self.metrics_csv = os.path.join(run_dir, "metrics.csv")
        self.extra_arrays: dict = {}

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
                   "rng": nn.get_rng("cpu").get_state(), "early": self.early.state_dict()},
            arrays=self.extra_arrays)
        return path

    def restore(self, path: str) -> None:
        ck = nn.load_checkpoint(path, self.model, self.opt)
        self.state = ck.extra["state"]
        self.history = ck.extra["history"]
        nn.get_rng("cpu").set_state(ck.extra["rng"])
        self.early.load_state_dict(ck.extra["early"])

    def _write_metrics(self, row: dict) -> None:
        new = not os.path.exists(self.metrics_csv)
        with open(self.metrics_csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k) for k in METRIC_FIELDS})

    # -- one step --------------------------------------------------------------------------------
    def train_step(self, idx) -> tuple:
        # the augmentation's generator depends on (seed, epoch, batch) only: resuming is exact
        rng = np.random.default_rng((self.hp["seed"], self.state["epoch"], self.state["batch"]))
        x, hvo = self.task.batch("train", idx, rng, self.hp.get("transpose", 0))
        out = self.model(x, hvo)
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
        from tqdm import tqdm  # noqa: PLC0415

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
                    self.early = nn.optim.EarlyStopping(patience=self.hp["patience"])
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
        nt = max(tot["n"], 1)
        row = {"epoch": self.state["epoch"] + 1, "stage": stage,
               **{f"train_{k}": round(tot.get(k, 0.0) / nt, 6)
                  for k in ("loss", "note", "velocity", "offset", "kl")},
               **{f"val_{k}": round(val[k], 6)
                  for k in ("loss", "note", "velocity", "offset", "kl")},
               "val_f1": round(val["f1"], 5), "lr": self.opt.lr,
               "windows_per_s": round(nt / max(tot["seconds"], 1e-9), 1),
               "elapsed_s": round(self.state["elapsed"], 1)}
        self.history.append(row)
        self._write_metrics(row)
        plot_curves(self.history, os.path.join(self.run_dir, "curves.png"), self.task.kind)
        self.log(f"epoch {row['epoch']} [{stage}]: train {row['train_loss']:.4f} (note "
                 f"{row['train_note']:.4f}, vel {row['train_velocity']:.4f}, off "
                 f"{row['train_offset']:.4f}, KL {row['train_kl']:.2f})  val {row['val_loss']:.4f} "
                 f"(note {row['val_note']:.4f}, vel {row['val_velocity']:.4f}, off "
                 f"{row['val_offset']:.4f})  val F1 {row['val_f1']:.4f}  lr {self.opt.lr:.1e}  "
                 f"{row['windows_per_s']:.0f} windows/s")
        self.state.update(epoch=self.state["epoch"] + 1, stage_epoch=self.state["stage_epoch"] + 1,
                          batch=0, partial=None)
        final_stage = self.state["stage"] == len(self.stages) - 1
        stop = self.early.step(val["loss"]) if final_stage else False
        if val["loss"] < self.state["best_val"]:
            self.state["best_val"] = val["loss"]
            self.save("best.npz")
        self.save("last.npz")
        return stop


def plot_curves(history: list, path: str, kind: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if not history:
        return
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.plot(ep, [h["val_loss"] for h in history], "o-", label="val loss (teacher forcing)")
    a.plot(ep, [h["val_note"] for h in history], "--", label="val note (BCE)")
    prev, top = None, max(max(h["train_loss"], h["val_loss"]) for h in history)
    for h in history:
        if h["stage"] != prev:
            a.axvline(h["epoch"] - 0.5, color="grey", lw=0.5)
            a.text(h["epoch"] - 0.4, top, h["stage"], rotation=90, fontsize=7, va="top")
            prev = h["stage"]
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(fontsize=8), a.grid(alpha=0.3)
    b.plot(ep, [h["val_velocity"] for h in history], label="val velocity MSE (hits)")
    b.plot(ep, [h["val_offset"] for h in history], label="val timing MSE (hits)")
    b2 = b.twinx()
    b2.plot(ep, [h["val_f1"] for h in history], "g--", label="val hit F1")
    b2.set_ylim(0, 1)
    b.set_xlabel("epoch")
    b.legend(loc="upper left", fontsize=8)
    b2.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"drum {kind} model")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# Reading a run's checkpoints back
# ----------------------------------------------------------------------------------------------
def load_model(path: str) -> tuple:
    """(DrumVAE in eval mode, checkpoint) from a best.npz / last.npz of this app."""
    ck = nn.load_checkpoint(path)
    if ck.config.get("app") != APP or "model" not in ck.config:
        raise nn.CheckpointError(f"{path}: not a {APP} checkpoint")
    model = dmod.DrumVAE(dmod.DrumConfig.from_json(ck.config["model"]))
    model.load_state_dict(ck.model)
    model.eval()
    return model, ck

