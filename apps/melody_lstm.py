"""Melody LSTM on the Essen folk songs, as on the 2024 slides (seed 002): one-hot symbols ->
LSTM 256 -> dropout -> dense -> softmax, trained to predict the next sixteenth-note step.

Data (apps/music/esac.py): each song filtered, transposed to C major / A minor and encoded at
sixteenth steps (MIDI pitch at an onset, ``_`` hold, ``r`` rest); songs are joined into one
stream with the delimiter ``/`` before and after each song, and cut into windows of 64 steps
(a random phase each epoch). One model per corpus: ``--subset han`` (Chinese Han songs) or
``--subset german`` (the German songs; ``kinder`` for the children's songs alone).

    x_t (one-hot, V)  ->  LSTM(V, 256)  ->  Dropout(0.2)  ->  Dense(256, V)  ->  softmax

Evaluation on held-out songs (10 %, never seen in training): per-step accuracy and
cross-entropy, against a bigram baseline (next symbol given the current one, add-0.1 smoothing)
on exactly the same predictions.

    python apps/melody_lstm.py train --subset han --epochs 30          # runs/melody_lstm/<time>/
    python apps/melody_lstm.py train --subset german --epochs 15
    python apps/melody_lstm.py generate --checkpoint runs/melody_lstm/<time>/best.npz \\
        --prime demo --temperature 0.8 --steps 256 --out ah_vous.mid
    python apps/melody_lstm.py generate --checkpoint ... --prime "60 _ _ _ 62 _ 64 _" --steps 128
    python apps/melody_lstm.py generate --checkpoint ... --prime "X:1\\nL:1/8\\nK:G\\nGABc d2B2|"

``--prime`` takes a token string (used as is: the model knows C major / A minor), ABC (transposed
like the training songs: ``K:Cmaj`` or ``K:Am`` fixes the key, a bare ``K:C`` is analysed, so
a phrase ending on G may be read as G major), or ``demo``: the first phrase of "Ah ! vous
dirai-je, maman" (``DEMO_ABC`` in apps/melody/lstm_generate.py, written for this app).
Writes in the run folder: model.npz (every epoch; ``train --resume``), best.npz (lowest
validation cross-entropy), curves.png, demo.mid and demo.png, summary.json.

Code: apps/melody/ (data.py, lstm_model.py, lstm_train.py, lstm_generate.py, plots.py).
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common.cli import (
    finite_float,
    fraction,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
    unit_interval,
)
from apps.melody.lstm_generate import generate_cmd
from apps.melody.lstm_train import train

COMMANDS = {"train": train, "generate": generate_cmd}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train",
                       help="train on an Essen subset, compare with a bigram, write a demo")
    t.add_argument("--subset", default="han", help="han, german, kinder or all")
    t.add_argument("--data", default=None, help="Essen folder (default ../shared/data/"
                   "essen-folksong-abc; env NNSCRATCH_DATA_ESSEN)")
    t.add_argument("--limit", type=positive_int, default=None,
                   help="first N tunes per file (quick runs)")
    t.add_argument("--max-songs", type=positive_int, default=None,
                   help="keep only the first N songs")
    t.add_argument("--window", type=positive_int, default=64, help="steps per training window")
    t.add_argument("--hidden", type=positive_int, default=256)
    t.add_argument("--dropout", type=unit_interval, default=0.2)
    t.add_argument("--epochs", type=positive_int, default=30)
    t.add_argument("--batch", type=positive_int, default=64)
    t.add_argument("--max-batches", type=nonnegative_int, default=0,
                   help="cap batches per epoch (quick runs)")
    t.add_argument("--lr", type=positive_float, default=1e-3)
    t.add_argument("--clip", type=nonnegative_float, default=5.0,
                   help="gradient-norm clip (0: off)")
    t.add_argument("--val-frac", type=fraction, default=0.1)
    t.add_argument("--seed", type=nonnegative_int, default=0)
    t.add_argument("--temperature", type=positive_float, default=0.8, help="for the demo")
    t.add_argument("--demo-steps", type=positive_int, default=192)
    t.add_argument("--resume", default=None, help="checkpoint (model.npz) to continue from")
    t.add_argument("--out", default=None, help="run folder (default runs/melody_lstm/<time>)")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    g = sub.add_parser("generate", help="continue a prime and write MIDI")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--prime", default="demo", help='tokens ("60 _ _ _ 62 _"), ABC, or "demo"')
    # finite_float, not positive_float: generate() names a temperature <= 0 itself
    g.add_argument("--temperature", type=finite_float, default=1.0)
    g.add_argument("--steps", type=positive_int, default=256, help="sixteenth steps to generate")
    g.add_argument("--stop-at-end", action="store_true", help="stop when the model ends the song")
    g.add_argument("--tempo", type=positive_float, default=100.0)
    g.add_argument("--seed", type=nonnegative_int, default=0)
    g.add_argument("--out", default=None, help="MIDI file to write")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.cmd], args)


if __name__ == "__main__":
    sys.exit(main())
