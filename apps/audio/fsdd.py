"""The Free Spoken Digit Dataset (FSDD): file names, speakers, splits.

Layout (../shared/data/fsdd/SOURCE.md): ``recordings/{digit}_{speaker}_{index}.wav``, 8 kHz mono,
6 speakers x 10 digits x 50 repetitions, and ``speakers.csv`` (speaker, gender, accent, language).

Where the data is read from, first match wins:
    1. an explicit path (the apps' ``--data`` flag);
    2. the environment variable ``NNSCRATCH_DATA_FSDD``;
    3. ``<repo>/../shared/data/fsdd`` (the project's shared data folder).
The data is read in place, never copied into the project.

Splits:
    ``official_split``: recordings with index 0-4 are the test set (FSDD's README), 5-49 train;
    ``loso_splits``: leave one speaker out, so no speaker is in both train and test;
    ``kfold``: K stratified folds of a set of indices (cross-validation on the training data).
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass

import numpy as np

ENV_VAR = "NNSCRATCH_DATA_FSDD"
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ROOT = os.path.normpath(os.path.join(_REPO, "..", "shared", "data", "fsdd"))
SAMPLE_RATE = 8000
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class Recording:
    path: str
    digit: int
    speaker: str
    index: int


def resolve_root(path: str | None = None) -> str:
    """The FSDD folder (flag > NNSCRATCH_DATA_FSDD > default); a clear error if it is missing."""
    root = path or os.environ.get(ENV_VAR) or DEFAULT_ROOT
    source = "--data" if path else (ENV_VAR if os.environ.get(ENV_VAR) else "the default path")
    if not os.path.isdir(os.path.join(root, "recordings")):
        raise FileNotFoundError(
            f"FSDD not found at {root} (from {source}): expected a folder holding recordings/"
            f"{{digit}}_{{speaker}}_{{index}}.wav. Pass --data PATH or set {ENV_VAR}."
        )
    return root


def parse_name(filename: str) -> tuple[int, str, int]:
    """'7_jackson_32.wav' -> (7, 'jackson', 32); ValueError for any other name."""
    m = _NAME.match(os.path.basename(filename))
    if not m:
        raise ValueError(f"not an FSDD file name (digit_speaker_index.wav): {filename!r}")
    return int(m.group(1)), m.group(2), int(m.group(3))


def list_recordings(root: str | None = None) -> list[Recording]:
    """Every recording under root/recordings, sorted by (speaker, digit, index)."""
    root = resolve_root(root)
    folder = os.path.join(root, "recordings")
    recs = []
    for name in os.listdir(folder):
        if not name.endswith(".wav"):
            continue
        digit, speaker, index = parse_name(name)
        recs.append(Recording(os.path.join(folder, name), digit, speaker, index))
    if not recs:
        raise FileNotFoundError(f"{folder} holds no .wav files")
    recs.sort(key=lambda r: (r.speaker, r.digit, r.index))
    return recs


def read_speakers(root: str | None = None) -> list[dict]:
    """Rows of speakers.csv (speaker, gender, accent, language); [] if the file is absent."""
    path = os.path.join(resolve_root(root), "speakers.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def speaker_names(recs) -> list[str]:
    return sorted({r.speaker for r in recs})


def official_split(recs, test_indices=range(5)):
    """(train, test) index arrays into recs: index 0-4 test, the rest train (FSDD's README)."""
    test_set = set(test_indices)
    is_test = np.array([r.index in test_set for r in recs])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def loso_splits(recs):
    """[(speaker, train, test)]: each speaker held out once, trained on the others."""
    speakers = np.array([r.speaker for r in recs])
    return [(s, np.flatnonzero(speakers != s), np.flatnonzero(speakers == s))
            for s in speaker_names(recs)]


def kfold(indices, labels, k: int = 5, seed: int = 0):
    """K stratified folds: [(train, val)], each class spread evenly over the folds.

    indices: (n,) positions (into the full dataset); labels: (n,) the class of each.
    """
    indices, labels = np.asarray(indices), np.asarray(labels)
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    if len(indices) < k:
        raise ValueError(f"cannot split {len(indices)} examples into {k} folds")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(indices), dtype=np.int64)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold_of[members] = (rng.integers(k) + np.arange(len(members))) % k
    return [(indices[fold_of != f], indices[fold_of == f]) for f in range(k)]


__all__ = ["Recording", "ENV_VAR", "DEFAULT_ROOT", "SAMPLE_RATE", "resolve_root", "parse_name",
           "list_recordings", "read_speakers", "speaker_names", "official_split", "loso_splits",
           "kfold"]
