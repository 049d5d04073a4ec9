"""Drum accompaniment ("the drummer's algorithm", seed 001): given piano, guitar and bass, play
the drums, with human velocities and micro-timing.

    python apps/drum_accompaniment.py build-data                      # cache Lakh + Groove MIDI
    python apps/drum_accompaniment.py pretrain-groove --out runs/drums/groove
    python apps/drum_accompaniment.py train --pretrained runs/drums/groove/best.npz \\
        --out runs/drums/accomp                                        # layer-wise, then fine-tune
    python apps/drum_accompaniment.py evaluate --checkpoint runs/drums/accomp/best.npz
    python apps/drum_accompaniment.py accompany SONG.mid --checkpoint runs/drums/accomp/best.npz \\
        --out OUT.mid --candidates 4 --rank template

Data (apps/drums/data.py): 8-bar windows of the 4/4 sections of the Lakh (Beatles)
files with drums, piano, guitar and bass (``--data`` / NNSCRATCH_DATA_LAKH), split by song;
Groove MIDI's 4/4 performances for the humanisation pretraining (``--groove-data`` /
NNSCRATCH_DATA_GROOVE). Model and loss: apps/drums/model.py and loss.py,
docs/derivations/drum_vae.md.

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

Code: apps/drums/ (data.py, groove.py, tasks.py, model.py, loss.py, train.py, evaluate.py,
generate.py).
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common.cli import (
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
    unit_interval,
)
from apps.drums.evaluate import cmd_evaluate
from apps.drums.generate import cmd_accompany
from apps.drums.model import PRESETS
from apps.drums.tasks import cmd_build_data
from apps.drums.train import cmd_pretrain_groove, cmd_train

COMMANDS = {
    "build-data": cmd_build_data,
    "pretrain-groove": cmd_pretrain_groove,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "accompany": cmd_accompany,
}


def _data_args(p, bars: int, hop: int):
    p.add_argument("--data", help="lakh-beatles-midi folder (default "
                   "../shared/data/lakh-beatles-midi; env NNSCRATCH_DATA_LAKH)")
    p.add_argument("--groove-data", help="groove-midi folder (default ../shared/data/groove-midi; "
                   "env NNSCRATCH_DATA_GROOVE)")
    p.add_argument("--cache", help="dataset cache folder (default $NNSCRATCH_CACHE/drums or "
                   "~/.cache/nnscratch/drums)")
    p.add_argument("--no-cache", action="store_true", help="rebuild the dataset, write no cache")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="first N files (Groove: per split)")
    p.add_argument("--bars", type=positive_int, default=bars, help="window length in bars")
    p.add_argument("--hop-bars", type=positive_int, default=hop,
                   help="window hop in the training split")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _train_args(p, epochs: int, schedule: str, beta: float, dropout: float = 0.0,
                input_dropout: float = 0.0):
    p.add_argument("--out", help="run folder (default runs/drums/<task>-<time>)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="model size: cpu (default, 2 cores), seed (the report's size)")
    p.add_argument("--lr", type=positive_float, default=2e-3)
    p.add_argument("--batch", type=positive_int, default=64)
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help="epochs of the final (all-layer) stage")
    p.add_argument("--stage-epochs", type=nonnegative_int, default=1,
                   help="epochs of each layer-wise stage")
    p.add_argument("--schedule", choices=["layerwise", "joint"], default=schedule)
    p.add_argument("--ft-lr-factor", type=positive_float, default=0.25,
                   help="fine-tuning lr = lr * this")
    p.add_argument("--patience", type=positive_int, default=4,
                   help="early stopping (epochs, final stage)")
    p.add_argument("--clip", type=positive_float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--pos-weight", type=positive_float, default=2.0, help="BCE weight of the hits")
    p.add_argument("--w-velocity", type=nonnegative_float, default=1.0)
    p.add_argument("--w-offset", type=nonnegative_float, default=1.0)
    p.add_argument("--beta", type=nonnegative_float, default=beta, help="KL weight")
    p.add_argument("--free-bits", type=nonnegative_float, default=0.0,
                   help="nats of KL per window for free")
    p.add_argument("--dropout", type=unit_interval, default=dropout, help="on the decoder outputs")
    p.add_argument("--input-dropout", type=unit_interval, default=input_dropout,
                   help="teacher-forcing dropout: share of previous steps hidden from the decoder")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="stop (and save) after this")
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
    t.add_argument("--transpose", type=nonnegative_int, default=5,
                   help="augmentation: transpose each training window by up to this many semitones")
    e = sub.add_parser("evaluate", help="test metrics of a checkpoint, with the baselines")
    _data_args(e, 8, 2)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--threshold", type=unit_interval, default=None,
                   help="free-running hit threshold (default: the one stored, else tuned on val)")
    e.add_argument("--out", help="evaluation.json path (default beside the checkpoint)")
    a = sub.add_parser("accompany", help="write a drum track for SONG.mid")
    a.add_argument("song", help="a MIDI file with piano, guitar and/or bass")
    a.add_argument("--checkpoint", required=True, help="a `train` best.npz")
    a.add_argument("--out", required=True, help="the MIDI file to write")
    a.add_argument("--threshold", type=unit_interval, default=None,
                   help="hit threshold (default: the one tuned on validation)")
    a.add_argument("--temperature", type=nonnegative_float, default=0.0,
                   help="0: hits above the threshold; > 0: hits sampled from sigmoid(logit / T)")
    a.add_argument("--candidates", type=positive_int, default=4, help="drum candidates per window")
    a.add_argument("--rank", choices=["template", "likelihood"], default="template")
    a.add_argument("--mode", choices=["windows", "whole"], default="windows")
    a.add_argument("--keep-drums", action="store_true", help="keep the song's own drums too")
    a.add_argument("--seed", type=nonnegative_int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
