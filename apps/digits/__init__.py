"""Spoken-digit and speaker classifiers on FSDD (seed 003); entry: apps/spoken_digits.py.

    data.py      FSDD recordings -> feature images (N, height, frames) and labels, cached
    model.py     HParams, the MLP and the CNN, predict_proba, checkpoints (save, load, latest)
    train.py     the training loop, held-out fits, K-fold CV, majority vote, grid search;
                 the `train` and `speakers` commands
    evaluate.py  accuracy, per-speaker accuracy, confusion matrix, error distances, their plots;
                 the `evaluate` and `predict` commands
"""
