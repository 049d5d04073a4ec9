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
import json
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps import drum_model as dmod  # noqa: E402
# the app's parts (none imports this file): training, evaluation, generation to MIDI
from apps.drum_evaluation import (  # noqa: E402
    evaluate_accompaniment, evaluate_humanisation, log_accompaniment, log_humanisation, plot_example,
)
from apps.drum_generation import accompany_song  # noqa: E402
from apps.drum_training import APP, K, Trainer, load_model, load_task  # noqa: E402
from apps.music import drum_dataset as dd  # noqa: E402
from apps.music import groove, midi  # noqa: E402


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