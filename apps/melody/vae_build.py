"""Choosing, loading and feeding the melody VAEs: one set of calls for the seed's sigmoid MLP
(``MelodyVAE``), the categorical MLP (``CategoricalMLPVAE``) and the sequence model
(``SeqVAE``), so that training, sampling and interpolation need not know which one they hold.

    model = build_vae(cfg, "notes", max_len)          # cfg: arch, output, sizes (vae_train.PRESETS)
    x = model_input(model, codes, lengths, "notes")    # what forward and the loss take
    mu, log_var = encode_codes(model, codes, lengths, "notes")
    codes, lengths = decode_codes(model, z, "notes")   # back to the data's codes
"""
from __future__ import annotations

import numpy as np

import nnscratch as nn

from .data import N_CLASSES, denormalise, from_classes, normalise, to_classes
from .vae_model import CategoricalMLPVAE, CategoricalVAELoss, MelodyVAE, VAELoss
from .vae_seq_model import SeqVAE


# ----------------------------------------------------------------------------------------------
def is_categorical(model) -> bool:
    return not isinstance(model, MelodyVAE)


def model_input(model, codes, lengths, kind: str):
    """What ``model.forward`` takes (and its loss compares with) for codes (S, max_len):
    normalised float32 codes for ``MelodyVAE``, class ids for the categorical models."""
    if is_categorical(model):
        return to_classes(codes, lengths, kind)
    return normalise(codes, kind).astype(np.float32)


def make_loss(model, beta: float):
    return CategoricalVAELoss(beta) if is_categorical(model) else VAELoss(beta)


def encode_codes(model, codes, lengths, kind: str):
    """(mu, log_var) of codes (S, max_len), in batches of 1024; CPU arrays."""
    x = model_input(model, codes, lengths, kind)
    parts = [model.encode(x[s:s + 1024]) for s in range(0, len(x), 1024)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def decode_codes(model, z, kind: str, rng=None, temperature: float = 1.0) -> tuple:
    """Latent codes z (S, latent) -> (codes (S, max_len) padded like data.segments, lengths)."""
    z = np.asarray(z, dtype=np.float32)
    if is_categorical(model):
        return from_classes(model.decode(z, rng, temperature), kind)
    codes = denormalise(model.decode(z), kind)
    return codes, np.full(len(codes), codes.shape[1])


def latent_prior(model, x) -> dict:
    """The fitted sampling prior: mean (latent,), std (latent,) and the Cholesky factor
    (latent, latent) of the covariance of the codes mu(x) over the training set (x as
    ``model.forward`` takes it). The full covariance keeps the codes' correlations: samples
    drawn with the diagonal alone land further from the data."""
    mu = np.concatenate([model.encode(x[s:s + 1024])[0] for s in range(0, len(x), 1024)])
    mu = mu.astype(np.float64)
    cov = np.cov(mu.T) if len(mu) > 1 else np.eye(mu.shape[1])
    chol = np.linalg.cholesky(cov + 1e-6 * np.eye(len(cov)) * max(1.0, np.trace(cov) / len(cov)))
    return {"latent_mean": mu.mean(0), "latent_std": mu.std(0) + 1e-6, "latent_chol": chol}


def build_vae(cfg: dict, kind: str, length: int):
    """The model a configuration names: ``arch`` 'mlp' (default) with ``output`` 'sigmoid'
    (the slides', default) or 'categorical', or ``arch`` 'seq' (vae_seq_model.SeqVAE)."""
    arch, output = cfg.get("arch", "mlp"), cfg.get("output", "sigmoid")
    if arch == "seq":
        return SeqVAE(length, N_CLASSES[kind], embed=cfg["embed"], enc_hidden=cfg["enc_hidden"],
                      dec_hidden=cfg["hidden"], latent=cfg["latent"], cond=cfg["cond"],
                      free_bits=cfg.get("free_bits", 0.0),
                      word_dropout=cfg.get("word_dropout", 0.0))
    if output == "categorical":
        return CategoricalMLPVAE(length, N_CLASSES[kind], cfg["hidden"], cfg["latent"],
                                 free_bits=cfg.get("free_bits", 0.0))
    return MelodyVAE(length, cfg["hidden"], cfg["latent"])


def load_vae(path: str) -> tuple:
    """(model in eval mode, fitted prior (mean, std, Cholesky factor or None) or None) from a
    checkpoint."""
    ck = nn.load_checkpoint(path)
    c = ck.config
    model = build_vae(c, c["kind"], c.get("length", c.get("input_dim")))
    model.load_state_dict(ck.model)
    model.eval()
    prior = None
    if "latent_mean" in ck.arrays:
        prior = (ck.arrays["latent_mean"], ck.arrays["latent_std"], ck.arrays.get("latent_chol"))
    return model, prior
