"""Melodies from the LSTM: a prime (tokens, ABC or the demo tune) warms the state up, then
symbols are sampled one sixteenth step at a time and written as MIDI with a piano roll (PNG),
a score (MusicXML) and a WAV where fluidsynth or timidity is installed (apps/music/render.py).
``sample_songs`` draws whole songs, many at once (from the song delimiter to the next one), for
the judges (apps/melody/judges.py); ``sample_chain`` does the same from a bigram's table.

``--prime`` takes a token string (used as is: the model knows C major / A minor), ABC
(transposed like the training songs: ``K:Cmaj`` or ``K:Am`` fixes the key, a bare ``K:C`` is
analysed, so a phrase ending on G may be read as G major), or ``demo``: the first phrase of
"Ah ! vous dirai-je, maman" (``DEMO_ABC``, written for this app).
"""
from __future__ import annotations

import os

import numpy as np

from apps.common.errors import UsageError
from apps.music import esac, render

from .data import DELIM, Vocab
from .lstm_model import load_model

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


def sample_songs(model, vocab: Vocab, n: int, rng, temperature: float = 1.0,
                 max_steps: int = 1024) -> list:
    """n songs drawn at once: each starts after the delimiter '/' and ends at the next '/' the
    model draws (or after ``max_steps`` sixteenths). Returns n token lists. A song that starts
    with a hold gets a rest in its place (a hold needs something before it)."""
    if temperature <= 0:
        raise UsageError(f"temperature must be positive, got {temperature}")
    delim = vocab.index[DELIM]
    model.eval()
    logits, state = model.step(np.full(n, delim), None)
    out = [[] for _ in range(n)]
    alive = np.ones(n, dtype=bool)
    for _ in range(max_steps):
        z = logits.astype(np.float64) / temperature
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        nxt = (p.cumsum(1) < rng.random((n, 1))).sum(1).clip(0, len(vocab) - 1)
        alive &= nxt != delim
        if not alive.any():
            break
        for i in np.flatnonzero(alive):
            out[i].append(vocab.symbols[nxt[i]])
        logits, state = model.step(nxt, state)
    model.train()
    return [_fix_start(t) for t in out]


def sample_chain(prob: np.ndarray, vocab: Vocab, n: int, rng, max_steps: int = 1024) -> list:
    """n songs from a first-order chain P(next | current) (V, V), like ``sample_songs``."""
    delim = vocab.index[DELIM]
    cdf = prob.cumsum(1)
    out = []
    for _ in range(n):
        cur, toks = delim, []
        for _ in range(max_steps):
            cur = min(int((cdf[cur] < rng.random()).sum()), len(vocab) - 1)
            if cur == delim:
                break
            toks.append(vocab.symbols[cur])
        out.append(_fix_start(toks))
    return out


def _fix_start(tokens: list) -> list:
    return [esac.REST] + tokens[1:] if tokens and tokens[0] == esac.HOLD else tokens


def write_generation(path: str, tokens, n_prime: int, meter=(4, 4), tempo: float = 100.0,
                     title: str | None = None) -> dict:
    """MIDI at ``path`` and beside it its piano roll (.png, the prime in orange), score
    (.musicxml) and recording (.wav, where a renderer is installed); returns what was
    written."""
    esac.tokens_to_midi(path, tokens, tempo=tempo, time_signature=meter)
    files = render.render_all(path, title=title or os.path.basename(path),
                              mark_beat=n_prime * esac.STEP if n_prime else None)
    pitches = [int(t) for t in tokens if t not in (esac.HOLD, esac.REST)]
    return {"file": path, "plot": files["png"], "musicxml": files.get("musicxml"),
            "wav": files.get("wav"), "steps": len(tokens), "prime_steps": n_prime,
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
    extra = ", ".join(f for f in (info["plot"], info["musicxml"], info["wav"]) if f)
    print(f"wrote {out} ({extra}): {info['notes']} notes, {info['steps']} steps ({len(prime)} "
          f"from the prime), pitches {info['pitch_range']}")
    return info
