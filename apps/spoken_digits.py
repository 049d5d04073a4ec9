"""Spoken-digit and speaker classifiers on FSDD: dense and convolutional networks on spectrograms.

The seed report (chapter 5) classifies sounds from 50 x 50 mel spectrograms with dense networks,
and adds convolutions and dropout for harder tasks. Here, on the Free Spoken Digit Dataset
(3,000 recordings, 6 speakers, ../shared/data/fsdd):

    python apps/spoken_digits.py train                         # CNN, mel 50x50, official split
    python apps/spoken_digits.py train --model mlp             # the seed's dense network
    python apps/spoken_digits.py train --features both         # mel and MFCC stacked
    python apps/spoken_digits.py train --split loso            # leave one speaker out (6 models)
    python apps/spoken_digits.py train --cv 5                  # + 5-fold CV, majority vote on test
    python apps/spoken_digits.py train --grid                  # small grid search by CV first
    python apps/spoken_digits.py train --augment speed,pitch,vtlp,shift,specaugment --cmvn utterance
    python apps/spoken_digits.py loso --search-augment shift shift,vtlp,specaugment
                                      # leave one speaker out, settings chosen by speaker CV
                                      # inside the training speakers, per-fold report
    python apps/spoken_digits.py loso --model cnn_pool --epochs 40 --augment shift,noise \\
        --search-freq-pool 2,2 3,2 --inner-folds 2 --ensemble 3 --tta
                                      # frequency pooling chosen by inner CV, 3 seeds,
                                      # 5 speeds (docs/digits.md)
    python apps/spoken_digits.py loso --model cnn_pool --epochs 40 --augment shift,noise \\
        --freq-pool 3 2 --search-scale db pcen db+pcen --tta
                                      # front ends chosen by inner CV (one group per training
                                      # speaker): dB, PCEN, or a model on each, averaged
    python apps/spoken_digits.py train --model cnn_pool --epochs 40 --augment shift,noise \\
        --freq-pool 3 2 --scale db+pcen   # for voices it never heard: a dB and a PCEN model,
                                      # which predict pools (the setting loso chose)
    python apps/spoken_digits.py speakers                      # speaker identification, 6 classes
    python apps/spoken_digits.py evaluate runs/spoken_digits/<run>/model.npz
    python apps/spoken_digits.py predict my_seven.wav          # the latest run's model(s)
    python apps/spoken_digits.py predict my_seven.wav --tta --checkpoint a.npz b.npz c.npz
    arecord -f S16_LE -r 16000 -c 1 -d 2 my_seven.wav          # record 2 s (ALSA), or sox:
    rec -c 1 -r 16000 my_seven.wav trim 0 2                    # any rate, mono or stereo

Augmentations (--augment, apps/digits/augment.py; default: shift): speed and pitch
perturbation by resampling, vocal-tract-length perturbation (mel-axis warping), time shift,
loudness ramps, background noise at random SNRs, SpecAugment masks. --cmvn utterance normalises
each recording's coefficients over time before the training-set statistics.

Features (apps/audio/features.py): silence trimmed, hop chosen per recording so every word fills
50 frames (the seed's rule), mel spectrogram in dB relative to its loudest bin (or, with
--scale pcen, per-channel energy normalisation: each band over its own recent level);
standardised per mel band with statistics from the training examples only.
Models (apps/digits/model.py): MLP (flattened image, Dense 256, Dense 128, dropout, softmax)
and CNN (2 x [Conv 3x3, ReLU, MaxPool 2], dropout, Dense 128, dropout, softmax), trained with
Adam on the softmax cross-entropy (apps/digits/train.py).

Each run writes in its folder (default runs/spoken_digits/<timestamp>/, or --out): model.npz
(checkpoint: weights, feature config, normalisation), confusion.png, training.png and
summary.json (accuracy, per-speaker accuracy, confusion matrix, distribution of error distances).
Data: --data PATH, else $NNSCRATCH_DATA_FSDD, else ../shared/data/fsdd beside the project.

Code: apps/digits/ (data.py, model.py, augment.py, train.py, loso.py, evaluate.py).
"""
from __future__ import annotations

import argparse
import functools
import os
import sys

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.audio import fsdd
from apps.audio.features import SCALES, Standardizer
from apps.common.cli import (
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
    unit_interval,
)
from apps.digits.augment import AUGMENTS, parse_augment
from apps.digits.evaluate import cmd_evaluate, cmd_predict
from apps.digits.loso import cmd_loso
from apps.digits.model import CMVN, MODELS
from apps.digits.train import GRID, cmd_train

COMMANDS = {
    "train": functools.partial(cmd_train, task="digit"),
    "speakers": functools.partial(cmd_train, task="speaker"),
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "loso": cmd_loso,
}

RECORD_HINT = """\
Record a WAV with standard tools (one digit, said after the start):
    arecord -f S16_LE -r 16000 -c 1 -d 2 my_seven.wav     # ALSA (Linux), 2 seconds
    rec -c 1 -r 16000 my_seven.wav trim 0 2               # SoX (Linux, macOS, Windows)
Any sample rate, mono or stereo (averaged, with a note), 16/24-bit or float WAV, FLAC or OGG;
silence or noise before and after the word is cut by an energy detector; at most --max-seconds.
Refused with one line naming the file: silence, clipping only, only noise, too long.
"""


def folds(text: str) -> int:
    """--cv K: 0 (no cross-validation) or K >= 2 folds."""
    k = nonnegative_int(text)
    if k == 1:
        raise argparse.ArgumentTypeError("expected 0 (no cross-validation) or K >= 2 folds, got 1")
    return k


def augment_list(text: str) -> tuple:
    """--augment speed,pitch,...: names from AUGMENTS, or none."""
    try:
        return parse_augment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def trim_db(text: str) -> float | None:
    """--trim-db: a positive number of dB below the loudest frame, or none (no trimming)."""
    if text.strip().lower() in ("none", "off"):
        return None
    return positive_float(text)


def scale_set(text: str) -> tuple:
    """--scale and --search-scale db+pcen: feature scales joined by '+', each once."""
    parts = tuple(text.split("+"))
    bad = [p for p in parts if p not in SCALES]
    if bad or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give feature scales from {', '.join(SCALES)} joined by '+', each once")
    return parts


def freq_pool(text: str) -> tuple:
    """--search-freq-pool 3,2: two positive numbers of mel bands, comma-separated."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected F1,F2 (two numbers of bands), got {text!r}")
    return tuple(positive_int(p) for p in parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("--data", default=None,
                       help=f"FSDD folder (default: ${fsdd.ENV_VAR} or {fsdd.DEFAULT_ROOT})")
        q.add_argument("--out", default=None,
                       help="run folder (default: runs/spoken_digits/<timestamp>)")
        q.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress bars")
        q.add_argument("--no-cache", action="store_true",
                       help="recompute features (no cache under runs/)")
        q.add_argument("--limit", type=positive_int, default=None,
                       help="use only recordings with index < LIMIT (a small slice for quick runs)")

    for name, helptext in (("train", "train a digit classifier (CNN or MLP)"),
                           ("speakers", "train a speaker classifier (6 classes)"),
                           ("loso", "leave-one-speaker-out digit accuracy, settings chosen by "
                                    "cross-validation inside the training speakers")):
        q = sub.add_parser(name, help=helptext, description=helptext)
        common(q)
        q.add_argument("--model", choices=MODELS, default="cnn",
                       help="cnn (the seed's), cnn_pool (the same convolutions, then the max "
                            "over time: any number of frames; --time-mode fixed by default) "
                            "or mlp")
        q.add_argument("--features", choices=["mel", "mfcc", "both"], default="mel")
        if name == "loso":
            q.add_argument("--search-augment", type=augment_list, nargs="+", default=None,
                           metavar="LIST", help="candidate augmentation sets, e.g. shift "
                           "shift,vtlp,specaugment (default: --augment alone)")
            q.add_argument("--search-cmvn", choices=CMVN, nargs="+", default=None,
                           help="candidate normalisations (default: --cmvn alone)")
            q.add_argument("--search-freq-pool", type=freq_pool, nargs="+", default=None,
                           metavar="F1,F2",
                           help="candidate CNN frequency poolings, e.g. 2,2 3,2 (default: "
                                "--freq-pool alone)")
            q.add_argument("--search-scale", type=scale_set, nargs="+", default=None,
                           metavar="SCALES",
                           help="candidate front ends, e.g. db pcen db+pcen: a '+' joins scales "
                                "into an ensemble of one model per scale (default: --scale "
                                "alone)")
            q.add_argument("--ensemble", type=positive_int, default=1, metavar="K",
                           help="final models per fold, from seeds seed .. seed+K-1, their "
                                "log-probabilities averaged (default 1)")
            q.add_argument("--tta", action="store_true",
                           help="test-time augmentation: each held-out word also played at "
                                "0.9, 0.95, 1.05 and 1.1 times its speed, the answers pooled")
            q.add_argument("--inner-folds", type=positive_int, default=5, metavar="K",
                           help="groups of training speakers for the inner CV (default 5: one "
                                "per training speaker)")
            q.add_argument("--held-out", nargs="+", default=None, metavar="SPEAKER",
                           help="run only the folds of these speakers (default: all six)")
        else:
            q.add_argument("--split", choices=["official", "loso"], default="official",
                           help="official: recordings 0-4 are the test set; loso: leave one "
                                "speaker out")
            q.add_argument("--cv", type=folds, default=0, metavar="K",
                           help="also K-fold cross-validation on the training data, and the "
                                "majority vote of the K fold models on the test data (the "
                                "seed's procedure)")
            q.add_argument("--grid", action="store_true",
                           help=f"grid search over {GRID} by K-fold CV (K = --cv or 3) before "
                                "training")
        q.add_argument("--augment", type=augment_list, default=("shift",), metavar="LIST",
                       help=f"training augmentations, comma-separated among {', '.join(AUGMENTS)}"
                            " (or none; default: shift)")
        q.add_argument("--cmvn", choices=CMVN, default="dataset",
                       help="dataset: standardise with training-set statistics; utterance: "
                            "per-recording CMVN first")
        q.add_argument("--epochs", type=positive_int, default=20)
        q.add_argument("--batch-size", type=positive_int, default=64)
        q.add_argument("--lr", type=positive_float, default=1e-3)
        q.add_argument("--weight-decay", type=nonnegative_float, default=0.0,
                       help="AdamW decay (0: Adam)")
        q.add_argument("--dropout", type=unit_interval, default=0.3)
        q.add_argument("--channels", type=positive_int, nargs=2, default=[16, 32],
                       help="CNN filters")
        q.add_argument("--dense", type=positive_int, default=128, help="CNN dense units")
        q.add_argument("--freq-pool", type=positive_int, nargs=2, default=[2, 2],
                       metavar=("F1", "F2"),
                       help="CNN: mel bands pooled by the first and second max-pooling "
                            "(default 2 2; the frames: always 2)")
        q.add_argument("--hidden", type=positive_int, nargs="+", default=[256, 128],
                       help="MLP hidden sizes")
        q.add_argument("--shift", type=nonnegative_int, default=3,
                       help="max random time shift (frames) of the 'shift' augmentation")
        q.add_argument("--norm", choices=list(Standardizer.PER), default="band")
        q.add_argument("--n-mels", type=positive_int, default=50)
        q.add_argument("--frames", type=positive_int, default=50)
        q.add_argument("--n-mfcc", type=positive_int, default=20)
        q.add_argument("--time-mode", choices=["stretch", "fixed"], default=None,
                       help="stretch: every clip to --frames frames (a hop per recording); "
                            "fixed: one hop (1 s / --frames), the word in a 1 s canvas of silence "
                            "(default: fixed for cnn_pool, stretch for the others)")
        q.add_argument("--trim-db", type=trim_db, default=30.0, metavar="DB",
                       help="cut leading and trailing frames more than DB dB below the loudest "
                            "one before the features (default 30), or none")
        q.add_argument("--top-db", type=positive_float, default=80.0, metavar="DB",
                       help="floor of the dB features: DB below the loudest bin (default 80)")
        q.add_argument("--scale", type=scale_set, default=("db",), metavar="SCALES",
                       help="db: decibels below the clip's loudest bin; pcen: per-channel "
                            "energy normalisation, each band over its own recent level "
                            "(apps/audio/mel.py (7)-(8)); db+pcen: one model on each, their "
                            "log-probabilities averaged (train writes model.npz and "
                            "model_pcen.npz, which predict pools; default db)")
        q.add_argument("--fmin", type=nonnegative_float, default=0.0, metavar="HZ",
                       help="lowest frequency of the mel bands (default 0)")
        q.add_argument("--val-fraction", type=unit_interval, default=0.1,
                       help="share of the training data held out to pick the best epoch")
        q.add_argument("--seed", type=int, default=0)

    q = sub.add_parser("evaluate", help="evaluate a checkpoint on the official test split")
    common(q)
    q.add_argument("checkpoint")
    q.add_argument("--split", choices=["official", "all"], default="official")

    q = sub.add_parser("predict", help="classify your own recordings (any sample rate and length)",
                       description="Classify recordings of one spoken digit each: the top "
                                   "three with their probabilities.",
                       epilog=RECORD_HINT, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("files", nargs="+", help="WAV (or FLAC/OGG) files, one spoken digit each")
    q.add_argument("--checkpoint", nargs="+", default=None, metavar="MODEL",
                   help="model.npz (default: the latest digit run); several: an ensemble, "
                        "their log-probabilities averaged (e.g. a loso fold's members)")
    q.add_argument("--tta", action="store_true",
                   help="also hear each word at 0.9, 0.95, 1.05 and 1.1 times its speed and "
                        "pool the answers (test-time augmentation)")
    q.add_argument("--mono-only", action="store_true",
                   help="refuse multi-channel files instead of averaging their channels")
    q.add_argument("--max-seconds", type=positive_float, default=10.0,
                   help="refuse longer recordings (default 10)")
    q.add_argument("--top", type=positive_int, default=3)
    q.add_argument("--json", action="store_true",
                   help="also print the rankings, notes and errors as one line of JSON (the "
                        "last line of stdout), for scripts")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
