"""Melodies from the LSTM: a prime (tokens, ABC or the demo tune) warms the state up, then
symbols are sampled one sixteenth step at a time and written as MIDI with a piano roll.

``--prime`` takes a token string (used as is: the model knows C major / A minor), ABC
(transposed like the training songs: ``K:Cmaj`` or ``K:Am`` fixes the key, a bare ``K:C`` is
analysed, so a phrase ending on G may be read as G major), or ``demo``: the first phrase of
"Ah ! vous dirai-je, maman" (``DEMO_ABC``, written for this app).
"""
from __future__ import annotations

import os

import numpy as np

from apps.common.errors import UsageError
from apps.music import esac

from .data import DELIM, Vocab
from .lstm_model import load_model
from .plots import plot_melody

# "Ah ! vous dirai-je, maman" (French, 18th century; the tune of "Twinkle, twinkle"),
# written out for this app: the first phrase is the demo prime.
DEMO_ABC = """X:1
T:Ah ! vous dirai-je, maman
M:2/4
L:1/4
K:C
C C | G G | A A | G2 | F F | E E | D D | C2 |
"""


def prime_tokens(prime: str) -> tuple:
    """A prime as tokens, with the meter when it came as ABC: (tokens, (num, den))."""
    text = DEMO_ABC if prime.strip().lower() == "demo" else prime.replace("\\n", "\n")
    if esac.looks_like_tokens(text):
        return esac.parse_tokens(text), (4, 4)
    tokens, song = esac.abc_to_tokens(text)
    meter = tuple(int(x) for x in song.meter.split("/")) if song.meter else (4, 4)
    return tokens, meter


def generate(model, vocab: Vocab, prime, steps: int, temperature: float = 1.0, rng=None,
             stop_at_end: bool = False) -> list:
    """Feed '/' and the prime, then sample ``steps`` symbols. Returns prime + new tokens.

    The delimiter '/' is never sampled unless ``stop_at_end``, where it ends the melody. A hold
    '_' right after the prime's end is allowed (it lengthens the prime's last note).
    """
    if temperature <= 0:
        raise UsageError(f"temperature must be positive, got {temperature}")
    rng = rng or np.random.default_rng(0)
    ids = vocab.encode([DELIM, *prime])
    model.eval()
    state, logits = None, None
    for i in ids:                       # warm the state up on the prime
        logits, state = model.step(np.array([i]), state)
    out = list(prime)
    delim = vocab.index[DELIM]
    for _ in range(steps):
        z = logits[0].astype(np.float64) / temperature
        if not stop_at_end:
            z[delim] = -np.inf
        p = np.exp(z - z.max())
        p /= p.sum()
        nxt = int(rng.choice(len(p), p=p))
        if nxt == delim:
            break
        out.append(vocab.symbols[nxt])
        logits, state = model.step(np.array([nxt]), state)
    model.train()
    return out


def write_generation(path: str, tokens, n_prime: int, meter=(4, 4), tempo: float = 100.0) -> dict:
    """MIDI at ``path`` and its piano roll beside it (.png); returns what was written."""
    esac.tokens_to_midi(path, tokens, tempo=tempo, time_signature=meter)
    png = os.path.splitext(path)[0] + ".png"
    plot_melody(tokens, n_prime, png, os.path.basename(path))
    pitches = [int(t) for t in tokens if t not in (esac.HOLD, esac.REST)]
    return {"file": path, "plot": png, "steps": len(tokens), "prime_steps": n_prime,
            "notes": len(pitches),
            "pitch_range": [min(pitches), max(pitches)] if pitches else None}


def generate_cmd(args) -> dict:
    """``generate``: continue a prime from a checkpoint and write MIDI + piano roll."""
    model, vocab, _ = load_model(args.checkpoint)
    prime, meter = prime_tokens(args.prime)
    tokens = generate(model, vocab, prime, args.steps, args.temperature,
                      np.random.default_rng(args.seed), stop_at_end=args.stop_at_end)
    out = args.out or os.path.join(os.path.dirname(args.checkpoint), f"generated_{args.seed}.mid")
    info = write_generation(out, tokens, len(prime), meter, args.tempo)
    print(f"wrote {out}: {info['notes']} notes, {info['steps']} steps ({len(prime)} from the "
          f"prime), pitches {info['pitch_range']}")
    return info
