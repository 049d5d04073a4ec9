"""Drum accompaniment ("the drummer's algorithm", seed 001): given piano, guitar and bass, play
the drums, with human velocities and micro-timing.

    python apps/drum_accompaniment.py build-data                      # cache Lakh + Groove MIDI
    python apps/drum_accompaniment.py pretrain-groove --out runs/drums/groove
    python apps/drum_accompaniment.py train --pretrained runs/drums/groove/best.npz \\
        --out runs/drums/accomp                                        # layer-wise, then fine-tune
    python apps/drum_accompaniment.py evaluate --checkpoint runs/drums/accomp/best.npz
    python apps/drum_accompaniment.py accompany SONG.mid --checkpoint runs/drums/accomp/best.npz \\
        --out OUT.mid --candidates 4 --rank template

Data (apps/music/drum_dataset.py): 8-bar windows of the 4/4 sections of the Lakh (Beatles)
files with drums, piano, guitar and bass (``--data`` / NNSCRATCH_DATA_LAKH), split by song;
Groove MIDI's 4/4 performances for the humanisation pretraining (``--groove-data`` /
NNSCRATCH_DATA_GROOVE). Model and loss: apps/drum_model.py, docs/derivations/drum_vae.md.

* ``pretrain-groove``: GrooVAE's humanisation task (an encoder over the hits H, the same
  bottleneck, conductor, decoder and heads): from H, predict V and O. Reports velocity and
  timing errors on the Groove test split against the constant baseline (mean velocity, zero
  offset) and a per-class-mean baseline.
* ``train``: the seed's layer-wise schedule: one group of layers trained at a time, from the
  output towards the input (heads, decoder, decoder-state layer, conductor, bottleneck,
  merge, encoder LSTMs, encoder convolutions; ``--stage-epochs`` each), then everything
  fine-tuned at ``--lr * --ft-lr-factor`` with early stopping. ``--schedule joint`` trains
  everything from the start. ``--pretrained`` loads the groove model's decoder side first.
  Against overfitting (143 training songs): each training window is transposed by up to
  ``--transpose`` 5 semitones (the drums do not change with the key), dropout 0.3 on the
  decoder's outputs, and 30 % of the teacher-forced previous steps hidden (``--input-dropout``).
* ``evaluate``: test-set hit accuracy, precision, recall, F1, velocity and timing MSE, under
  teacher forcing (the seed's table was measured so) and free-running, beside the
  drum-machine beat, the nearest training beat (nearest by the inputs' rhythm) and the seed.
* ``accompany``: any length; the song's 4/4 sections in 8-bar windows (``--mode windows``,
  each window continuing from the last one's final step) or one code per section with the
  conductor over all its 2-bar sub-sequences (``--mode whole``); ``--candidates`` drums per
  window ranked by distance to the training set's typical beat (``--rank template``, the
  seed's discriminant) or by the model's own likelihood (``--rank likelihood``). Writes the
  original file's tracks (its drums removed unless ``--keep-drums``) plus the new drum track
  on channel 10.

Every run folder gets metrics.csv, curves.png, best.npz / last.npz (``--resume`` continues
exactly), summary.json; Ctrl-C stops after the current batch and saves last.npz.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps import drum_model as dmod  # noqa: E402
from apps.music import drum_dataset as dd  # noqa: E402
from apps.music import groove, midi  # noqa: E402

APP = "drum_accompaniment"
K = dmod.K
#: the seed report's held-out table (section 5.1), for comparison
SEED_TABLE = {"accuracy": 0.9178, "precision": 0.6382, "recall": 0.7764, "note_loss": 0.3437,
              "velocity_mse": 0.0210, "timing_mse": 0.0054}
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


class _DeferredInterrupt:
    """First Ctrl-C: stop after the current batch and save; second: interrupt at once."""

    def __init__(self):
        import signal  # noqa: PLC0415

        self.requested = False
        self._signal = signal
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not in the main thread
            self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this batch and saving last.npz (Ctrl-C again to abort)",
              file=sys.stderr)

    def restore(self) -> None:
        if self._previous is not None:
            self._signal.signal(self._signal.SIGINT, self._previous)


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
        interrupted = _DeferredInterrupt()
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
    return dmod.drum_metrics(pred["H"], pred["V"], pred["O"], pred["hvo"], pred.get("v_raw"),
                             pred.get("o_raw"))


def note_loss(pred: dict, pos_weight: float) -> float:
    """The weighted BCE (10) of hit probabilities against the targets."""
    p = np.clip(pred["p"].astype(np.float64), 1e-7, 1 - 1e-7)
    H = pred["hvo"][..., :K]
    return float(-(pos_weight * H * np.log(p) + (1 - H) * np.log(1 - p)).mean())


def rock_baseline(hvo) -> dict:
    """The drum machine: ROCK_BAR on every window, velocity 100 everywhere, no offsets."""
    B, T, _ = hvo.shape
    H, _, _ = groove.rock_beat(T)
    H = np.broadcast_to(H, (B, T, K))
    return {"H": H, "V": np.full((B, T, K), 100 / 127), "O": np.zeros((B, T, K)), "hvo": hvo,
            "v_raw": np.full((B, T, K), 100 / 127), "o_raw": np.zeros((B, T, K))}


def rhythm_features(data: dd.DrumData, split: str) -> np.ndarray:
    """Each window's input rhythm: onsets per step and family (T * 3), unit length."""
    onsets = (data.rolls == 2).sum(axis=-1).astype(np.float32)          # (S, 3)
    rows = data.windows[split][:, None] + np.arange(data.steps)
    f = onsets[rows].reshape(len(rows), -1)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)


def nearest_baseline(data: dd.DrumData, split: str, by: str = "inputs") -> dict:
    """Copy the nearest training window's drums: nearest by the inputs' rhythm (cosine of the
    per-step onset counts of piano, guitar and bass: a fair baseline), or by the target hits
    (``by='hits'``: an oracle that sees the answer, a reference for V and O only)."""
    tr_idx = np.arange(data.size("train"))
    if by == "inputs":
        a, b = rhythm_features(data, "train"), rhythm_features(data, split)
    else:
        def hf(s):
            h = data.hvo(s, np.arange(data.size(s)))[..., :K].reshape(data.size(s), -1)
            return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-6)
        a, b = hf("train"), hf(split)
    nearest = np.concatenate([np.argmax(b[s:s + 256] @ a.T, axis=1) for s in range(0, len(b), 256)])
    src = data.hvo("train", tr_idx[nearest])
    hvo = data.hvo(split, np.arange(data.size(split)))
    return {"H": src[..., :K], "V": src[..., K:2 * K], "O": src[..., 2 * K:], "hvo": hvo}


THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


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


def evaluate_accompaniment(model, task: Task, hp: dict, thresholds: dict | None = None,
                           log=print) -> dict:
    """Test metrics of the model (teacher-forced and free-running) and the baselines, beside
    the seed's. Hit thresholds are chosen on validation (best F1; ``thresholds`` {'tf', 'free'}
    overrides them); the teacher-forced model is also reported at 0.5 and at the
    recall-matched threshold (``choose_thresholds``), with a threshold sweep on the test set
    for information."""
    thresholds = dict(thresholds or {})
    sweeps_val = {m: threshold_sweep(model, task, "val", m) for m in ("tf", "free")}
    chosen = {m: choose_thresholds(sweeps_val[m]) for m in ("tf", "free")}
    for mode in ("tf", "free"):
        if thresholds.get(mode) is None:
            thresholds[mode] = chosen[mode]["f1"]
    log("validation F1 by hit threshold: teacher forcing "
        + ", ".join(f"{t}: {v['f1']:.3f}" for t, v in sweeps_val["tf"].items())
        + "; free-running "
        + ", ".join(f"{t}: {v['f1']:.3f}" for t, v in sweeps_val["free"].items()))
    tf = predict(model, task, "test", "tf", thresholds["tf"])
    free = predict(model, task, "test", "free", thresholds["free"])
    at = lambda t: metrics_of({**tf, "H": (tf["p"] > t).astype(np.float32)})  # noqa: E731
    res = {"test_windows": task.size("test"), "thresholds": thresholds,
           "threshold_recall_matched_tf": chosen["tf"]["recall"],
           "threshold_sweep_val": sweeps_val,
           "threshold_sweep_test": {m: threshold_sweep(model, task, "test", m)
                                    for m in ("tf", "free")},
           "model_teacher_forced": {**metrics_of(tf), "note_loss": note_loss(tf, hp["pos_weight"])},
           "model_teacher_forced_at_0.5": at(0.5),
           "model_teacher_forced_recall_matched": at(chosen["tf"]["recall"]),
           "model_free_running": metrics_of(free),
           "drum_machine": metrics_of(rock_baseline(tf["hvo"])),
           "nearest_training_beat_by_inputs":
               metrics_of(nearest_baseline(task.data, "test", "inputs")),
           "nearest_training_beat_by_hits_oracle":
               metrics_of(nearest_baseline(task.data, "test", "hits")),
           "seed": SEED_TABLE}
    return res


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


# ==============================================================================================
# Commands
# ==============================================================================================
def hyperparameters(args, kind: str) -> dict:
    return {"preset": args.preset, "lr": args.lr, "batch": args.batch, "epochs": args.epochs,
            "stage_epochs": args.stage_epochs, "schedule": args.schedule,
            "ft_lr_factor": args.ft_lr_factor, "patience": args.patience, "clip": args.clip,
            "pos_weight": args.pos_weight, "w_velocity": args.w_velocity, "w_offset": args.w_offset,
            "beta": args.beta, "free_bits": args.free_bits, "dropout": args.dropout,
            "input_dropout": args.input_dropout, "transpose": getattr(args, "transpose", 0),
            "seed": args.seed, "task": kind, "bars": args.bars, "hop_bars": args.hop_bars,
            "roll_mode": getattr(args, "roll_mode", "onset"), "limit": args.limit,
            "pretrained": (os.path.abspath(args.pretrained)
                           if getattr(args, "pretrained", None) else None)}


def _run_dir(args, sub: str) -> str:
    return args.out or os.path.join("runs", "drums", f"{sub}-{time.strftime('%Y%m%d-%H%M%S')}")


def fit(kind: str, args, log=print) -> tuple:
    """Build or resume a run of ``kind`` and train it; returns (trainer, stop reason)."""
    if args.resume:
        ck = nn.load_checkpoint(args.resume)
        if ck.config.get("app") != APP:
            raise nn.CheckpointError(f"{args.resume}: not a {APP} checkpoint")
        hp = ck.config["hp"]
        for k in ("bars", "hop_bars", "limit", "roll_mode"):
            setattr(args, k, hp[k])
        run_dir = args.out or os.path.dirname(os.path.abspath(args.resume))
        cfg = dmod.DrumConfig.from_json(ck.config["model"])
    else:
        hp = hyperparameters(args, kind)
        run_dir = _run_dir(args, "groove" if kind == "humanisation" else "accomp")
        cfg = None
    nn.manual_seed(hp["seed"])
    task = load_task(kind, args, log)
    if cfg is None:
        cfg = dmod.DrumConfig(inputs=task.inputs, dropout=hp["dropout"],
                              input_dropout=hp.get("input_dropout", 0.0),
                              **dmod.PRESETS[hp["preset"]])
    model = dmod.DrumVAE(cfg)
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
        copied = dmod.transfer_decoder(src, model)
        log(f"loaded the decoder side ({len(copied)} arrays: bottleneck, conductor, decoder-state "
            f"layer, decoder, heads) from {args.pretrained}")
    log(f"{kind} model: {model.num_parameters():,} parameters ({hp['preset']} preset); "
        f"{task.size('train')} training windows of {task.data.steps} steps; stages: "
        + ", ".join(f"{n} x{e}" for n, _, e, _ in trainer.stages))
    reason = trainer.run(args.max_minutes, progress=args.progress)
    return trainer, reason


def _finish(trainer, reason: str, results: dict, log=print) -> dict:
    files = sorted(os.listdir(trainer.run_dir))
    summary = {"app": APP, "task": trainer.task.kind, "run_dir": trainer.run_dir,
               "stop_reason": reason, "hyperparameters": trainer.hp,
               "model": trainer.model.cfg.to_json(), "parameters": trainer.model.num_parameters(),
               "data": trainer.task.data.summary(), "epochs": trainer.state["epoch"],
               "train_seconds": round(trainer.state["elapsed"], 1),
               "best_val_loss": trainer.state["best_val"], "history": trainer.history,
               **results, "files": files + ["summary.json"]}
    with open(os.path.join(trainer.run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=float)
    log(f"wrote summary.json and {len(files)} files to {trainer.run_dir}")
    return summary


def pretrain_groove(args, log=print) -> dict:
    trainer, reason = fit("humanisation", args, log)
    if reason == "interrupted" or not os.path.exists(os.path.join(trainer.run_dir, "best.npz")):
        return {"stop_reason": reason}
    model = load_model(os.path.join(trainer.run_dir, "best.npz"))[0]
    res = evaluate_humanisation(model, trainer.task, log)
    log_humanisation(res, log)
    return _finish(trainer, reason, {"humanisation": res}, log)


def log_humanisation(res: dict, log=print) -> None:
    log(f"humanisation on {res['test_windows']} Groove test windows ({res['test_hits']} hits): "
        "velocity MSE / timing MSE (steps^2) / velocity RMSE (MIDI) / timing RMSE (ms)")
    for name in ("model_teacher_forced", "model_free_running_given_hits", "constant_baseline",
                 "per_class_mean_baseline"):
        r = res[name]
        log(f"  {name:32s} {r['velocity_mse']:.4f}  {r['timing_mse']:.4f}  "
            f"{r['velocity_rmse_midi']:.1f}  {r['timing_rmse_ms']:.1f}")


def log_accompaniment(res: dict, log=print) -> None:
    log(f"test set: {res['test_windows']} windows; hit thresholds (chosen on validation) "
        f"{res['thresholds']['tf']} (teacher forcing, best F1), "
        f"{res['threshold_recall_matched_tf']} (teacher forcing, recall-matched) and "
        f"{res['thresholds']['free']} (free-running, best F1)")
    log(f"  {'':38s} {'acc':>7s} {'prec':>7s} {'recall':>7s} {'F1':>7s} {'velMSE':>7s} "
        f"{'timMSE':>7s} {'velMSEall':>9s} {'timMSEall':>9s}")
    for name in ("model_teacher_forced", "model_teacher_forced_at_0.5",
                 "model_teacher_forced_recall_matched", "model_free_running", "drum_machine",
                 "nearest_training_beat_by_inputs", "nearest_training_beat_by_hits_oracle"):
        r = res[name]
        log(f"  {name:38s} {r['accuracy']:7.4f} {r['precision']:7.4f} {r['recall']:7.4f} "
            f"{r['f1']:7.4f} {r['velocity_mse_hits']:7.4f} {r['timing_mse_hits']:7.4f} "
            f"{r['velocity_mse_all']:9.4f} {r['timing_mse_all']:9.4f}")
    s = res["seed"]
    log(f"  {'seed report (teacher forcing)':38s} {s['accuracy']:7.4f} {s['precision']:7.4f} "
        f"{s['recall']:7.4f} {'':7s} {s['velocity_mse']:7.4f} {s['timing_mse']:7.4f}")
    log(f"  model note loss (weighted BCE, teacher forcing): "
        f"{res['model_teacher_forced']['note_loss']:.4f} (seed: {s['note_loss']})")
    for mode, name in (("tf", "teacher forcing"), ("free", "free-running")):
        log(f"  test precision / recall by threshold ({name}, for information): "
            + ", ".join(f"{t}: {v['precision']:.3f}/{v['recall']:.3f}"
                        for t, v in res["threshold_sweep_test"][mode].items()))


def train_cmd(args, log=print) -> dict:
    trainer, reason = fit("accompaniment", args, log)
    if reason == "interrupted" or not os.path.exists(os.path.join(trainer.run_dir, "best.npz")):
        return {"stop_reason": reason}
    model, ck = load_model(os.path.join(trainer.run_dir, "best.npz"))
    res = evaluate_accompaniment(model, trainer.task, trainer.hp, log=log)
    log_accompaniment(res, log)
    # keep the chosen threshold with the model
    trainer_best = os.path.join(trainer.run_dir, "best.npz")
    nn.save_checkpoint(trainer_best, model, None,
                       config={**ck.config, "thresholds": res["thresholds"]},
                       extra=ck.extra, arrays=ck.arrays)
    plot_example(model, trainer.task, res["thresholds"]["free"],
                 os.path.join(trainer.run_dir, "example.png"))
    return _finish(trainer, reason, {"evaluation": res}, log)


def load_model(path: str) -> tuple:
    """(DrumVAE in eval mode, checkpoint) from a best.npz / last.npz of this app."""
    ck = nn.load_checkpoint(path)
    if ck.config.get("app") != APP or "model" not in ck.config:
        raise nn.CheckpointError(f"{path}: not a {APP} checkpoint")
    model = dmod.DrumVAE(dmod.DrumConfig.from_json(ck.config["model"]))
    model.load_state_dict(ck.model)
    model.eval()
    return model, ck


def evaluate_cmd(args, log=print) -> dict:
    model, ck = load_model(args.checkpoint)
    hp = ck.config["hp"]
    for k in ("bars", "hop_bars", "limit", "roll_mode"):
        setattr(args, k, hp[k])
    task = load_task(ck.config["task"], args, log)
    if ck.config["task"] == "humanisation":
        res = {"humanisation": evaluate_humanisation(model, task, log)}
        log_humanisation(res["humanisation"], log)
    else:
        thr = dict(ck.config.get("thresholds") or {})
        if args.threshold is not None:
            thr = {"tf": args.threshold, "free": args.threshold}
        res = {"evaluation": evaluate_accompaniment(model, task, hp, thr, log)}
        log_accompaniment(res["evaluation"], log)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                                   "evaluation.json")
    with open(out, "w") as f:
        json.dump({"checkpoint": args.checkpoint, **res}, f, indent=2, default=float)
    log(f"wrote {out}")
    return res


def plot_example(model, task: Task, threshold: float, path: str, window: int = 0) -> None:
    """Target and generated hits of one test window, velocity as colour."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

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
# accompany
# ----------------------------------------------------------------------------------------------
def _pad_steps(a, n: int, axis: int = 1):
    if a.shape[axis] >= n:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, n - a.shape[axis])
    return np.pad(a, pad)


def _rank(model, x, cand: dict, how: str, template) -> np.ndarray:
    """Scores of candidate drums (lower is better)."""
    H = cand["H"]
    if how == "template":
        T = H.shape[1] - H.shape[1] % groove.STEPS_PER_BAR or H.shape[1]
        return np.atleast_1d(groove.template_distance(H[:, :T], template))
    if how == "likelihood":
        hvo = np.concatenate([cand["H"], cand["V"], cand["O"]], axis=-1)
        S = model.cfg.sub_steps
        n = -(-hvo.shape[1] // S) * S
        return -model.log_likelihood([_pad_steps(a, n) for a in x], _pad_steps(hvo, n))
    raise ValueError(f"--rank must be 'template' or 'likelihood', got {how!r}")


def accompany_song(model, ck, song_path: str, out_path: str, threshold: float | None = None,
                   temperature: float = 0.0, candidates: int = 1, rank: str = "template",
                   mode: str = "windows", keep_drums: bool = False, seed: int = 0,
                   log=print) -> dict:
    """Generate drums for a song's 4/4 sections and write OUT.mid (see the module docstring)."""
    if ck.config.get("task") != "accompaniment":
        raise nn.CheckpointError(f"the checkpoint is a {ck.config.get('task')} model; accompany "
                                 "needs one trained by `train`")
    song = midi.read_midi(song_path)
    fams = dd.check_song(song, require="any", min_bars=1)
    missing = [f for f, notes in fams.items() if not notes]
    if missing:
        log(f"note: the song has no {' or '.join(missing)} part: the model hears silence there")
    roll_mode = ck.config.get("roll_mode", "onset")
    if threshold is None:
        threshold = (ck.config.get("thresholds") or {}).get("free", 0.5)
    template = ck.arrays.get("template")
    if template is None:
        template = groove.beat_template(groove.rock_beat(16)[0])
    n_total = int(np.ceil(song.length * groove.STEPS_PER_BEAT))
    rolls = dd.roll_input(dd.song_rolls(fams, n_total), roll_mode)       # (S, 3, 88)
    sections = [(s, e - (e - s) % groove.STEPS_PER_BAR) for s, e in dd.four_four_sections(song)]
    sections = [(s, e) for s, e in sections if e > s]
    rng = np.random.default_rng(seed)
    T = int(ck.config["hp"]["bars"]) * groove.STEPS_PER_BAR
    notes, report = [], {"sections": [], "candidates": candidates, "rank": rank, "mode": mode,
                         "threshold": threshold, "temperature": temperature}
    for s, e in sections:
        chunks = [(a, min(a + T, e)) for a in range(s, e, T)] if mode == "windows" else [(s, e)]
        prev = None
        for a, b in chunks:
            n = b - a
            pad = max(n, T) if mode == "windows" else n
            xs = [_pad_steps(rolls[a:b, i][None], pad) for i in range(rolls.shape[1])]
            xs = [np.repeat(xi, candidates, axis=0) for xi in xs]
            with nn.no_grad():
                mu, log_var = model.encode(xs)
            mu, log_var = nn.to_cpu(mu), nn.to_cpu(log_var)
            eps = rng.standard_normal(mu.shape).astype(mu.dtype)
            eps[0] = 0.0                                   # candidate 0: the most likely code
            z = mu + np.exp(0.5 * log_var) * eps
            start = None if prev is None else np.repeat(prev[None], candidates, axis=0)
            cand = model.generate(xs, pad, z=z, threshold=threshold, temperature=temperature,
                                  rng=rng, start=start)
            cand = {k: v[:, :n] for k, v in cand.items()}
            scores = _rank(model, [x[:, :n] for x in xs], cand, rank, template)
            best = int(np.argmin(scores))
            H, V, O = cand["H"][best], cand["V"][best], cand["O"][best]
            prev = np.concatenate([H[-1], V[-1], O[-1]])
            notes += groove.hvo_to_notes(H, V, O, start_beat=a / groove.STEPS_PER_BEAT)
            report["sections"].append({"start_bar": a // groove.STEPS_PER_BAR,
                                       "bars": n // groove.STEPS_PER_BAR, "hits": int(H.sum()),
                                       "chosen": best, "scores": [float(x) for x in scores]})
    write_with_drums(song_path, out_path, notes, keep_drums)
    bars = sum(x["bars"] for x in report["sections"])
    report.update(out=out_path, bars=bars, drum_notes=len(notes))
    log(f"wrote {out_path}: {len(notes)} drum notes over {bars} bars of 4/4 "
        f"({len(report['sections'])} window(s); {candidates} candidate(s) each, ranked by {rank})")
    return report


def write_with_drums(src: str, out: str, notes, keep_drums: bool = False) -> str:
    """Copy ``src``'s tracks (dropping its channel-10 notes unless ``keep_drums``) and append a
    drum track of ``notes`` on channel 10 (mido channel 9), at the file's own resolution."""
    import mido  # noqa: PLC0415

    mf = mido.MidiFile(src)
    tpb = mf.ticks_per_beat
    out_mf = mido.MidiFile(type=1, ticks_per_beat=tpb)
    end_tick = 0
    for tr in mf.tracks:
        new, carry, now = mido.MidiTrack(), 0, 0
        for msg in tr:
            now += msg.time
            if (not keep_drums and msg.type in ("note_on", "note_off")
                    and msg.channel == midi.DRUM_CHANNEL):
                carry += msg.time
                continue
            new.append(msg.copy(time=msg.time + carry))
            carry = 0
        end_tick = max(end_tick, now)
        out_mf.tracks.append(new)
    evs = []
    for n in notes:
        on = int(round(n.start * tpb))
        off = max(int(round(n.end * tpb)), on + 1)
        evs.append((on, 1, mido.Message("note_on", channel=midi.DRUM_CHANNEL, note=n.pitch,
                                        velocity=n.velocity)))
        evs.append((off, 0, mido.Message("note_off", channel=midi.DRUM_CHANNEL, note=n.pitch,
                                         velocity=0)))
    evs.sort(key=lambda e: (e[0], e[1]))
    drum = mido.MidiTrack([mido.MetaMessage("track_name", name="drums (nnscratch)", time=0)])
    now = 0
    for t, _, msg in evs:
        drum.append(msg.copy(time=t - now))
        now = t
    drum.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    out_mf.tracks.append(drum)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    out_mf.save(out)
    return out


def accompany_cmd(args, log=print) -> dict:
    model, ck = load_model(args.checkpoint)
    return accompany_song(model, ck, args.song, args.out, args.threshold, args.temperature,
                          args.candidates, args.rank, args.mode, args.keep_drums, args.seed, log)


def build_data_cmd(args, log=print) -> dict:
    out = {}
    for kind in ("accompaniment", "humanisation"):
        bars = 8 if kind == "accompaniment" else 4
        task = load_task(kind, argparse.Namespace(**{**vars(args), "bars": bars, "hop_bars": 2}),
                         log)
        out[kind] = task.data.summary()
    print(json.dumps(out, indent=2, default=str))
    return out


# ==============================================================================================
# CLI
# ==============================================================================================
def _data_args(p, bars: int, hop: int):
    p.add_argument("--data", help="lakh-beatles-midi folder (default "
                   "../shared/data/lakh-beatles-midi; env NNSCRATCH_DATA_LAKH)")
    p.add_argument("--groove-data", help="groove-midi folder (default ../shared/data/groove-midi; "
                   "env NNSCRATCH_DATA_GROOVE)")
    p.add_argument("--cache", help="dataset cache folder (default $NNSCRATCH_CACHE/drums or "
                   "~/.cache/nnscratch/drums)")
    p.add_argument("--no-cache", action="store_true", help="rebuild the dataset, write no cache")
    p.add_argument("--limit", type=int, default=None, help="first N files (Groove: per split)")
    p.add_argument("--bars", type=int, default=bars, help="window length in bars")
    p.add_argument("--hop-bars", type=int, default=hop, help="window hop in the training split")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _train_args(p, epochs: int, schedule: str, beta: float, dropout: float = 0.0,
                input_dropout: float = 0.0):
    p.add_argument("--out", help="run folder (default runs/drums/<task>-<time>)")
    p.add_argument("--preset", choices=sorted(dmod.PRESETS), default="cpu",
                   help="model size: cpu (default, 2 cores), seed (the report's size)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=epochs,
                   help="epochs of the final (all-layer) stage")
    p.add_argument("--stage-epochs", type=int, default=1, help="epochs of each layer-wise stage")
    p.add_argument("--schedule", choices=["layerwise", "joint"], default=schedule)
    p.add_argument("--ft-lr-factor", type=float, default=0.25, help="fine-tuning lr = lr * this")
    p.add_argument("--patience", type=int, default=4, help="early stopping (epochs, final stage)")
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--pos-weight", type=float, default=2.0, help="BCE weight of the hits")
    p.add_argument("--w-velocity", type=float, default=1.0)
    p.add_argument("--w-offset", type=float, default=1.0)
    p.add_argument("--beta", type=float, default=beta, help="KL weight")
    p.add_argument("--free-bits", type=float, default=0.0, help="nats of KL per window for free")
    p.add_argument("--dropout", type=float, default=dropout, help="on the decoder outputs")
    p.add_argument("--input-dropout", type=float, default=input_dropout,
                   help="teacher-forcing dropout: share of previous steps hidden from the decoder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this")
    p.add_argument("--resume", help="a last.npz to continue exactly")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="drum_accompaniment.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build-data", help="build and cache the Lakh and Groove MIDI datasets")
    _data_args(b, 8, 2)
    g = sub.add_parser("pretrain-groove", help="train the humanisation model on Groove MIDI")
    _data_args(g, 4, 2)
    _train_args(g, 12, "joint", 0.2)
    t = sub.add_parser("train", help="train the accompaniment model on Lakh (layer-wise)")
    _data_args(t, 8, 2)
    _train_args(t, 20, "layerwise", 0.2, dropout=0.3, input_dropout=0.3)
    t.add_argument("--pretrained", help="a pretrain-groove best.npz: its decoder side is loaded")
    t.add_argument("--roll-mode", choices=["onset", "hold"], default="onset")
    t.add_argument("--transpose", type=int, default=5,
                   help="augmentation: transpose each training window by up to this many semitones")
    e = sub.add_parser("evaluate", help="test metrics of a checkpoint, with the baselines")
    _data_args(e, 8, 2)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--threshold", type=float, default=None,
                   help="free-running hit threshold (default: the one stored, else tuned on val)")
    e.add_argument("--out", help="evaluation.json path (default beside the checkpoint)")
    a = sub.add_parser("accompany", help="write a drum track for SONG.mid")
    a.add_argument("song", help="a MIDI file with piano, guitar and/or bass")
    a.add_argument("--checkpoint", required=True, help="a `train` best.npz")
    a.add_argument("--out", required=True, help="the MIDI file to write")
    a.add_argument("--threshold", type=float, default=None,
                   help="hit threshold (default: the one tuned on validation)")
    a.add_argument("--temperature", type=float, default=0.0,
                   help="0: hits above the threshold; > 0: hits sampled from sigmoid(logit / T)")
    a.add_argument("--candidates", type=int, default=4, help="drum candidates per window")
    a.add_argument("--rank", choices=["template", "likelihood"], default="template")
    a.add_argument("--mode", choices=["windows", "whole"], default="windows")
    a.add_argument("--keep-drums", action="store_true", help="keep the song's own drums too")
    a.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build-data":
            build_data_cmd(args)
        elif args.command == "pretrain-groove":
            if pretrain_groove(args).get("stop_reason") == "interrupted":
                return 130
        elif args.command == "train":
            if train_cmd(args).get("stop_reason") == "interrupted":
                return 130
        elif args.command == "evaluate":
            evaluate_cmd(args)
        elif args.command == "accompany":
            if args.candidates < 1:
                raise ValueError("--candidates must be at least 1")
            accompany_cmd(args)
    except (midi.MidiError, dd.DrumInputError, nn.CheckpointError, FileNotFoundError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
