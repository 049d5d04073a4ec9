"""Two MLP variational auto-encoders for Essen melodies, as on the 2024 slides (seed 002):
one for the notes (pitches), one for the rhythm (durations).

Data (apps/music/esac.py: filtered, transposed to C major / A minor): each song's written
notes and rests, cut into segments of ``--max-len`` events (default 64; the last one padded):

* notes VAE: pitch 50-97, rest = 99, padded with rests (99), normalised by (v - 50) / 49;
* rhythm VAE: durations [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4] -> classes 0-7, padded with whole
  notes (7), normalised by c / 7.

Model (``MelodyVAE``), for both:
    encoder  input -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> (mu, log_var)
    sample   z = mu + exp(0.5 log_var) * eps           (nnscratch VariationalBottleneck)
    decoder  z -> 500, LeakyReLU(0.2) -> 500, LeakyReLU(0.2) -> input, sigmoid
Loss per song = binary cross-entropy of the sigmoid output against the normalised input (summed
over positions) + beta * KL(q(z|x) || N(0, I)). The sigmoid is fused into the loss
(``BCEWithLogitsLoss``: the same function, computed stably); ``decode`` applies it.
Its backward is written by hand in ``MelodyVAE.backward``: the decoder, then the bottleneck
(the sampling path, the KL's gradient weighted by beta, the two heads' gradients summed where
they join on the encoder's last hidden layer), then the encoder.

Presets: ``slides`` is the slides' configuration (notes: latent 250, Adam lr 1e-5, weight decay
1e-6, 200 epochs, batch 32; rhythm: latent 300, lr 1e-3, 8 epochs, batch 64; KL weight 1).
With it both VAEs collapse to the average melody (KL ~2-4 nats: the BCE of a continuous target
is so flat that encoding anything costs more KL than it saves): on held-out Han songs the notes
VAE reconstructs 6.6 % of pitches (always answering each position's most common pitch: 5.9 %)
and the rhythm VAE 17.8 % of durations (most common: 35.2 %). ``tuned`` (default) keeps the
architecture and the loss but weights the KL term by beta = 1e-4, trains longer (notes 150
epochs, lr 1e-3 divided by 3.3 every 50; rhythm 60 epochs, every 20) and samples z from a
Gaussian fitted to the training codes (``--prior fitted``; ``standard`` draws N(0, I)):
held-out accuracy 26.7 % of pitches (63.6 % within a semitone) and 78.9 % of durations.
The slides write z = mean + logvar * eps; the reparameterisation here is the standard one.

    python apps/melody_vae.py train --subset han            # both VAEs, samples, interpolation
    python apps/melody_vae.py train --preset slides
    python apps/melody_vae.py sample --run runs/melody_vae/<time> --n 4
    python apps/melody_vae.py interpolate --run runs/melody_vae/<time> --a 0 --b 1 --steps 5

Writes in the run folder: notes.npz and rhythm.npz (checkpoints, every epoch; ``--resume``),
heldout.npz, curves.png, reconstruction.png, sample_*.mid, interp_*.mid, summary.json.

Code: apps/melody/ (data.py, vae_model.py, vae_train.py, vae_generate.py, plots.py).
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
from apps.melody.vae_train import PRESETS, train

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
    t.add_argument("--preset", choices=sorted(PRESETS), default="tuned")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="override both VAEs' epochs")
    t.add_argument("--notes-lr", type=positive_float, default=None)
    t.add_argument("--rhythm-lr", type=positive_float, default=None)
    t.add_argument("--beta", type=nonnegative_float, default=None,
                   help="weight of the KL term for both VAEs (default: the preset's)")
    t.add_argument("--prior", choices=["fitted", "standard"], default="fitted",
                   help="sample z from N(0, I) or from the training codes' Gaussian")
    t.add_argument("--max-len", type=positive_int, default=64, help="events per segment")
    t.add_argument("--val-frac", type=fraction, default=0.1)
    t.add_argument("--samples", type=nonnegative_int, default=4)
    t.add_argument("--interp-steps", type=positive_int, default=5)
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
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(COMMANDS[args.cmd], args)


if __name__ == "__main__":
    sys.exit(main())
