"""Train a character LSTM on folk tunes in ABC notation, and sample new tunes as ABC and MIDI.

Run with no arguments, it is the project's main job: it prepares the default data, trains the
`main` preset for 15 minutes (or `--max-minutes`), then samples 3 tunes with every bar fitting
the meter, and writes them as ABC, MIDI, SVG scores and WAV recordings with one index.html to
open in a browser, all into runs/<timestamp>/.

    python apps/abc_lstm.py                                   # the main job
    python apps/abc_lstm.py prepare --out data/abc            # canonical train/val text + vocab
    python apps/abc_lstm.py train --preset cpu --steps 3000   # train (see train --help)
    python apps/abc_lstm.py train --resume runs/.../last.npz  # continue exactly where it stopped
    python apps/abc_lstm.py sample --checkpoint runs/.../best.npz --temperature 0.8 --n 5 \\
        --prime "X:1\\nM:6/8\\nL:1/8\\nK:D\\n" --seed 1

Data: ../shared/data/folk-abc/tunes.jsonl by default; --data or NNSCRATCH_DATA override it with
another tunes.jsonl, an .abc file or a directory of .abc files.

Code: apps/abc_tunes/ (data, model, train, sample, publish, page); docs/architecture.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.abc_tunes.data import prepare_cmd
from apps.abc_tunes.sample import sample_cmd
from apps.abc_tunes.train import PRESETS, main_job, train_cmd
from apps.common.cli import (
    finite_float,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
    unit_interval,
)

COMMANDS = {"prepare": prepare_cmd, "train": train_cmd, "sample": sample_cmd, "run": main_job}


def _add_train_args(p):
    p.add_argument("--data", help="tunes.jsonl, an .abc file or a folder of .abc files "
                   "(default: $NNSCRATCH_DATA or ../shared/data/folk-abc/tunes.jsonl)")
    p.add_argument("--data-dir", help="a folder written by `prepare` (skips preparation)")
    p.add_argument("--out", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="main",
                   help="model and batch sizes (default: main, tuned for 15 minutes on 2 CPU "
                   "cores; cpu, seed and large as in seed report 004)")
    p.add_argument("--steps", type=positive_int, default=3000, help="maximum training steps")
    p.add_argument("--max-minutes", type=nonnegative_float, default=None,
                   help="stop after this much time (0: no limit); the progress bar then counts "
                   "towards it")
    p.add_argument("--eval-every", type=positive_int, default=1000,
                   help="steps between validations (each reads the whole validation set)")
    p.add_argument("--patience", type=positive_int, default=6,
                   help="early stopping, in evaluations")
    p.add_argument("--lr-patience", type=nonnegative_int, default=2,
                   help="ReduceLROnPlateau patience, in evaluations")
    p.add_argument("--clip", type=positive_float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--schedule", choices=("cosine", "linear", "plateau"), default=None,
                   help="learning rate: a warm-up then a cosine decay (to lr / 50) or a linear "
                   "one (to 0) over the run's budget (time or steps), or halved when validation "
                   "stalls (default: the preset's; linear for main, cosine for the others)")
    p.add_argument("--warmup", type=nonnegative_int, default=100,
                   help="warm-up steps of the cosine or linear schedule")
    p.add_argument("--stateful", action=argparse.BooleanOptionalAction, default=None,
                   help="read the text in order, carrying the state from window to window "
                   "(truncated backprop through time) instead of random windows from a zero "
                   "state (default: the preset's choice)")
    p.add_argument("--resume", help="a last.npz checkpoint to continue exactly")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for k, t in (("embedding", positive_int), ("hidden", positive_int), ("layers", positive_int),
                 ("dropout", unit_interval), ("batch", positive_int), ("seq", positive_int),
                 ("lr", positive_float), ("weight-decay", nonnegative_float),
                 ("forget-bias", finite_float)):
        p.add_argument(f"--{k}", type=t, default=None, help="override the preset")


def _add_sample_args(p):
    p.add_argument("--checkpoint", required=True, help="a best.npz or last.npz")
    p.add_argument("--n", type=positive_int, default=5, help="number of tunes")
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--prime", default="X:1\\n", help=r'start of each tune, with \n escapes '
                   r'(e.g. "X:1\nM:6/8\nL:1/8\nK:D\n")')
    p.add_argument("--seed", type=nonnegative_int, default=1)
    p.add_argument("--max-chars", type=positive_int, default=1500)
    p.add_argument("--out", help="folder for samples.abc, the MIDI, SVG and WAV files and "
                   "index.html (default: beside the checkpoint)")
    p.add_argument("--meter-aware", action=argparse.BooleanOptionalAction, default=False,
                   help="mask the characters that would overfill a bar or close it short "
                   "(docs/abc_meter.md)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="abc_lstm.py", description=__doc__.split("\n\n")[0],
                                epilog="With no command: prepare, train the main preset for "
                                "--max-minutes (15), sample 3 tunes and write index.html into "
                                "runs/<timestamp>/.",
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
    run.add_argument("--samples", type=positive_int, default=3)
    run.add_argument("--meter-aware", action=argparse.BooleanOptionalAction, default=True,
                     help="sample with every bar fitting the meter (docs/abc_meter.md)")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv or ["run"])  # no command: the main job
    warnings.simplefilter("default")
    return run_command(COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
