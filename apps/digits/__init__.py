"""Spoken-digit and speaker classifiers on FSDD (seed 003); entry: apps/spoken_digits.py.

    data.py      FSDD recordings -> feature images (N, height, frames) and labels, cached
    model.py     HParams, the MLP and the CNN, CMVN + standardisation (prepare), predict_proba,
                 checkpoints (save, load, latest)
    augment.py   which augmentations train with, their ranges, the per-epoch Augmenter
                 (the signal processing itself: apps/audio/augment.py)
    train.py     the training loop, held-out fits, K-fold CV, majority vote, grid search;
                 the `train` and `speakers` commands
    loso.py      the `loso` command: leave one speaker out, settings chosen by speaker CV inside
                 the training speakers, per-fold report
    evaluate.py  accuracy, per-speaker accuracy, confusion matrix, error distances, their plots;
                 the `evaluate` and `predict` commands (recordings read by
                 apps/audio/recording.py)
"""
