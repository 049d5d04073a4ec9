"""Sampling tunes from a trained MusicRNN, optionally meter-aware, and handing them to
``publish`` (files, judges, index.html).

    checkpoint --load_model--> MusicRNN + Vocab --sample--> n tunes (text)
               --publish_tunes--> samples.abc, sample_NN.mid/.svg/.wav, index.html, a report
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

import nnscratch as nn
from apps.common.errors import UsageError
from apps.common.runs import read_summary
from apps.music.abc_meter import BarTracker, MeterMask

from .data import Vocab
from .model import ModelConfig, MusicRNN
from .publish import publish_tunes

MAX_TUNES = 10_000  # tunes sampled in one call (one batch row each)


def load_model(checkpoint: str) -> tuple[MusicRNN, Vocab, nn.serialization.Checkpoint]:
    """The model, its vocabulary and the loaded checkpoint (config, extra) of a best/last.npz."""
    ck = nn.load_checkpoint(checkpoint)
    if "model" not in ck.config or "vocab" not in ck.config:
        raise nn.CheckpointError(f"{checkpoint}: not an ABC LSTM checkpoint "
                                 "(no model/vocab config)")
    try:  # the config rebuilds the model: a damaged one is the checkpoint's fault, not a bug
        cfg = ModelConfig(**ck.config["model"])
        vocab = Vocab.from_json(ck.config["vocab"])
        if not all(isinstance(c, str) for c in vocab.itos) or len(vocab) != cfg.vocab_size:
            raise ValueError(f"a vocabulary of {len(vocab)} entries for {cfg.vocab_size} outputs")
        model = MusicRNN(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise nn.CheckpointError(f"{checkpoint}: damaged ABC LSTM checkpoint: its config cannot "
                                 f"rebuild the model ({type(exc).__name__}: {exc})") from None
    nn.load_checkpoint(checkpoint, model)
    return model, vocab, ck


def sample(model: MusicRNN, vocab: Vocab, prime: str, n: int, temperature: float = 0.8,
           max_chars: int = 1500, stop: str = "\n\n", seed: int = 0, meter_aware: bool = False,
           stats: dict | None = None) -> list[str]:
    """``n`` independent continuations of ``prime`` (one batch row each), stopped at ``stop``.

    The prime runs through the model as one (n, len(prime)) batch; then each step feeds the
    sampled ids (n,) back and draws from softmax(logits / temperature), (n, V). Characters the
    model never saw in ``prime`` map to <unk> with a warning.

    ``meter_aware``: before each draw, the characters that would overfill a bar or close one
    short get probability 0 (apps/music/abc_meter.py, docs/abc_meter.md); the rest are
    renormalised. ``stats``, when given, receives the model's own mean log-likelihood of what
    was sampled (nats per character, at temperature 1 and without the mask: how natural the
    text is to the model), the share of probability the mask removed, and the mask's dead ends.
    """
    if not (temperature > 0 and math.isfinite(temperature)):
        raise UsageError(f"temperature must be a finite positive number, got {temperature}")
    if not prime:
        raise UsageError("the prime must hold at least one character")
    if n < 1 or max_chars < 1:
        raise UsageError(f"n and max_chars must be at least 1, got {n} and {max_chars}")
    if n > MAX_TUNES:  # one batch row per tune: 10^20 rows never end, they fill the memory
        raise UsageError(f"n = {n} tunes in one batch; at most {MAX_TUNES:,} per call")
    ids, n_unk = vocab.encode(prime)
    if n_unk:
        unknown = sorted({c for c in prime if c not in vocab.stoi})
        warnings.warn(f"the prime holds {n_unk} character(s) the model never saw ({unknown!r}); "
                      "they are read as <unk>", stacklevel=2)
    xp = nn.backend.xp_for()
    rng = np.random.default_rng(seed)
    model.eval()
    out = [[] for _ in range(n)]
    prev = [prime[-1]] * n          # the stop sequence is two characters: "\n\n"
    done = np.zeros(n, dtype=bool)
    masker = MeterMask(vocab.itos) if meter_aware else None
    trackers = [BarTracker().feed_text(prime) for _ in range(n)] if meter_aware else None
    loglik, n_chars, removed = 0.0, 0, 0.0
    with nn.no_grad():
        logits, state = model(xp.asarray(np.tile(ids, (n, 1))))
        last = logits[:, -1]
        for _ in range(max_chars):
            z = nn.to_cpu(last).astype(np.float64)            # (n, V) on the host
            log_p1 = z - z.max(axis=1, keepdims=True)         # the model's own log-probabilities
            log_p1 -= np.log(np.exp(log_p1).sum(axis=1, keepdims=True))
            # softmax(logits / T) in float64; <unk> (id 0) is never emitted
            p = nn.functions.softmax(z / temperature, axis=-1)
            p[:, 0] = 0.0
            p /= p.sum(axis=1, keepdims=True)
            if masker is not None:
                for r in np.flatnonzero(~done):
                    allowed = masker(trackers[r])
                    removed += float(p[r, ~allowed].sum())
                    p[r, ~allowed] = 0.0
                    p[r] /= p[r].sum()
            u = rng.random((n, 1))
            nxt = np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)  # inverse CDF
            for r in np.flatnonzero(~done):
                ch = vocab.itos[nxt[r]]
                out[r].append(ch)
                loglik += log_p1[r, nxt[r]]
                n_chars += 1
                if trackers is not None:
                    trackers[r].feed(ch)
                if prev[r] + ch == stop:
                    done[r] = True
                prev[r] = ch
            if done.all():
                break
            last, state = model.step(xp.asarray(nxt.astype(np.int32)), state)
    if stats is not None:
        stats.update(model_loglik_per_char=loglik / max(n_chars, 1), chars=n_chars,
                     meter_aware=meter_aware,
                     mask_removed_mass_per_char=removed / max(n_chars, 1) if masker else 0.0,
                     mask_dead_ends=masker.dead_ends if masker else 0)
    return [(prime + "".join(o)).rstrip("\n") + "\n" for o in out]


def sample_tunes(checkpoint: str, out_dir: str, n: int, temperature: float, prime: str,
                 seed: int, max_chars: int = 1500, log=print, meter_aware: bool = False,
                 files: bool = True) -> dict:
    """Sample ``n`` tunes and publish them into ``out_dir`` (samples.abc, and per valid tune a
    MIDI file, an SVG score and a WAV recording, then index.html); return the report."""
    model, vocab, ck = load_model(checkpoint)
    stats: dict = {}
    tunes = sample(model, vocab, prime, n, temperature=temperature, max_chars=max_chars,
                   seed=seed, meter_aware=meter_aware, stats=stats)
    trained = read_summary(out_dir) or read_summary(os.path.dirname(os.path.abspath(checkpoint)))
    figures = page_figures(trained, ck, temperature, meter_aware, stats)
    report = publish_tunes(tunes, out_dir, log=log, figures=figures, files=files,
                           title=f"Folk tunes sampled from {os.path.basename(checkpoint)}")
    report.update(checkpoint=checkpoint, temperature=temperature, seed=seed, prime=prime,
                  sampling=stats)
    log(f"the model's own log-likelihood of these tunes: "
        f"{stats['model_loglik_per_char']:.4f} nats/char"
        + (f"; the meter mask removed {stats['mask_removed_mass_per_char']:.2%} of the "
           "probability per character" if meter_aware else ""))
    return report


def _rounded(value, digits: int):
    """A figure for the page: ``digits`` decimals (an int for 0), None kept as None."""
    if value is None:
        return None
    return int(round(value)) if digits == 0 else round(float(value), digits)


def page_figures(trained: dict, ck, temperature: float, meter_aware: bool, stats: dict) -> dict:
    """The figures index.html shows above the tunes: the training run's and the sampling's."""
    hp = ck.config.get("hp", {})
    figures = {}
    if trained:
        figures.update({
            "training steps": trained.get("steps"),
            "validation cross-entropy (nats/char)": _rounded(
                trained.get("best_val_cross_entropy"), 4),
            "validation accuracy": _rounded(trained.get("val_accuracy"), 4),
            "training time (s)": _rounded(trained.get("train_seconds"), 0),
            "tokens per second": _rounded(trained.get("tokens_per_s"), 0)})
    if hp:
        figures["model"] = (f"{hp.get('layers')} x LSTM {hp.get('hidden')}, embedding "
                            f"{hp.get('embedding')} ({hp.get('preset')} preset)")
    figures["temperature"] = temperature
    figures["meter-aware sampling"] = "on" if meter_aware else "off"
    figures["model's log-likelihood of the samples (nats/char)"] = round(
        stats.get("model_loglik_per_char", float("nan")), 4)
    return {k: v for k, v in figures.items() if v is not None}


def decode_prime(text: str) -> str:
    r"""The --prime value with its escapes read (``X:1\nK:D\n`` -> two lines)."""
    try:  # backslashreplace: characters beyond Latin-1 ('€') pass through as themselves
        prime = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--prime {text!r}: bad escape sequence ({exc.reason})") from None
    try:
        prime.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes of the command line that are not UTF-8
        raise UsageError(f"--prime {text!r}: not UTF-8 text") from None
    return prime


def sample_cmd(args) -> None:
    """The ``sample`` command: tunes into --out (default: the checkpoint's folder)."""
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    sample_tunes(args.checkpoint, out, args.n, args.temperature, decode_prime(args.prime),
                 args.seed, args.max_chars, meter_aware=args.meter_aware)
