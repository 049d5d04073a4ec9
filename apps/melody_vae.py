"""Melody VAEs for Essen songs (seed 002): one for the notes (pitches), one for the rhythm
(durations), trained on held-out-split songs, then sampled and interpolated.

Data (apps/music/esac.py: filtered, transposed to C major / A minor): each song's written
notes and rests, cut into segments of ``--max-len`` events (default 64; in training from a
random phase each epoch): notes = pitch 50-97 or rest, rhythm = one of the durations
[0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4] (quarter lengths).

Two architectures (``--arch``), both with a softmax per position over the classes (48 pitches +
rest + end, or 8 durations + end) and the cross-entropy, the KL weight annealed from 0 to
``beta`` (docs/derivations/melody_vae.md):

* ``seq`` (default, preset ``tuned``): MusicVAE's shape, a BiLSTM encoder over the events whose
  outputs feed the bottleneck, and an LSTM decoder that reads the previous class (teacher
  forcing, word dropout 0.2) and a per-position vector computed from z;
* ``mlp`` (preset ``mlp``): the slides' MLP encoder and decoder (500, LeakyReLU(0.2), 500;
  latent 250) on one-hot classes.

The slides' own model is kept for comparison: ``--preset slides`` (a sigmoid regression of the
codes scaled to [0, 1] with binary cross-entropy, Adam lr 1e-5, KL weight 1) and
``--preset regression`` (the same with the KL weighted by 1e-4 and more epochs). Why those do
not reconstruct: docs/derivations/melody_vae.md, section 1.

Every backward is written by hand (vae_model.py, vae_seq_model.py; the bottleneck is
nnscratch.VariationalBottleneck). Samples decode z drawn from a Gaussian fitted to the
training codes (``--prior fitted``, full covariance; ``standard`` draws N(0, I));
interpolations decode the straight line between two held-out segments' codes, and training
reports the share of events that change per step over ``--interp-pairs`` random pairs.

    python apps/melody_vae.py train --subset han                 # seq; runs/melody_vae/<time>
    python apps/melody_vae.py train --arch mlp
    python apps/melody_vae.py train --preset slides
    python apps/melody_vae.py sample --run runs/melody_vae/<time> --n 4
    python apps/melody_vae.py interpolate --run runs/melody_vae/<time> --a 0 --b 1 --steps 5

Writes in the run folder: notes.npz and rhythm.npz (checkpoints, every epoch; ``--resume``),
heldout.npz, curves.png, reconstruction.png, summary.json, and for every melody (sample_*,
interp_*) a .mid with its piano roll (.png), score (.musicxml) and recording (.wav, where
fluidsynth or timidity is installed). ``--train-half a`` trains on half of the training songs,
for the melody LSTM's ``judge`` command.

Code: apps/melody/ (data.py, vae_model.py, vae_seq_model.py, vae_build.py, vae_train.py,
vae_generate.py, plots.py).
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common.cli import (
    fraction,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
)
from apps.melody.vae_generate import interpolate_cmd, sample_cmd
from apps.melody.vae_train import ARCH_PRESET, PRESETS, train

COMMANDS = {"train": train, "sample": sample_cmd, "interpolate": interpolate_cmd}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the notes and rhythm VAEs, sample, interpolate")
    t.add_argument("--subset", default="han", help="Essen subset: han, kinder, german, all")
    t.add_argument("--data", default=None, help="Essen folder (default ../shared/data/"
                   "essen-folksong-abc; env NNSCRATCH_DATA_ESSEN)")
    t.add_argument("--limit", type=positive_int, default=None,
                   help="first N tunes per file (quick runs)")
    t.add_argument("--arch", choices=sorted(ARCH_PRESET), default=None,
                   help="seq (default): BiLSTM encoder, LSTM decoder (preset tuned); mlp: the "
                   "slides' MLP encoder/decoder with categorical outputs (preset mlp)")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="hyper-parameters (default: the arch's; tuned without --arch)")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="override both VAEs' epochs")
    t.add_argument("--notes-lr", type=positive_float, default=None)
    t.add_argument("--rhythm-lr", type=positive_float, default=None)
    t.add_argument("--beta", type=nonnegative_float, default=None,
                   help="weight of the KL term for both VAEs (default: the preset's)")
    t.add_argument("--free-bits", type=nonnegative_float, default=None,
                   help="nats per latent dimension the KL does not charge (default: preset's)")
    t.add_argument("--prior", choices=["fitted", "standard"], default="fitted",
                   help="sample z from N(0, I) or from the training codes' Gaussian")
    t.add_argument("--max-len", type=positive_int, default=64, help="events per segment")
    t.add_argument("--val-frac", type=fraction, default=0.1)
    t.add_argument("--train-half", choices=["all", "a", "b"], default="all",
                   help="train on all training songs, or on one half of them (the melody "
                   "LSTM's judge command: generators on a, its judge model on b)")
    t.add_argument("--samples", type=nonnegative_int, default=4)
    t.add_argument("--interp-steps", type=positive_int, default=5)
    t.add_argument("--interp-pairs", type=nonnegative_int, default=50,
                   help="random held-out pairs whose interpolations are scored")
    t.add_argument("--seed", type=nonnegative_int, default=0)
    t.add_argument("--log-every", type=positive_int, default=10)
    t.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    t.add_argument("--out", default=None, help="run folder (default runs/melody_vae/<time>)")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    s = sub.add_parser("sample", help="sample new melodies (notes + rhythm) to MIDI")
    s.add_argument("--run", required=True, help="a training run folder")
    s.add_argument("--n", type=positive_int, default=4)
    s.add_argument("--seed", type=nonnegative_int, default=1)
    s.add_argument("--prior", choices=["fitted", "standard"], default="fitted")
    s.add_argument("--temperature", type=positive_float, default=None,
                   help="draw each position from its softmax at this temperature (categorical "
                   "VAEs; default: the most likely class)")
    s.add_argument("--out", default=None)
    i = sub.add_parser("interpolate", help="decode melodies between two held-out songs")
    i.add_argument("--run", required=True)
    i.add_argument("--a", type=nonnegative_int, default=0)
    i.add_argument("--b", type=nonnegative_int, default=1)
    i.add_argument("--steps", type=positive_int, default=5)
    i.add_argument("--out", default=None)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.cmd == "train" and args.resume and not args.out:
        p.error("--resume needs --out (the run folder holding notes.npz and rhythm.npz)")
    if args.cmd == "train":
        if args.preset is None:
            args.preset = ARCH_PRESET[args.arch or "seq"]
        arch = PRESETS[args.preset]["notes"].get("arch", "mlp")
        if args.arch and args.arch != arch:
            p.error(f"--preset {args.preset} is a preset of --arch {arch}, not {args.arch}")
        args.arch = arch
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(COMMANDS[args.cmd], args)


if __name__ == "__main__":
    sys.exit(main())
