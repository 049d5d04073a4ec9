"""Voice auto-encoders and VAEs on FSDD spectrograms: generate spoken digits, hear them through
Griffin-Lim, and let the digit and speaker classifiers judge them.

The seed report (chapter 6) compresses 50 x 50 mel spectrograms, normalised to [0, 1], through
auto-encoders with 3 or 10 latent dimensions, generates new ones from latent points (per-digit
centroids, or N(0, I) for its VAE, loss = lambda * MSE + KL) and turns them back into sound with
Griffin-Lim; it judged the sounds by ear. Here, on the Free Spoken Digit Dataset:

    python apps/voice_vae.py train                                 # the six models, then judge
    python apps/voice_vae.py train --models conv3 vae --epochs 30  # some of them
    python apps/voice_vae.py reconstruct 7_jackson_3.wav --model conv10
    python apps/voice_vae.py sample --from centroid --digit 7      # conv3: the digit's centroid
    python apps/voice_vae.py sample --from prior --n 8             # VAE: z ~ N(0, I)
    python apps/voice_vae.py sample --from mixture --n 8           # VAE: where its codes are
    python apps/voice_vae.py sample --cvae --digit 3               # conditional VAE: you choose
    python apps/voice_vae.py generate --digit 7 --speaker jackson  # any digit in any voice
    python apps/voice_vae.py generate                              # all 10 x 6, one PNG sheet
    python apps/voice_vae.py sample --from point --z 0.1 -0.4 2.0 --model conv3
    python apps/voice_vae.py interpolate a.wav b.wav --steps 8     # VAE codes, straight line
    python apps/voice_vae.py interpolate --speakers jackson theo --digit 7   # voice to voice
    python apps/voice_vae.py interpolate --digits 3 8 --speaker lucas        # word to word
    python apps/voice_vae.py judge                                 # the classifiers listen

Models (apps/voice/model.py): dense3 (dense AE, latent 3, the seed's n°3), conv3 and conv10
(convolutional AEs, latent 3 and 10, n°1 and n°2), vae (convolutional VAE, latent 10, the seed's
6.3, its bottleneck nnscratch.VariationalBottleneck), cvae (the same with the digit one-hot as
an input of encoder and decoder), cvae_speaker (the digit's and the speaker's one-hots: any digit
in any of the six voices). Recipes that differ from the options' defaults (RECIPES in
apps/voice/model.py, each measured in docs/benchmarks.md): conv3 trains 200 epochs with dropout
0.2 and the learning rate divided by 10 at epoch 150; cvae_speaker uses lambda 2000.
Features (apps/audio/features.py, as the digit classifier's): silence trimmed, one hop per
recording so every word fills 50 frames, 50 mel bands in dB below the loudest bin (80 dB floor),
then x = (S_db - min) / (max - min) with the training set's min and max (apps/audio/inverse.py).
Split: FSDD's official one (recordings 0-4 of each speaker and digit are the test set, 300 files);
10 % of the rest picks the best epoch.
``--protocol seed`` trains on the seed report's own preprocessing instead (librosa's defaults:
22,050 Hz, n_fft 2048, no trimming, hop floor((L + 1) / 50), dB with ref = 1, i.e. the absolute
level, then the global min-max). Its [0, 1] images are much easier to compress: the bands above
4 kHz are empty (FSDD is 8 kHz audio) and the min-max range spans ~125 dB instead of 80, so the
same reconstruction error is a smaller MSE. PCA with 3 components already gives a test MSE of
0.0035 there, against 0.0102 on the default features: compare with the seed's MSEs on that
protocol, and between models on the default one.
Back to sound (apps/audio/inverse.py, griffinlim.py): un-normalise, dB to power, mel to linear by
non-negative least squares, fast Griffin-Lim (32 iterations, momentum 0.99), at the hop of the
recording (reconstructions) or the median hop of the digit's training recordings (generations;
of that digit in that voice for cvae_speaker).
The judges are the CNNs of apps/spoken_digits.py, run on the generated audio after their own
front end: the digit classifier (--classifier, default: the newest official-split digit model
under runs/spoken_digits/) and the speaker classifier (--speaker-classifier, default: the newest
one, 'python apps/spoken_digits.py speakers'; without one the voices are not judged).

Each run folder (runs/voice_vae/<timestamp>/ or --out) holds: <model>.npz (best weights, config,
normalisation, centroids, hops), <model>_last.npz (resume with --resume), <model>_metrics.csv,
curves.png, latent_<model>.png, reconstructions.png, samples/ (WAV + PNG), judge.json and
summary.json. Generation commands write WAVs and a PNG of their spectrograms to --out (default
<run>/generated/).

Code: apps/voice/ (data, model, checkpoint, train, summary, plots, generate, judge).
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.audio import fsdd
from apps.common.cli import (
    finite_float,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
    unit_interval,
)
from apps.voice.data import PROTOCOLS
from apps.voice.generate import cmd_generate, cmd_interpolate, cmd_reconstruct, cmd_sample
from apps.voice.judge import cmd_judge
from apps.voice.model import MODELS
from apps.voice.phase import PHASES
from apps.voice.train import cmd_train

COMMANDS = {"train": cmd_train, "reconstruct": cmd_reconstruct, "sample": cmd_sample,
            "generate": cmd_generate, "interpolate": cmd_interpolate, "judge": cmd_judge}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def judge_opts(q):
        q.add_argument("--classifier", default=None,
                       help="digit classifier checkpoint (default: the newest "
                            "runs/spoken_digits/*/model.npz)")
        q.add_argument("--n-per-digit", type=positive_int, default=20,
                       help="judged samples per digit (x 10)")
        q.add_argument("--n-prior", type=positive_int, default=200,
                       help="judged VAE prior samples")
        q.add_argument("--n-recon", type=positive_int, default=300,
                       help="judged test reconstructions")
        q.add_argument("--spread", type=nonnegative_float, default=0.5,
                       help="near-centroid samples: centroid + spread * the digit's code std "
                            "* N(0, I)")
        q.add_argument("--speaker-classifier", default=None,
                       help="speaker classifier checkpoint (default: the newest speaker model "
                            "under runs/spoken_digits/; without one the voices are not judged)")
        q.add_argument("--n-per-pair", type=positive_int, default=5,
                       help="cvae_speaker: judged samples per digit x speaker pair (x 60)")
        q.add_argument("--phase-study", type=int, default=0, metavar="N",
                       help="conditional VAEs: also resynthesise N words per pair from a random "
                            "phase and from a real recording's, 32 and 100 Griffin-Lim "
                            "iterations, and judge each (default 0: off)")

    t = sub.add_parser("train", help="train the auto-encoders and VAEs, then judge them")
    t.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    t.add_argument("--data", default=None,
                   help=f"FSDD folder (default ${fsdd.ENV_VAR} or {fsdd.DEFAULT_ROOT})")
    t.add_argument("--out", default=None, help="run folder (default runs/voice_vae/<timestamp>)")
    t.add_argument("--resume", action="store_true", help="continue from <model>_last.npz in --out")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs for every model (overrides the three below)")
    t.add_argument("--conv-epochs", type=positive_int, default=None,
                   help="the convolutional auto-encoders' (default 60; conv3: 200, with the "
                        "learning rate divided by 10 at 150 and dropout 0.2)")
    t.add_argument("--vae-epochs", type=positive_int, default=120,
                   help="the VAEs' (at 60 the mixture-prior samples were recognised 84.5%% of "
                   "the time, at 120 87.0%%: docs/benchmarks.md)")
    t.add_argument("--dense-epochs", type=positive_int, default=150)
    t.add_argument("--lr-decay-epoch", type=positive_int, default=None,
                   help="divide the learning rate by 10 from this epoch (default: never; "
                        "conv3: 150)")
    t.add_argument("--batch-size", type=positive_int, default=64)
    t.add_argument("--lr", type=positive_float, default=1e-3)
    t.add_argument("--weight-decay", type=nonnegative_float, default=0.0,
                   help="AdamW's decoupled weight decay (default 0: Adam)")
    t.add_argument("--lambda", dest="lam", type=positive_float, default=None,
                   help="VAE loss = lambda * MSE + KL (MSE per pixel, KL summed over latents); "
                        "default 5000, and 2000 for cvae_speaker")
    t.add_argument("--kl-warmup", type=nonnegative_int, default=0, metavar="EPOCHS",
                   help="VAEs: raise the KL's weight linearly from 0 to 1 over the first EPOCHS "
                        "epochs (default 0: 1 throughout)")
    t.add_argument("--free-bits", type=nonnegative_float, default=0.0, metavar="NATS",
                   help="VAEs: each latent dimension's KL counts at least NATS (default 0)")
    t.add_argument("--digit-aux", type=nonnegative_float, default=None, metavar="GAMMA",
                   help="add GAMMA x the cross-entropy of a linear digit classifier reading the "
                        "code mu, which lays the code out by word rather than by voice "
                        "(default: 10 for vae, whose seven's centroid decoded to a nine "
                        "without it; 0, off, for the others)")
    t.add_argument("--vae-latent", type=positive_int, default=None,
                   help="latent size of the VAE (default 10)")
    t.add_argument("--cvae-latent", type=positive_int, default=None,
                   help="latent size of the CVAE (default 10)")
    t.add_argument("--channels", type=positive_int, nargs=3, default=[32, 64, 64],
                   help="conv channels")
    t.add_argument("--hidden", type=positive_int, default=256, help="conv models' dense layer")
    t.add_argument("--dropout", type=unit_interval, default=None,
                   help="conv models: dropout after the dense hidden layers (default 0; "
                        "conv3: 0.2)")
    t.add_argument("--dense-hidden", type=positive_int, nargs="+", default=[512, 128],
                   help="dense AE layers")
    t.add_argument("--protocol", choices=PROTOCOLS, default="classifier",
                   help="features: the digit classifier's (default) or the seed report's "
                        "(for its MSEs)")
    t.add_argument("--n-mels", type=positive_int, default=50)
    t.add_argument("--frames", type=positive_int, default=50)
    t.add_argument("--val-fraction", type=unit_interval, default=0.1)
    t.add_argument("--limit", type=positive_int, default=None,
                   help="recordings with index < LIMIT only (quick runs)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-judge", dest="judge", action="store_false",
                   help="skip the judge at the end")
    t.add_argument("--no-cache", action="store_true")
    t.add_argument("--log-epochs", action="store_true",
                   help="a line per epoch even with progress bars")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    judge_opts(t)

    def model_opts(q, default):
        q.add_argument("--run", default=None,
                       help="run folder (default: the newest under runs/voice_vae/)")
        q.add_argument("--model", default=default, choices=list(MODELS),
                       help=f"which model of the run (default {default})")
        q.add_argument("--checkpoint", default=None,
                       help="a <model>.npz file (instead of --run/--model)")
        q.add_argument("--out", default=None,
                       help="output folder (default <run>/generated/<what>-<time>)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--no-progress", dest="progress", action="store_false")

    r = sub.add_parser("reconstruct", help="a recording through an auto-encoder, back to sound")
    r.add_argument("file")
    model_opts(r, "conv3")
    r.add_argument("--digit", type=int, default=None,
                   help="the spoken digit (needed by the conditional VAEs)")
    r.add_argument("--speaker", default=None, help="the voice (needed by cvae_speaker)")

    s = sub.add_parser("sample",
                       help="generate: centroid, prior, a point, or the CVAE's chosen digit")
    s.add_argument("--from", dest="source", choices=["centroid", "prior", "mixture", "point"],
                   default="centroid",
                   help="a digit's centroid, the prior N(0, I), the Gaussian mixture fitted to "
                   "the VAE's training codes (the samples a listener recognises), or --z")
    s.add_argument("--cvae", action="store_true", help="the conditional VAE with --digit")
    s.add_argument("--digit", type=int, default=None)
    s.add_argument("--n", type=positive_int, default=4)
    s.add_argument("--z", type=finite_float, nargs="+", default=None,
                   help="--from point: the latent code")
    s.add_argument("--latent", type=int, default=None, help="expected latent size (checked)")
    s.add_argument("--spread", type=nonnegative_float, default=0.5,
                   help="centroid: noise in units of the digit's std")
    s.add_argument("--temperature", type=nonnegative_float, default=1.0,
                   help="prior / cvae: z ~ N(0, T^2 I)")
    s.add_argument("--judge", action="store_true",
                   help="also print the classifier's label of each file")
    s.add_argument("--classifier", default=None)
    model_opts(s, None)

    def listen_opts(q):
        q.add_argument("--no-judge", dest="judge", action="store_false",
                       help="do not run the digit and speaker classifiers on the result")
        q.add_argument("--classifier", default=None,
                       help="digit classifier checkpoint (default: the newest)")
        q.add_argument("--speaker-classifier", default=None,
                       help="speaker classifier checkpoint (default: the newest)")

    g = sub.add_parser("generate", help="any digit in any voice: the conditional VAE, judged")
    g.add_argument("--digit", type=int, nargs="+", default=None,
                   help="digits to say (default: all ten)")
    g.add_argument("--speaker", nargs="+", default=None,
                   help="voices (cvae_speaker; default 'all': every voice it knows)")
    g.add_argument("--n", type=positive_int, default=1, help="samples per digit and voice")
    g.add_argument("--temperature", type=nonnegative_float, default=1.0,
                   help="z ~ N(0, T^2 I)")
    g.add_argument("--phase", choices=PHASES, default="random",
                   help="Griffin-Lim's initial phase: random, or the nearest training "
                        "recording's of the same digit and voice (needs FSDD, --data)")
    g.add_argument("--iterations", type=positive_int, default=32,
                   help="Griffin-Lim iterations (fast variant, momentum 0.99)")
    g.add_argument("--data", default=None,
                   help=f"FSDD folder for --phase recording (default ${fsdd.ENV_VAR} or "
                        f"{fsdd.DEFAULT_ROOT})")
    g.add_argument("--limit", type=positive_int, default=None,
                   help="--phase recording: recordings with index < LIMIT only")
    g.add_argument("--no-cache", action="store_true",
                   help="--phase recording: recompute the recordings' features")
    listen_opts(g)
    model_opts(g, None)

    i = sub.add_parser("interpolate",
                       help="the straight line between two recordings' codes, or between two "
                            "digits or two voices")
    i.add_argument("a", nargs="?", default=None, help="first recording (unconditional models)")
    i.add_argument("b", nargs="?", default=None, help="second recording")
    i.add_argument("--digits", type=int, nargs=2, default=None, metavar=("A", "B"),
                   help="conditional VAE: from digit A to digit B (voice: --speaker)")
    i.add_argument("--speakers", nargs=2, default=None, metavar=("A", "B"),
                   help="cvae_speaker: from voice A to voice B (word: --digit)")
    i.add_argument("--digit", type=int, default=None, help="the word held along --speakers")
    i.add_argument("--speaker", default=None, help="the voice held along --digits")
    i.add_argument("--temperature", type=nonnegative_float, default=0.0,
                   help="conditional paths: the fixed code z ~ N(0, T^2 I) (default 0: the "
                        "prior's mean)")
    i.add_argument("--steps", type=int, default=8)
    listen_opts(i)
    model_opts(i, None)

    j = sub.add_parser("judge", help="the digit and speaker classifiers listen to generated "
                       "audio")
    j.add_argument("--run", default=None, help="run folder (default: the newest)")
    j.add_argument("--data", default=None)
    j.add_argument("--limit", type=positive_int, default=None,
                   help="recordings with index < LIMIT only")
    j.add_argument("--models", nargs="+", choices=list(MODELS), default=None,
                   help="judge only these")
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--no-progress", dest="progress", action="store_false")
    judge_opts(j)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
