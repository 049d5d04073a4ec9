"""Drum accompaniment ("the drummer's algorithm", seed 001): given piano, guitar and bass, play
the drums, with human velocities and micro-timing.

    python apps/drum_accompaniment.py build-data                      # cache Lakh + Groove MIDI
    python apps/drum_accompaniment.py pretrain-groove --out runs/drums/groove
    python apps/drum_accompaniment.py train --pretrained runs/drums/groove/best.npz \\
        --out runs/drums/accomp                                        # layer-wise, then fine-tune
    python apps/drum_accompaniment.py evaluate --checkpoint runs/drums/accomp/best.npz
    python apps/drum_accompaniment.py accompany SONG.mid --checkpoint runs/drums/accomp/best.npz \\
        --out OUT.mid --candidates 4                # + OUT.png, OUT.wav; ranked by the judge

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
  For free running (what ``accompany`` plays): scheduled sampling (``--ss-rate K``: the
  decoder is fed its own previous output with probability 1 - K / (K + exp(step / K)),
  MusicVAE's schedule; ``--ss-mode sample|threshold``), best.npz and early stopping by the
  free-running hit F1 on validation (``--select free_f1``, the default), the decoder told the
  step's place in the bar (``--position``) and when each part plays (``--local``), and the
  seed's proposals (section 5.4): 1-bar sub-sequences under a phrase conductor
  (``--sub-bars 1 --conductor-levels 2 --phrase-subs P``) and stacked encoder BiLSTMs
  (``--enc-layers 2``). The hit thresholds are chosen on validation (one for all classes, or
  one per class with ``--class-thresholds``). Then two judges (judge.npz: hits, velocities and
  offsets; judge_hits.npz: hits only; ``--judge-epochs``) learn on the training songs to tell
  real drums from the model's free-running ones, the drum machine's and another song's.
* ``evaluate``: one table on the test songs: the model teacher-forced and free-running (and
  the best of ``--candidates`` by the judge), the drum machine (a fixed rock beat), the
  nearest training beat (nearest by the inputs' rhythm) and the seed's figures: hit
  precision, recall, F1, the judges' ROC AUC of real against each (0.5: indistinguishable),
  velocity and timing MSE on the true hits; then the groove metrics (hits per bar per class,
  fills, hi-hat velocity spread, micro-timing per class, change between bars and sections).
  The same figures go to evaluation.json (``table``, ``groove``, ``judge_auc``).
* ``accompany``: any length; the song's 4/4 sections in 8-bar windows (``--mode windows``,
  each window continuing from the last one's final step) or one code per section with the
  conductor over all its sub-sequences (``--mode whole``); ``--candidates`` drums per window
  ranked by the run's judge (``--rank judge``, the default when the run has one), by distance
  to the training set's typical beat (``--rank template``, the seed's discriminant) or by the
  model's own likelihood (``--rank likelihood``). Writes the original file's tracks (its
  drums removed unless ``--keep-drums``) plus the new drum track on channel 10, OUT.png (the
  drums under the song's piano, guitar and bass) and OUT.wav when fluidsynth or timidity is
  installed (else one line says how to install them; ``--no-wav`` skips it).

Every run folder gets metrics.csv, curves.png, best.npz / last.npz (``--resume`` continues
exactly), summary.json; Ctrl-C stops after the current batch and saves last.npz.

Code: apps/drums/ (data.py, groove.py, tasks.py, model.py, loss.py, train.py, evaluate.py,
judge.py, groove_metrics.py, generate.py).
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
from apps.drums.data import ROLL_MODES
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
    p.add_argument("--split-seed", type=nonnegative_int, default=0,
                   help="Lakh: the seed of the by-song train/validation/test split (0: the "
                   "reported split; others for repeated held-out estimates)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _train_args(p, epochs: int, schedule: str, beta: float, dropout: float = 0.0,
                input_dropout: float = 0.0, select: str = "loss", ss_rate: float = 0.0):
    p.add_argument("--out", help="run folder (default runs/drums/<task>-<time>)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="model size: cpu (default, 2 cores), seed (the report's size); small, "
                   "tiny: for quick runs and tests")
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
    p.add_argument("--ss-rate", type=nonnegative_float, default=ss_rate,
                   help="scheduled sampling: k of the inverse-sigmoid teacher-forcing ratio "
                   "k / (k + exp(step / k)) (MusicVAE); 0 = teacher forcing only")
    p.add_argument("--ss-mode", choices=["sample", "threshold"], default="sample",
                   help="scheduled sampling: the model's own hits drawn (sample) or thresholded "
                   "at the latest validation threshold (threshold)")
    p.add_argument("--select", choices=["loss", "free_f1"], default=select,
                   help="best.npz and early stopping by the validation loss (teacher forcing) "
                   "or the validation free-running hit F1 (best threshold)")
    p.add_argument("--enc-layers", type=positive_int, default=1,
                   help="stacked BiLSTM layers in each encoder")
    p.add_argument("--conductor-levels", type=int, choices=[1, 2], default=1,
                   help="2: a phrase conductor over a sub-conductor (the seed's three levels)")
    p.add_argument("--phrase-subs", type=positive_int, default=2,
                   help="sub-sequences per phrase with --conductor-levels 2")
    p.add_argument("--sub-bars", type=positive_int, default=None,
                   help="bars per decoder sub-sequence (default: the preset's, 2)")
    p.add_argument("--position", action="store_true",
                   help="the decoder reads the step's position in the bar")
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
    _train_args(t, 20, "layerwise", 0.2, dropout=0.3, input_dropout=0.3, select="free_f1")
    t.add_argument("--local", action="store_true",
                   help="the decoder reads each part's onsets at the step")
    t.add_argument("--bar-rhythm", action="store_true",
                   help="the decoder reads when each part plays at every step of the current bar "
                   "(the bar's rhythm, known in advance)")
    t.add_argument("--no-feedback", action="store_true",
                   help="the decoder never reads its previous drums (zeros in their place, in "
                   "training and generation alike: no exposure bias)")
    t.add_argument("--class-thresholds", action="store_true",
                   help="free-running hit thresholds chosen per drum class on validation "
                   "(default: one for all)")
    t.add_argument("--judge-epochs", type=nonnegative_int, default=8,
                   help="epochs of the two judges trained after the model (0: none)")
    t.add_argument("--pretrained", help="a pretrain-groove best.npz: its decoder side is loaded")
    t.add_argument("--roll-mode", choices=list(ROLL_MODES), default="onset",
                   help="the parts as the encoders read them: onsets (1), notes held (1), or "
                   "onsets at their velocity / 127 (velocity)")
    t.add_argument("--transpose", type=nonnegative_int, default=5,
                   help="augmentation: transpose each training window by up to this many semitones")
    e = sub.add_parser("evaluate", help="test metrics of a checkpoint, with the baselines")
    _data_args(e, 8, 2)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--threshold", type=unit_interval, default=None,
                   help="free-running hit threshold (default: the one stored, else tuned on val)")
    e.add_argument("--class-thresholds", action="store_true",
                   help="choose the free-running hit thresholds per drum class on validation "
                   "(instead of the stored ones)")
    e.add_argument("--out", help="evaluation.json path (default beside the checkpoint)")
    e.add_argument("--judge", help="a judge.npz (default: the run's, beside the checkpoint; its "
                   "hits-only judge_hits.npz beside it)")
    e.add_argument("--candidates", type=positive_int, default=4,
                   help="candidates per window of the judge-ranked row")
    a = sub.add_parser("accompany", help="write a drum track for SONG.mid")
    a.add_argument("song", help="a MIDI file with piano, guitar and/or bass")
    a.add_argument("--checkpoint", required=True, help="a `train` best.npz")
    a.add_argument("--out", required=True,
                   help="the MIDI file to write (OUT.png and OUT.wav are written beside it)")
    a.add_argument("--threshold", type=unit_interval, default=None,
                   help="hit threshold (default: the one tuned on validation)")
    a.add_argument("--temperature", type=nonnegative_float, default=0.0,
                   help="0: hits above the threshold; > 0: hits sampled from sigmoid(logit / T)")
    a.add_argument("--candidates", type=positive_int, default=4, help="drum candidates per window")
    a.add_argument("--rank", choices=["auto", "judge", "template", "likelihood"], default="auto",
                   help="how candidates are ranked: the learned judge, the distance to the "
                   "typical beat (the seed's), the model's likelihood; auto: the judge when "
                   "the run has one, else the template")
    a.add_argument("--judge", help="a judge.npz (default: the run's, beside the checkpoint)")
    a.add_argument("--no-wav", action="store_true", help="write no WAV rendering")
    a.add_argument("--mode", choices=["windows", "whole"], default="windows")
    a.add_argument("--keep-drums", action="store_true", help="keep the song's own drums too")
    a.add_argument("--seed", type=nonnegative_int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
