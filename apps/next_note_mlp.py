"""Next-note prediction with the 2017 report's network: a sigmoid MLP over the 88 piano keys.

Seed 000, chapter 2: the input describes the previous notes (their key among the 88, their
rhythm) and the place of the note in the bar; the output gives a probability for each of the
88 keys, and the most probable one is the note to play. Here:

* features of note i (all one-hot, concatenated; F = context * 100 + 44 inputs):
  the ``context`` previous notes' keys (88 + "no note" before the start) and durations
  (10 classes + "none"), then note i's own duration and its position in the bar (32 sixteenth
  slots + "unknown");
* network: Dense -> Sigmoid -> ... -> Dense(88), trained with softmax cross-entropy
  (``SoftmaxCrossEntropyLoss`` fuses the softmax over the 88 keys with the log-loss) and Adam;
* data: ``../shared/data/cre-irish-midi`` (MIDI via apps/music/midi.py, each tune transposed
  so its root is C using roots.csv) or an Essen subset (apps/music/esac.py, already in
  C major / A minor);
* baselines on the same held-out notes: the most frequent note, and a bigram (next key given
  the previous key);
* generation: note by note, sampling the softmax with a temperature, following the rhythm of a
  held-out tune (the network predicts keys, not durations, as in the report), written to MIDI.

    python apps/next_note_mlp.py train              # CRE, 10 epochs, runs/next_note_mlp/<time>/
    python apps/next_note_mlp.py train --source essen --subset german --epochs 5
    python apps/next_note_mlp.py generate --checkpoint runs/next_note_mlp/<time>/model.npz \\
        --notes 96 --temperature 0.8 --prime "67 69 71"

Writes in the run folder: model.npz (checkpoint after every epoch; ``train --resume`` goes on
from it), curves.png, generated.mid with generated.png, generated.musicxml and generated.wav
(where fluidsynth or timidity is installed), summary.json; ``generate`` writes the same four
files.

Code: apps/next_note/ (data.py, model.py, train.py, generate.py).
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common.cli import (
    fraction,
    layer_sizes,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
)
from apps.next_note.generate import generate_cmd
from apps.next_note.train import train

COMMANDS = {"train": train, "generate": generate_cmd}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train on CRE MIDI or Essen, report baselines, generate")
    t.add_argument("--source", choices=["cre", "essen"], default="cre")
    t.add_argument("--subset", default="han", help="Essen subset: han, kinder, german, all")
    t.add_argument("--data", default=None, help="dataset folder (default: ../shared/data/...; env "
                   "NNSCRATCH_DATA_CRE or NNSCRATCH_DATA_ESSEN)")
    t.add_argument("--limit", type=positive_int, default=None,
                   help="use only the first N tunes (per file)")
    t.add_argument("--train-half", choices=["all", "a", "b"], default="all",
                   help="Essen: train on one half of the training tunes (the melody LSTM's judge "
                   "command: generators on a, its judge model on b)")
    t.add_argument("--context", type=positive_int, default=8,
                   help="previous notes in the features")
    t.add_argument("--hidden", type=layer_sizes, default="256,256",
                   help="hidden sizes, comma separated")
    t.add_argument("--epochs", type=positive_int, default=10)
    t.add_argument("--batch", type=positive_int, default=256)
    t.add_argument("--max-batches", type=nonnegative_int, default=0,
                   help="cap batches per epoch (quick runs)")
    t.add_argument("--lr", type=positive_float, default=1e-3)
    t.add_argument("--val-frac", type=fraction, default=0.1)
    t.add_argument("--seed", type=nonnegative_int, default=0)
    t.add_argument("--gen-notes", type=positive_int, default=96)
    t.add_argument("--temperature", type=positive_float, default=0.8)
    t.add_argument("--resume", default=None, help="checkpoint to continue from")
    t.add_argument("--out", default=None, help="run folder (default runs/next_note_mlp/<time>)")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    g = sub.add_parser("generate", help="sample a melody from a checkpoint to MIDI")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--notes", type=positive_int, default=96)
    g.add_argument("--temperature", type=positive_float, default=1.0)
    g.add_argument("--prime", default=None, help='first MIDI pitches, e.g. "67 69 71"')
    g.add_argument("--template", type=nonnegative_int, default=0,
                   help="which held-out tune gives the rhythm")
    g.add_argument("--seed", type=nonnegative_int, default=0)
    g.add_argument("--out", default=None, help="MIDI file to write")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.cmd], args)


if __name__ == "__main__":
    sys.exit(main())
