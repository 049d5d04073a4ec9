"""The 2017 report's network: one-hot features (B, F) -> Dense -> Sigmoid -> ... -> Dense(88)
logits (B, 88), one per piano key, trained with softmax cross-entropy (``SoftmaxCrossEntropyLoss``
fuses the softmax over the 88 keys with the log-loss). The most probable key is the next note.
"""
from __future__ import annotations

import nnscratch as nn
from apps.common.errors import rebuild_from

from .data import N_KEYS, n_features


def build_model(context: int, hidden) -> nn.Sequential:
    """Dense -> Sigmoid per hidden layer, then a linear layer to the 88 key logits."""
    sizes = [n_features(context), *hidden]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Dense(a, b), nn.Sigmoid()]
    layers.append(nn.Dense(sizes[-1], N_KEYS))
    model = nn.Sequential(*layers)
    model[0].input_grad = False  # fed with data: no dx
    return model


def load_model(path: str) -> tuple:
    """(model, config, checkpoint) from a ``model.npz`` written by training."""
    ck = nn.load_checkpoint(path)
    cfg = ck.config
    model = rebuild_from(path, cfg, lambda c: build_model(c["context"], c["hidden"]),
                         "next-note MLP", needs=("context", "hidden"))
    model.load_state_dict(ck.model)
    return model, cfg, ck
