"""Training the ABC character LSTM: presets, the validation score, the progress bar, the
Trainer (AdamW, clipping, ReduceLROnPlateau, early stopping, exact resume) and the ``train`` and
``run`` commands.

A run folder (runs/<timestamp>/ by default) receives data/ (the prepared text, unless
--data-dir names one), metrics.csv (one row per evaluation), curves.png, best.npz (lowest
validation cross-entropy), last.npz (the latest evaluation, or Ctrl-C; ``--resume`` continues
it exactly: weights, optimizer, schedules and the window sampler's generator), summary.json,
and for the ``run`` command samples.abc and sample_NN.mid.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict

from tqdm import tqdm

import nnscratch as nn
from apps.common.errors import InputError, rebuild_from
from apps.common.interrupt import DeferredInterrupt
from apps.common.runs import (
    RUNS_ROOT,
    Line,
    MetricsLog,
    Panel,
    make_run_dir,
    plot_curves,
    timestamp,
    update_summary,
    write_summary,
)

from .data import (
    IGNORE,
    StreamSampler,
    WindowSampler,
    default_data_path,
    load_prepared,
    prepare,
    tune_batches,
)
from .data import val_tunes as encode_val_tunes
from .model import ModelConfig, MusicRNN
from .sample import sample_tunes

PRESETS = {
    # the main job's default: the setting that reached the lowest validation cross-entropy in a
    # 15-minute budget on a 2-core CPU (docs/benchmarks.md, "the main job's model"): many small
    # steps (batch 16 x 128 characters), little dropout, lr 3e-3 decayed in a straight line to 0
    # (0.9997 in 15 minutes against 1.0007 with a cosine; a 4e-3 peak, best at 3,500 steps, lost)
    "main": dict(embedding=128, hidden=256, layers=2, dropout=0.1, batch=16, seq=128, lr=3e-3,
                 weight_decay=1e-5, schedule="linear"),
    # the earlier default: the same model in fewer, larger steps
    "cpu": dict(embedding=128, hidden=256, layers=2, dropout=0.2, batch=32, seq=256, lr=2e-3,
                weight_decay=1e-5),
    # seed report 004's first model
    "seed": dict(embedding=256, hidden=512, layers=2, dropout=0.3, batch=64, seq=256, lr=5e-4,
                 weight_decay=1e-5),
    # the seed's tuned configuration, meant for a GPU
    "large": dict(embedding=256, hidden=768, layers=3, dropout=0.3, batch=64, seq=256, lr=5e-4,
                  weight_decay=1e-5),
}
MODEL_KEYS = ("embedding", "hidden", "layers", "dropout", "batch", "seq", "lr", "weight_decay",
              "forget_bias")
METRIC_FIELDS = ["step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                 "tokens_per_s", "elapsed_s"]


def hyperparameters(args) -> dict:
    """The preset named by --preset, with the flags that override it, plus the loop's settings."""
    hp = dict(PRESETS[args.preset])
    for k in MODEL_KEYS:
        v = getattr(args, k, None)
        if v is not None:
            hp[k] = v
    hp.update(preset=args.preset, seed=args.seed, clip=args.clip, patience=args.patience,
              lr_patience=args.lr_patience, warmup=args.warmup,
              schedule=args.schedule or hp.pop("schedule", "cosine"))
    if getattr(args, "stateful", None) is not None:
        hp["stateful"] = args.stateful
    return hp


def evaluate(model: MusicRNN, tunes_ids: list, batch_tunes: int = 32) -> tuple[float, float]:
    """Mean cross-entropy (nats per character) and accuracy over every predicted character of
    every tune (a list of (L_i,) id arrays), each tune teacher-forced from a zero state."""
    xp = nn.backend.xp_for()
    total_nll, total_correct, total_n = 0.0, 0, 0
    was_training = model.training
    model.eval()
    loss_fn = nn.SoftmaxCrossEntropyLoss(ignore_index=IGNORE, reduction="sum")
    with nn.no_grad():
        for x, y in tune_batches(tunes_ids, batch_tunes):
            logits, _ = model(xp.asarray(x))  # (b, L, V)
            yt = xp.asarray(y)
            total_nll += loss_fn(logits, yt)
            mask = yt != IGNORE
            total_correct += int(((logits.argmax(-1) == yt) & mask).sum())
            total_n += int(mask.sum())
    model.train(was_training)
    return total_nll / total_n, total_correct / total_n


# ----------------------------------------------------------------------------------------------
# Progress: towards the time budget when there is one, else towards the step cap
# ----------------------------------------------------------------------------------------------
def bar_position(step: int, elapsed_s: float, max_steps: int, start_step: int = 0,
                 budget_s: float | None = None) -> float:
    """Where the progress bar stands, in its own units: steps without a time budget; with one,
    seconds of the budget.

    With a budget the run ends at whichever comes first, the budget or ``max_steps``, so the bar
    stands at the larger of the two shares done: it fills exactly when the run ends, and its ETA
    is the budget's remaining time (the main job's 100,000-step cap is never the limit; counted
    in steps it showed an ETA of 17 to 19 hours for a 15-minute run).
    """
    if not budget_s:
        return step
    by_time = elapsed_s / budget_s
    by_steps = (step - start_step) / max(max_steps - start_step, 1)
    return budget_s * min(1.0, max(by_time, by_steps))


class Progress:
    """The training bar (tqdm): seconds of the budget, or steps; step, loss, accuracy, tokens/s
    and lr in the postfix."""

    TIME_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                   "[{elapsed}<{remaining}{postfix}]")

    def __init__(self, max_steps: int, start_step: int, budget_s: float | None, t0: float,
                 enabled: bool = True, file=None):
        self.max_steps, self.start_step = max_steps, start_step
        self.budget_s, self.t0 = budget_s, t0  # t0: time.monotonic() when the run started
        if budget_s:
            self.bar = tqdm(total=budget_s, disable=not enabled, unit="s", dynamic_ncols=True,
                            desc="train", bar_format=self.TIME_FORMAT, file=file)
        else:
            self.bar = tqdm(total=max_steps, initial=start_step, disable=not enabled,
                            unit="step", dynamic_ncols=True, desc="train", file=file)

    def update(self, step: int, loss: float, acc: float, tokens_per_s: float, lr: float) -> None:
        pos = bar_position(step, time.monotonic() - self.t0, self.max_steps, self.start_step,
                           self.budget_s)
        self.bar.update(pos - self.bar.n)
        # in this order (tqdm sorts keyword arguments); counted in steps, the bar shows the step
        shown = {"step": step} if self.budget_s else {}
        shown.update(loss=f"{loss:.3f}", acc=f"{acc:.3f}", tok_s=f"{tokens_per_s:,.0f}",
                     lr=f"{lr:.1e}")
        self.bar.set_postfix(shown)

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def plot_abc_curves(rows: list[dict], png: str) -> str | None:
    """Cross-entropy and accuracy, train and validation, against the step (rows of metrics.csv)."""
    step = [r["step"] for r in rows]

    def col(name):
        return [r[name] for r in rows]

    return plot_curves(png, "ABC character LSTM", [
        Panel("cross-entropy (nats / char)", [
            Line("train (mean since last eval)", step, col("train_loss")),
            Line("validation", step, col("val_loss"), "o-")]),
        Panel("next-character accuracy", [
            Line("train", step, col("train_acc")), Line("validation", step, col("val_acc"), "o-")]),
    ], dpi=110)


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------
class Trainer:
    """Owns the model, optimizer, schedules, data sampler and run folder of one training run."""

    def __init__(self, run_dir: str, train_text: str, val_text: str, vocab, hp: dict, log=print,
                 data_dir: str | None = None):
        self.run_dir = make_run_dir(run_dir)
        self.hp, self.log, self.vocab = hp, log, vocab
        self.data_dir = os.path.abspath(data_dir) if data_dir else None
        nn.manual_seed(hp["seed"])
        self.cfg = ModelConfig(len(vocab), hp["embedding"], hp["hidden"], hp["layers"],
                               hp["dropout"], hp.get("forget_bias", 0.0))
        self.model = MusicRNN(self.cfg)
        self.train_ids, _ = vocab.encode(train_text)
        self.val_tunes = encode_val_tunes(val_text, vocab)
        # stateful: streams read in order, the state carried between windows (truncated BPTT);
        # otherwise independent random windows, each from a zero state
        self.stateful = bool(hp.get("stateful", False))
        sampler = StreamSampler if self.stateful else WindowSampler
        self.sampler = sampler(self.train_ids, hp["batch"], hp["seq"], seed=hp["seed"])
        self.carry = None  # the streams' state (h, c), each (layers, batch, hidden)
        self.opt = nn.optim.AdamW(self.model.parameters(), lr=hp["lr"],
                                  weight_decay=hp["weight_decay"])
        self.plateau = nn.optim.ReduceLROnPlateau(self.opt, factor=0.5,
                                                  patience=hp["lr_patience"],
                                                  min_lr=hp["lr"] / 100)
        # "cosine" (to lr / 50) or "linear" (to 0) decay the lr over the run's budget (time or
        # steps); older runs: "plateau"
        self.schedule = hp.get("schedule", "plateau")
        self.cosine = nn.optim.WarmupCosine(
            self.opt, warmup=hp.get("warmup", 0),
            **(dict(shape="linear", final_ratio=0.0) if self.schedule == "linear" else {}))
        self.early = nn.optim.EarlyStopping(patience=hp["patience"])
        self.loss_fn = nn.SoftmaxCrossEntropyLoss()
        self.step = 0
        self.losses: list[float] = []  # training loss of each step run by this process
        self.elapsed = 0.0   # seconds spent in training steps
        self.wall = 0.0      # seconds of the whole run (steps, evaluations, checkpoints)
        self.best_val = float("inf")
        self.metrics = MetricsLog(os.path.join(self.run_dir, "metrics.csv"), METRIC_FIELDS)

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self, name: str) -> str:
        path = os.path.join(self.run_dir, name)
        nn.save_checkpoint(
            path, self.model, self.opt,
            config={"model": asdict(self.cfg), "vocab": self.vocab.to_json(), "hp": self.hp,
                    "data_dir": self.data_dir},
            extra={"step": self.step, "elapsed": self.elapsed, "wall": self.wall,
                   "best_val": self.best_val, "sampler": self.sampler.state(),
                   "rng": nn.backend.rng_state(), "plateau": self.plateau.state_dict(),
                   "cosine": self.cosine.state_dict(), "early": self.early.state_dict()},
            arrays=({"carry_h": nn.to_cpu(self.carry[0]), "carry_c": nn.to_cpu(self.carry[1])}
                    if self.carry is not None else None))
        return path

    def restore(self, path: str) -> None:
        ck = nn.load_checkpoint(path, self.model, self.opt)
        ex = ck.extra
        self.step, self.elapsed, self.best_val = ex["step"], ex["elapsed"], ex["best_val"]
        self.sampler.set_state(ex["sampler"])
        nn.backend.set_rng_state(ex["rng"])
        self.plateau.load_state_dict(ex["plateau"])
        self.early.load_state_dict(ex["early"])
        self.wall = ex.get("wall", self.elapsed)
        if "cosine" in ex:
            self.cosine.load_state_dict(ex["cosine"])
        if "carry_h" in ck.arrays:
            self.carry = (nn.to_device(ck.arrays["carry_h"]), nn.to_device(ck.arrays["carry_c"]))

    # -- one step ---------------------------------------------------------------------------------
    def train_step(self) -> tuple[float, float]:
        """One AdamW step on a (batch, seq) window; returns its loss and accuracy."""
        xp = nn.backend.xp_for()
        if self.stateful:
            x, y, fresh = self.sampler.next()
            if self.carry is not None and fresh.any():   # rows that start afresh: zero state
                keep = xp.asarray(~fresh, dtype=self.carry[0].dtype)[None, :, None]
                self.carry = (self.carry[0] * keep, self.carry[1] * keep)
        else:
            x, y = self.sampler.next()
        x, y = xp.asarray(x), xp.asarray(y)
        logits, state = self.model(x, self.carry)  # (batch, seq, V); the final state
        if self.stateful:   # a copy: the layer may reuse its buffers at the next step
            self.carry = (state[0].copy(), state[1].copy())
        loss = self.loss_fn(logits, y)
        acc = float((logits.argmax(-1) == y).mean())
        self.model.backward(self.loss_fn.backward())
        nn.optim.clip_grad_norm(self.model.parameters(), self.hp["clip"])
        self.opt.step()
        self.opt.zero_grad()
        self.step += 1
        self.losses.append(loss)
        return loss, acc

    def evaluate(self) -> tuple[float, float]:
        return evaluate(self.model, self.val_tunes)

    def progress(self, max_steps: int, budget_s: float | None) -> float:
        """The share of the run done, 0 to 1: the larger of steps over ``max_steps`` and wall
        time over the time budget (whichever ends the run first)."""
        by_steps = self.step / max(max_steps, 1)
        return max(by_steps, self.wall / budget_s) if budget_s else by_steps

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, max_steps: int, max_minutes: float | None, eval_every: int,
            progress: bool = True) -> dict:
        """Train up to ``max_steps`` (counted from 0, so a resumed run goes on to it), stopping
        early at ``max_minutes`` of wall time (0 or None: no limit; a resumed run counts the
        time it already spent), early stopping or Ctrl-C. With the linear or cosine schedule, the lr
        follows the share of the budget spent: time when there is a time budget, else steps."""
        tokens_per_step = self.hp["batch"] * self.hp["seq"]
        t_start = time.monotonic()
        wall0 = self.wall
        budget_s = 60 * max_minutes if max_minutes else None
        deadline = None if budget_s is None else t_start + budget_s - wall0
        bar = Progress(max_steps, self.step, budget_s, t_start, enabled=progress)
        window_loss, window_acc, window_n, window_t0 = 0.0, 0.0, 0, time.perf_counter()
        last_tps = 0.0
        stop_reason = "steps"
        last_val = (float("nan"), float("nan"))
        interrupted = DeferredInterrupt()
        try:
            while self.step < max_steps and not interrupted.requested:
                if self.schedule in nn.optim.WarmupCosine.SHAPES:
                    self.cosine.step(self.progress(max_steps, budget_s), self.step)
                t0 = time.perf_counter()
                loss, acc = self.train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                self.wall = wall0 + time.monotonic() - t_start
                window_loss += loss
                window_acc += acc
                window_n += 1
                last_tps = tokens_per_step / dt
                bar.update(self.step, loss, acc, last_tps, self.opt.lr)
                timed_out = deadline is not None and time.monotonic() >= deadline
                if self.step % eval_every == 0 or self.step == max_steps or timed_out:
                    wall = time.perf_counter() - window_t0
                    val_loss, val_acc = self.evaluate()
                    last_val = (val_loss, val_acc)
                    row = {"step": self.step,
                           "epoch": round(self.step / self.sampler.steps_per_epoch, 4),
                           "train_loss": round(window_loss / window_n, 5),
                           "train_acc": round(window_acc / window_n, 5),
                           "val_loss": round(val_loss, 5), "val_acc": round(val_acc, 5),
                           "lr": self.opt.lr,
                           "tokens_per_s": round(window_n * tokens_per_step / wall, 1),
                           "elapsed_s": round(self.elapsed, 1)}
                    self.metrics.append(row)
                    plot_abc_curves(self.metrics.rows(), os.path.join(self.run_dir, "curves.png"))
                    if self.schedule == "plateau":
                        self.plateau.step(val_loss)
                    stop = self.early.step(val_loss)
                    if val_loss < self.best_val:
                        self.best_val = val_loss
                        self.save("best.npz")
                    self.save("last.npz")
                    bar.write(f"step {self.step}: train {row['train_loss']:.4f} / "
                              f"{row['train_acc']:.3f}  val {val_loss:.4f} / {val_acc:.3f}  "
                              f"lr {self.opt.lr:.1e}  {row['tokens_per_s']:,.0f} tok/s")
                    window_loss, window_acc, window_n = 0.0, 0.0, 0
                    window_t0 = time.perf_counter()
                    if stop:
                        stop_reason = "early stopping"
                        break
                    if timed_out:
                        stop_reason = "time limit"
                        break
        finally:
            interrupted.restore()
            bar.close()
        if interrupted.requested:
            path = self.save("last.npz")
            self.log(f"\ninterrupted at step {self.step}: saved {path}; continue with "
                     f"--resume {path}")
            stop_reason = "interrupted"
        return {"stop_reason": stop_reason, "step": self.step, "val_loss": last_val[0],
                "val_acc": last_val[1], "best_val_loss": self.best_val,
                "tokens_per_s_last": last_tps,
                "tokens_per_s_mean": self.step * tokens_per_step / max(self.elapsed, 1e-9)}


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
def train(args, log=print) -> dict:
    """The ``train`` command's work; returns the summary written to summary.json."""
    if args.resume:
        ck = nn.load_checkpoint(args.resume)
        hp = rebuild_from(args.resume, ck.config, lambda c: dict(c["hp"]), "ABC LSTM",
                          needs=("hp", "model", "vocab"))
        run_dir = args.out or os.path.dirname(os.path.abspath(args.resume))
        data_dir = ck.config.get("data_dir") or os.path.join(run_dir, "data")
        if not os.path.exists(os.path.join(data_dir, "train.txt")):
            raise nn.CheckpointError(f"--resume: the run's prepared data is gone ({data_dir} has "
                                     "no train.txt); prepare it again with `prepare --out` there")
    else:
        hp = hyperparameters(args)
        # the folder itself is made by the Trainer: bad data leaves no empty run folder behind
        run_dir = args.out or os.path.join(RUNS_ROOT, timestamp())
        data_dir = args.data_dir or os.path.join(run_dir, "data")
    new_run = not os.path.exists(run_dir)
    try:
        if not args.resume and not args.data_dir:
            prepare(args.data or default_data_path(), data_dir, log)
        train_text, val_text, vocab = load_prepared(data_dir)
        trainer = Trainer(run_dir, train_text, val_text, vocab, hp, log, data_dir=data_dir)
    except InputError:
        if new_run and os.path.isdir(run_dir):   # refused before training: leave no debris
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if args.resume:
        trainer.restore(args.resume)
        log(f"resumed from {args.resume} at step {trainer.step}")
    log(f"model: {trainer.model.num_parameters():,} parameters ({hp['preset']} preset: "
        f"embedding {hp['embedding']}, {hp['layers']} x LSTM {hp['hidden']}, dropout "
        f"{hp['dropout']}, batch {hp['batch']} x {hp['seq']}); "
        f"{trainer.sampler.steps_per_epoch:.0f} steps per epoch; device {nn.get_device()}")
    result = trainer.run(args.steps, args.max_minutes, args.eval_every, progress=not args.quiet)
    summary = {"run_dir": run_dir, "preset": hp["preset"], "hyperparameters": hp,
               "parameters": trainer.model.num_parameters(), "device": nn.get_device(),
               "steps": result["step"], "stop_reason": result["stop_reason"],
               "val_cross_entropy": result["val_loss"], "val_accuracy": result["val_acc"],
               "best_val_cross_entropy": result["best_val_loss"],
               "tokens_per_s": round(result["tokens_per_s_mean"], 1),
               "train_seconds": round(trainer.elapsed, 1),
               "files": sorted(os.listdir(run_dir))}
    write_summary(run_dir, summary)
    log(f"done ({result['stop_reason']}) at step {result['step']}: val cross-entropy "
        f"{result['val_loss']:.4f} nats/char, accuracy {result['val_acc']:.4f}, "
        f"{summary['tokens_per_s']:,.0f} tokens/s; files in {run_dir}")
    return summary


def train_cmd(args) -> int:
    """The ``train`` command: 130 when Ctrl-C stopped it (after saving last.npz), else 0."""
    return 130 if train(args)["stop_reason"] == "interrupted" else 0


def main_job(args) -> int:
    """The ``run`` command (and no command): train, then sample ``--samples`` tunes from best.npz
    into the same run folder, and add their report to summary.json under "samples"."""
    args.out = args.out or os.path.join(RUNS_ROOT, timestamp())
    summary = train(args)
    if summary["stop_reason"] == "interrupted":
        return 130
    report = sample_tunes(os.path.join(args.out, "best.npz"), args.out, args.samples, 0.8,
                          "X:1\n", args.seed + 1, meter_aware=args.meter_aware)
    update_summary(args.out, samples=report)
    return 0
