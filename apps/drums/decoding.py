"""Stepping the drum model's decoder on its own outputs (apps/drums/model.py; equations (7)-(9)
and (7b) of docs/derivations/drum_vae.md), with no gradient: free-running generation
(``DrumVAE.generate``) and scheduled sampling (``scheduled_inputs``, called by
``DrumVAE.forward`` in training), which decides, step by step, which drums the training pass is
fed: the true previous step's, or the model's own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import nnscratch as nn
from nnscratch.functions.activation import sigmoid

from . import groove

K = groove.N_CLASSES  # 9 drum classes
HVO = 3 * K           # one decoder step's drums: [H | V | O]


@dataclass
class Sampling:
    """Scheduled sampling for one training batch (Bengio et al. 2015; MusicVAE).

    ``ratio``: the teacher-forcing ratio, the probability that step t is fed the true previous
    drums; otherwise it is fed the model's own output of step t - 1, drawn per window and step.
    ``mode``: 'sample' (own hits drawn from Bernoulli(sigmoid(logit)), as MusicVAE does) or
    'threshold' (sigmoid(logit) > ``threshold``, as ``generate`` decodes). ``rng``: a numpy
    Generator (the trainer seeds it per batch, so a resumed run draws the same)."""

    ratio: float
    rng: np.random.Generator = field(repr=False)
    mode: str = "sample"
    threshold: float = 0.5


def free_run(model, c, h0, c0, extras, n_steps: int, choose, given=None, use_given=None,
             start=None, keep=None, record=None):
    """Step the decoder through ``n_steps`` steps, each sub-sequence from its own initial
    state, with no gradient. The drums fed at step t are ``given[:, t]`` where
    ``use_given[:, t]`` (all steps when use_given is None and given is not), else the
    model's own output of step t - 1 (``start`` before step 0, zeros by default), times
    ``keep[:, t]`` (teacher-forcing dropout). ``choose(t, logit) -> (hits, p)`` decides
    the hits of step t. Returns the fed drums (B, n_steps, 27); ``record`` (a dict of
    (B, n_steps, K) arrays) receives H, V, O, v_raw, o_raw, p."""
    xp_ = nn.get_array_module(c)
    dtype = c.dtype
    B, U = c.shape[0], c.shape[1]
    S = model.cfg.sub_steps
    L = h0.shape[0]
    h0 = h0.reshape(L, B, U, -1)
    c0 = c0.reshape(L, B, U, -1)
    own = xp_.zeros((B, HVO), dtype) if start is None else xp_.asarray(start, dtype)
    fed = xp_.zeros((B, n_steps, HVO), dtype)
    with nn.no_grad():
        for u in range(U):
            state = (xp_.ascontiguousarray(h0[:, :, u]), xp_.ascontiguousarray(c0[:, :, u]))
            for t in range(u * S, min((u + 1) * S, n_steps)):
                inp = own
                if not model.cfg.feedback:
                    inp = xp_.zeros_like(own)          # (7c) no previous drums
                elif given is not None:
                    inp = given[:, t] if use_given is None else \
                        xp_.where(use_given[:, t, None], given[:, t], own)
                if keep is not None:
                    inp = inp * keep[:, t]
                fed[:, t] = inp
                extra_t = None if extras is None else extras[:, t]
                y, state = model.decoder.step(model._decoder_input(inp, c[:, u], extra_t), state)
                logit, v, o = model.heads(y)                                     # (9)
                h, p = choose(t, logit)
                own = xp_.concatenate([h, v * h, o * h], axis=-1)
                if record is not None:
                    for k, a in (("H", h), ("V", v * h), ("O", o * h), ("v_raw", v),
                                 ("o_raw", o), ("p", p)):
                        record[k][:, t] = nn.to_cpu(a)
    return fed


def scheduled_inputs(model, prev, c, h0, c0, extras, keep, sampling: Sampling):
    """Scheduled sampling: the drums fed in (7), each step the true previous one with
    probability ``sampling.ratio``, else the model's own output of the step before, from a
    step-by-step pass without gradient over the same c, initial states and extras (its
    results are data for the training pass, which then reproduces its states exactly)."""
    xp_ = nn.get_array_module(prev)
    B, T, _ = prev.shape
    rng = sampling.rng
    use_true = rng.random((B, T)) < sampling.ratio
    use_true[:, 0] = True                  # step 0 is fed zeros either way
    if use_true.all():
        return prev if keep is None else prev * keep
    if sampling.mode == "sample":
        def choose(t, logit):
            p = sigmoid(logit)
            return (xp_.asarray(rng.random(p.shape)) < p).astype(p.dtype), p
    elif sampling.mode == "threshold":
        def choose(t, logit):
            p = sigmoid(logit)
            return (p > sampling.threshold).astype(p.dtype), p
    else:
        raise ValueError(f"scheduled sampling mode must be 'sample' or 'threshold', got "
                         f"{sampling.mode!r}")
    return free_run(model, c, h0, c0, extras, T, choose, given=prev,
                    use_given=xp_.asarray(use_true), keep=keep)


__all__ = ["K", "HVO", "Sampling", "free_run", "scheduled_inputs"]
