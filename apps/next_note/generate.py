"""Generation: note by note, sampling the softmax over the 88 keys with a temperature, on the
rhythm of a held-out tune (the network predicts keys, not durations, as in the report); written
to MIDI with a piano roll (PNG), a score (MusicXML) and a WAV where fluidsynth or timidity is
installed (apps/music/render.py).
"""
from __future__ import annotations

import os

import numpy as np

import nnscratch as nn
from apps.common.errors import UsageError
from apps.music import midi, render

from .data import (
    LOW_KEY,
    N_KEYS,
    NO_DUR,
    NO_NOTE,
    Examples,
    Tune,
    check_keys,
    dur_class,
    features,
    pos_slot,
)
from .model import load_model


def template_of(t: Tune) -> dict:
    """A held-out tune as a JSON-able rhythm template (kept in the checkpoint)."""
    return {"name": t.name, "pitches": [int(p) for p in t.pitches],
            "durs": [float(d) for d in t.durs],
            "pos": [None if np.isnan(p) else float(p) for p in t.pos], "bar_len": t.bar_len,
            "tempo": float(t.tempo), "meter": list(t.meter)}


def rhythm(template: dict, n_notes: int) -> tuple:
    """Durations and bar positions (n_notes,) each, cycling the template's rhythm if needed."""
    durs = [template["durs"][i % len(template["durs"])] for i in range(n_notes)]
    bar = template["bar_len"]
    p0 = template["pos"][0]
    if bar is None or p0 is None:
        return np.array(durs), np.full(n_notes, np.nan)
    pos = (p0 + np.concatenate([[0.0], np.cumsum(durs[:-1])])) % bar
    return np.array(durs), pos


def generate(model, context: int, template: dict, n_notes: int, prime=None,
             temperature: float = 1.0, rng=None) -> tuple:
    """Sample keys note by note. Returns (pitches, durations in beats)."""
    if temperature <= 0:
        raise UsageError(f"temperature must be positive, got {temperature}")
    rng = rng or np.random.default_rng(0)
    prime = list(template["pitches"][:context] if prime is None else prime)
    check_keys(prime, "prime pitch")
    n_notes = max(n_notes, len(prime))
    durs, pos = rhythm(template, n_notes)
    pitches = list(prime)
    model.eval()
    with nn.no_grad():
        for i in range(len(prime), n_notes):
            pad = max(0, context - i)        # slots before the first note
            prev = [NO_NOTE] * pad + [p - LOW_KEY for p in pitches[max(0, i - context):i]]
            prev_d = [NO_DUR] * pad + list(dur_class(durs[max(0, i - context):i]))
            ex = Examples(np.array([prev]), np.array([prev_d]), dur_class(durs[i:i + 1]),
                          pos_slot(pos[i:i + 1]), np.zeros(1, dtype=np.int64))
            x = nn.to_device(features(ex, [0], context))
            logits = nn.to_cpu(model(x))[0].astype(np.float64) / temperature
            prob = np.exp(logits - logits.max())
            prob /= prob.sum()
            pitches.append(LOW_KEY + int(rng.choice(N_KEYS, p=prob)))
    model.train()
    return pitches, durs


def write_generated(path: str, pitches, durs, template: dict, title: str | None = None,
                    prime: int = 0, files: bool = True) -> dict:
    """MIDI at ``path`` and, with ``files``, its PNG (the first ``prime`` notes in orange),
    MusicXML and WAV beside it: {'midi', 'png', 'musicxml', 'wav'}."""
    midi.write_monophonic(path, pitches, list(durs), tempo=template["tempo"],
                          time_signature=tuple(template["meter"]), name="next-note MLP")
    if not files:
        return {"midi": path}
    mark = float(np.sum(durs[:prime])) if prime else None
    return render.render_all(path, title=title or os.path.basename(path), mark_beat=mark)


def parse_prime(text: str | None) -> list | None:
    """'67 69 71' (or comma separated) -> [67, 69, 71]; None for no prime."""
    if not text:
        return None
    try:
        return [int(p) for p in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"--prime must be MIDI pitches separated by spaces, got {text!r}") \
            from None


def generate_cmd(args) -> dict:
    """``generate``: sample a melody from a checkpoint on a held-out tune's rhythm, to MIDI."""
    model, cfg, ck = load_model(args.checkpoint)
    templates = ck.extra["templates"]
    template = templates[args.template % len(templates)]
    pitches, durs = generate(model, cfg["context"], template, args.notes, parse_prime(args.prime),
                             args.temperature, np.random.default_rng(args.seed))
    out = args.out or os.path.join(os.path.dirname(args.checkpoint), "generated.mid")
    n_prime = len(parse_prime(args.prime) or template["pitches"][:cfg["context"]])
    files = write_generated(out, pitches, durs, template, prime=n_prime,
                            title=f"next-note MLP (rhythm of {template['name']}, "
                                  f"T={args.temperature})")
    print(f"wrote {', '.join(f for f in files.values() if f)}: {len(pitches)} notes, pitches "
          f"{min(pitches)}-{max(pitches)}, rhythm of {template['name']}")
    return {"file": out, "pitches": pitches, "files": files}
