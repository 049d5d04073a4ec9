"""Train a character LSTM on folk tunes in ABC notation, and sample new tunes as ABC and MIDI.

Run with no arguments, it is the project's main job: it prepares the default data, trains the
`cpu` preset for about 15 minutes (or `--max-minutes`) and samples 3 tunes, all into
runs/<timestamp>/.

    python apps/abc_lstm.py                                   # the main job
    python apps/abc_lstm.py prepare --out data/abc            # canonical train/val text + vocab
    python apps/abc_lstm.py train --preset cpu --steps 3000   # train (see train --help)
    python apps/abc_lstm.py train --resume runs/.../last.npz  # continue exactly where it stopped
    python apps/abc_lstm.py sample --checkpoint runs/.../best.npz --temperature 0.8 --n 5 \\
        --prime "X:1\\nM:6/8\\nL:1/8\\nK:D\\n" --seed 1

Data: ../shared/data/folk-abc/tunes.jsonl by default; --data or NNSCRATCH_DATA override it with
another tunes.jsonl, an .abc file or a directory of .abc files.
"""
from __future__ import annotations

import argparse
import codecs
import csv
import json
import os
import sys
import time
import warnings
from dataclasses import asdict


if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps.interrupt import DeferredInterrupt  # noqa: E402
from apps.music.abc_text import AbcInputError, join_tunes, prepare_corpus  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "folk-abc", "tunes.jsonl")

PRESETS = {
    # the default without a GPU: small enough for ~1 step/s on 2 cores
    "cpu": dict(embedding=128, hidden=256, layers=2, dropout=0.2, batch=32, seq=256, lr=2e-3,
                weight_decay=1e-5),
    # seed report 004's first model
    "seed": dict(embedding=256, hidden=512, layers=2, dropout=0.3, batch=64, seq=256, lr=5e-4,
                 weight_decay=1e-5),
    # the seed's tuned configuration, meant for a GPU
    "large": dict(embedding=256, hidden=768, layers=3, dropout=0.3, batch=64, seq=256, lr=5e-4,
                  weight_decay=1e-5),
}


def default_data_path() -> str:
    return os.environ.get("NNSCRATCH_DATA") or os.path.normpath(DEFAULT_DATA)


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


# ==============================================================================================
# prepare
# ==============================================================================================
def prepare(data: str, out: str, log=print) -> dict:
    """Write train.txt, val.txt (tunes separated by one blank line) and vocab.json into ``out``."""
    from apps.char_lm import Vocab  # noqa: PLC0415

    corpus = prepare_corpus(data)
    os.makedirs(out, exist_ok=True)
    train_text, val_text = join_tunes(corpus.train), join_tunes(corpus.val)
    vocab = Vocab.from_text(train_text)
    _, n_unk = vocab.encode(val_text)
    for name, text in (("train.txt", train_text), ("val.txt", val_text)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    vocab.save(os.path.join(out, "vocab.json"))
    info = {"data": os.path.abspath(data), "train_tunes": len(corpus.train),
            "val_tunes": len(corpus.val), "dropped_tunes": len(corpus.dropped),
            "train_chars": len(train_text), "val_chars": len(val_text), "vocab_size": len(vocab),
            "val_unknown_chars": n_unk}
    log(f"prepared {info['train_tunes']} training and {info['val_tunes']} validation tunes "
        f"({info['train_chars']:,} / {info['val_chars']:,} characters, {info['dropped_tunes']} "
        f"dropped without key or music) into {out}; vocabulary {len(vocab)} symbols; "
        f"{n_unk} validation characters unseen in training map to <unk>")
    return info


def load_prepared(folder: str):
    from apps.char_lm import Vocab  # noqa: PLC0415

    with open(os.path.join(folder, "train.txt"), encoding="utf-8") as f:
        train_text = f.read()
    with open(os.path.join(folder, "val.txt"), encoding="utf-8") as f:
        val_text = f.read()
    return train_text, val_text, Vocab.load(os.path.join(folder, "vocab.json"))


# ==============================================================================================
# train
# ==============================================================================================
METRIC_FIELDS = ["step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                 "tokens_per_s", "elapsed_s"]


def _val_tunes(val_text: str, vocab):
    """Each validation tune's ids, with its terminating newline (the end-of-tune signal)."""
    tunes = [t + "\n" for t in val_text.split("\n\n") if t.strip()]
    return [vocab.encode(t)[0] for t in tunes]


def plot_curves(metrics_csv: str, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    step = [int(r["step"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(step, [float(r["train_loss"]) for r in rows], label="train (mean since last eval)")
    a.plot(step, [float(r["val_loss"]) for r in rows], "o-", label="validation")
    a.set_xlabel("step")
    a.set_ylabel("cross-entropy (nats / char)")
    a.legend()
    a.grid(alpha=0.3)
    b.plot(step, [float(r["train_acc"]) for r in rows], label="train")
    b.plot(step, [float(r["val_acc"]) for r in rows], "o-", label="validation")
    b.set_xlabel("step")
    b.set_ylabel("next-character accuracy")
    b.legend()
    b.grid(alpha=0.3)
    fig.suptitle("ABC character LSTM")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


class Trainer:
    """Owns the model, optimizer, schedules, data sampler and run folder of one training run."""

    def __init__(self, run_dir: str, train_text: str, val_text: str, vocab, hp: dict, log=print,
                 data_dir: str | None = None):
        from apps.char_lm import ModelConfig, MusicRNN, WindowSampler  # noqa: PLC0415

        self.run_dir, self.hp, self.log, self.vocab = run_dir, hp, log, vocab
        self.data_dir = os.path.abspath(data_dir) if data_dir else None
        os.makedirs(run_dir, exist_ok=True)
        nn.manual_seed(hp["seed"])
        self.cfg = ModelConfig(len(vocab), hp["embedding"], hp["hidden"], hp["layers"], hp["dropout"])
        self.model = MusicRNN(self.cfg)
        self.train_ids, n_unk = vocab.encode(train_text)
        self.val_tunes = _val_tunes(val_text, vocab)
        self.sampler = WindowSampler(self.train_ids, hp["batch"], hp["seq"], seed=hp["seed"])
        self.opt = nn.optim.AdamW(self.model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        self.plateau = nn.optim.ReduceLROnPlateau(self.opt, factor=0.5, patience=hp["lr_patience"],
                                                  min_lr=hp["lr"] / 100)
        self.early = nn.optim.EarlyStopping(patience=hp["patience"])
        self.loss_fn = nn.SoftmaxCrossEntropyLoss()
        self.step = 0
        self.losses: list[float] = []  # training loss of each step run by this process
        self.elapsed = 0.0
        self.best_val = float("inf")
        self.metrics_csv = os.path.join(run_dir, "metrics.csv")

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self, name: str) -> str:
        path = os.path.join(self.run_dir, name)
        nn.save_checkpoint(
            path, self.model, self.opt,
            config={"model": asdict(self.cfg), "vocab": self.vocab.to_json(), "hp": self.hp,
                    "data_dir": self.data_dir},
            extra={"step": self.step, "elapsed": self.elapsed, "best_val": self.best_val,
                   "sampler": self.sampler.state(), "rng": nn.get_rng("cpu").get_state(),
                   "plateau": self.plateau.state_dict(), "early": self.early.state_dict()})
        return path

    def restore(self, path: str) -> None:
        ck = nn.load_checkpoint(path, self.model, self.opt)
        ex = ck.extra
        self.step, self.elapsed, self.best_val = ex["step"], ex["elapsed"], ex["best_val"]
        self.sampler.set_state(ex["sampler"])
        nn.get_rng("cpu").set_state(ex["rng"])
        self.plateau.load_state_dict(ex["plateau"])
        self.early.load_state_dict(ex["early"])

    # -- one step ---------------------------------------------------------------------------------
    def train_step(self) -> tuple[float, float]:
        xp = nn.backend.xp_for()
        x, y = self.sampler.next()
        x, y = xp.asarray(x), xp.asarray(y)
        logits, _ = self.model(x)
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
        from apps.char_lm import evaluate  # noqa: PLC0415

        return evaluate(self.model, self.val_tunes)

    def _write_metrics(self, row: dict) -> None:
        new = not os.path.exists(self.metrics_csv)
        with open(self.metrics_csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            if new:
                w.writeheader()
            w.writerow(row)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, max_steps: int, max_minutes: float | None, eval_every: int,
            progress: bool = True) -> dict:
        from tqdm import tqdm  # noqa: PLC0415

        tokens_per_step = self.hp["batch"] * self.hp["seq"]
        deadline = None if not max_minutes else time.monotonic() + 60 * max_minutes
        bar = tqdm(total=max_steps, initial=self.step, disable=not progress, unit="step",
                   dynamic_ncols=True, desc="train")
        window_loss, window_acc, window_n, window_t0 = 0.0, 0.0, 0, time.perf_counter()
        last_tps = 0.0
        stop_reason = "steps"
        last_val = (float("nan"), float("nan"))
        interrupted = DeferredInterrupt()
        try:
            while self.step < max_steps and not interrupted.requested:
                t0 = time.perf_counter()
                loss, acc = self.train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                window_loss += loss
                window_acc += acc
                window_n += 1
                last_tps = tokens_per_step / dt
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", tok_s=f"{last_tps:,.0f}",
                                lr=f"{self.opt.lr:.1e}")
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
                    self._write_metrics(row)
                    plot_curves(self.metrics_csv, os.path.join(self.run_dir, "curves.png"))
                    self.plateau.step(val_loss)
                    stop = self.early.step(val_loss)
                    if val_loss < self.best_val:
                        self.best_val = val_loss
                        self.save("best.npz")
                    self.save("last.npz")
                    bar.write(f"step {self.step}: train {row['train_loss']:.4f} / {row['train_acc']:.3f}"
                              f"  val {val_loss:.4f} / {val_acc:.3f}  lr {self.opt.lr:.1e}"
                              f"  {row['tokens_per_s']:,.0f} tok/s")
                    window_loss, window_acc, window_n, window_t0 = 0.0, 0.0, 0, time.perf_counter()
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


def hyperparameters(args) -> dict:
    hp = dict(PRESETS[args.preset])
    for k in ("embedding", "hidden", "layers", "dropout", "batch", "seq", "lr", "weight_decay"):
        v = getattr(args, k.replace("-", "_"), None)
        if v is not None:
            hp[k] = v
    hp.update(preset=args.preset, seed=args.seed, clip=args.clip, patience=args.patience,
              lr_patience=args.lr_patience)
    return hp


def train(args, log=print) -> dict:
    """The `train` command; returns the summary written to summary.json."""
    if args.resume:
        ck = nn.load_checkpoint(args.resume)
        hp = ck.config["hp"]
        run_dir = args.out or os.path.dirname(os.path.abspath(args.resume))
        data_dir = ck.config.get("data_dir") or os.path.join(run_dir, "data")
        if not os.path.exists(os.path.join(data_dir, "train.txt")):
            raise nn.CheckpointError(f"--resume: the run's prepared data is gone ({data_dir} has no "
                                     "train.txt); prepare it again with `prepare --out` there")
    else:
        hp = hyperparameters(args)
        run_dir = args.out or os.path.join("runs", timestamp())
        data_dir = args.data_dir or os.path.join(run_dir, "data")
        if not args.data_dir:
            prepare(args.data or default_data_path(), data_dir, log)
    train_text, val_text, vocab = load_prepared(data_dir)
    trainer = Trainer(run_dir, train_text, val_text, vocab, hp, log, data_dir=data_dir)
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
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    log(f"done ({result['stop_reason']}) at step {result['step']}: val cross-entropy "
        f"{result['val_loss']:.4f} nats/char, accuracy {result['val_acc']:.4f}, "
        f"{summary['tokens_per_s']:,.0f} tokens/s; files in {run_dir}")
    return summary


# ==============================================================================================
# sample
# ==============================================================================================
def load_model(checkpoint: str):
    from apps.char_lm import ModelConfig, MusicRNN, Vocab  # noqa: PLC0415

    ck = nn.load_checkpoint(checkpoint)
    if "model" not in ck.config or "vocab" not in ck.config:
        raise nn.CheckpointError(f"{checkpoint}: not an ABC LSTM checkpoint (no model/vocab config)")
    model = MusicRNN(ModelConfig(**ck.config["model"]))
    nn.load_checkpoint(checkpoint, model)
    return model, Vocab.from_json(ck.config["vocab"]), ck


def sample_tunes(checkpoint: str, out_dir: str, n: int, temperature: float, prime: str,
                 seed: int, max_chars: int = 1500, log=print) -> dict:
    """Sample ``n`` tunes; write samples.abc and one MIDI per valid tune; report validity."""
    from apps.char_lm import sample  # noqa: PLC0415
    from apps.music.abc_eval import abc_to_midi, check_abc  # noqa: PLC0415

    model, vocab, _ = load_model(checkpoint)
    tunes = sample(model, vocab, prime, n, temperature=temperature, max_chars=max_chars, seed=seed)
    os.makedirs(out_dir, exist_ok=True)
    abc_path = os.path.join(out_dir, "samples.abc")
    with open(abc_path, "w", encoding="utf-8") as f:
        f.write("\n".join(tunes))
    checks, midi = [], []
    for i, tune in enumerate(tunes, 1):
        c = check_abc(tune)
        checks.append(c)
        if c.valid:
            try:
                midi.append(abc_to_midi(tune, os.path.join(out_dir, f"sample_{i:02d}.mid"), log=log))
            except Exception as exc:  # music21 parsed it but could not write MIDI
                log(f"tune {i}: MIDI export failed: {exc}")
        log(f"--- tune {i}: {'valid' if c.valid else 'INVALID'} ABC, "
            f"{'bars fit the meter' if c.fits_meter else f'{c.bad_bars} bar(s) off the meter'}, "
            f"{c.n_notes} notes\n{tune}")
    report = {"checkpoint": checkpoint, "n": n, "temperature": temperature, "seed": seed,
              "prime": prime, "valid_share": sum(c.valid for c in checks) / n,
              "meter_fit_share": sum(c.fits_meter for c in checks) / n,
              "abc": abc_path, "midi": midi}
    log(f"{report['valid_share']:.0%} of {n} tunes parse as valid ABC; "
        f"{report['meter_fit_share']:.0%} have bars that fit the meter; wrote {abc_path} and "
        f"{len(midi)} MIDI file(s)")
    return report


# ==============================================================================================
# CLI
# ==============================================================================================
def _add_train_args(p):
    p.add_argument("--data", help="tunes.jsonl, an .abc file or a folder of .abc files "
                   "(default: $NNSCRATCH_DATA or ../shared/data/folk-abc/tunes.jsonl)")
    p.add_argument("--data-dir", help="a folder written by `prepare` (skips preparation)")
    p.add_argument("--out", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--steps", type=int, default=3000, help="maximum training steps")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much time")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--patience", type=int, default=6, help="early stopping, in evaluations")
    p.add_argument("--lr-patience", type=int, default=2, help="ReduceLROnPlateau patience, in evaluations")
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", help="a last.npz checkpoint to continue exactly")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for k, t in (("embedding", int), ("hidden", int), ("layers", int), ("dropout", float),
                 ("batch", int), ("seq", int), ("lr", float), ("weight-decay", float)):
        p.add_argument(f"--{k}", type=t, default=None, help="override the preset")


def _add_sample_args(p, required=True):
    p.add_argument("--checkpoint", required=required, help="a best.npz or last.npz")
    p.add_argument("--n", type=int, default=5, help="number of tunes")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--prime", default="X:1\\n", help=r'start of each tune, with \n escapes '
                   r'(e.g. "X:1\nM:6/8\nL:1/8\nK:D\n")')
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-chars", type=int, default=1500)
    p.add_argument("--out", help="folder for samples.abc and the MIDI files (default: beside the checkpoint)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="abc_lstm.py", description=__doc__.split("\n\n")[0],
                                epilog="With no command: prepare, train the cpu preset for "
                                "--max-minutes (15) and sample 3 tunes into runs/<timestamp>/.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    pp = sub.add_parser("prepare", help="write canonical train/val text and the vocabulary")
    pp.add_argument("--data", help="tunes.jsonl, an .abc file or a folder of .abc files")
    pp.add_argument("--out", required=True)
    _add_train_args(sub.add_parser("train", help="train a model"))
    _add_sample_args(sub.add_parser("sample", help="sample tunes from a checkpoint"))
    run = sub.add_parser("run", help="the main job (also what no command does)")
    _add_train_args(run)
    run.set_defaults(max_minutes=15.0, steps=100_000)
    run.add_argument("--samples", type=int, default=3)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv if argv else ["run"])
    warnings.simplefilter("default")
    try:
        if args.command == "prepare":
            prepare(args.data or default_data_path(), args.out)
        elif args.command == "train":
            if train(args)["stop_reason"] == "interrupted":
                return 130
        elif args.command == "sample":
            prime = codecs.decode(args.prime, "unicode_escape")
            out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
            sample_tunes(args.checkpoint, out, args.n, args.temperature, prime, args.seed, args.max_chars)
        else:  # the main job
            if args.out is None:
                args.out = os.path.join("runs", timestamp())
            summary = train(args)
            if summary["stop_reason"] == "interrupted":
                return 130
            best = os.path.join(args.out, "best.npz")
            report = sample_tunes(best, args.out, args.samples, 0.8, "X:1\n", args.seed + 1)
            summary["samples"] = report
            with open(os.path.join(args.out, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
    except (AbcInputError, nn.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
