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
validation cross-entropy), curves.png, summary.json and the demo ("Ah ! vous dirai-je, maman"
continued) as demo.mid with its piano roll (.png, the prime in orange), score (.musicxml) and
recording (.wav, where fluidsynth or timidity is installed); ``generate`` writes the same four.

``judge`` samples every melody generator given (this LSTM, its bigram baseline, melody VAE
runs, a next-note MLP) and scores each set against real held-out songs on six judges (notes in
the key, pitch-class and interval histogram distances, bars that fill the meter, the longest
copy of a training song, the cross-entropy under an n-gram trained on the other half of the
training songs): apps/melody/judges.py. Train the generators with ``--train-half a`` first:

    python apps/melody_lstm.py train --subset han --train-half a --out runs/melody_lstm/han_a
    python apps/melody_vae.py train --train-half a --out runs/melody_vae/han_seq_a
    python apps/next_note_mlp.py train --source essen --subset han --train-half a \\
        --out runs/next_note_mlp/han_a
    python apps/melody_lstm.py judge --lstm runs/melody_lstm/han_a/best.npz \\
        --vae runs/melody_vae/han_seq_a --next-note runs/next_note_mlp/han_a/model.npz --n 200

Code: apps/melody/ (data.py, lstm_model.py, lstm_train.py, lstm_generate.py, plots.py,
judges.py, judge_run.py).
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
from apps.melody.judge_run import judge
from apps.melody.lstm_generate import generate_cmd
from apps.melody.lstm_train import train

COMMANDS = {"train": train, "generate": generate_cmd, "judge": judge}


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
    t.add_argument("--train-half", choices=["all", "a", "b"], default="all",
                   help="train on all training songs, or on one half of them (the judge "
                   "command's split: generators on a, its judge model on b)")
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
    j = sub.add_parser("judge", help="judge melodies of every generator against held-out songs")
    j.add_argument("--lstm", required=True, help="melody LSTM checkpoint (best.npz), trained "
                   "with --train-half a")
    j.add_argument("--vae", action="append", default=None,
                   help="melody VAE run folder (train --train-half a); repeat for each arch")
    j.add_argument("--next-note", default=None, help="next-note MLP checkpoint (model.npz), "
                   "trained with --source essen --train-half a")
    j.add_argument("--subset", default="han")
    j.add_argument("--data", default=None)
    j.add_argument("--limit", type=positive_int, default=None)
    j.add_argument("--val-frac", type=fraction, default=0.1)
    j.add_argument("--seed", type=nonnegative_int, default=0)
    j.add_argument("--n", type=positive_int, default=200, help="melodies per generator")
    j.add_argument("--temperature", type=positive_float, default=1.0,
                   help="sampling temperature of the LSTM and the next-note MLP")
    j.add_argument("--max-steps", type=positive_int, default=1024,
                   help="longest LSTM / bigram song, in sixteenths")
    j.add_argument("--files", type=nonnegative_int, default=3,
                   help="melodies per generator written as MIDI, PNG, MusicXML and WAV")
    j.add_argument("--out", default=None, help="run folder (default runs/melody_judge/<time>)")
    j.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.cmd], args)


if __name__ == "__main__":
    sys.exit(main())
