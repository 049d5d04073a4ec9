"""The melody LSTM's ``judge`` command: melodies from every generator, judged side by side
against real held-out songs by apps/melody/judges.py, in one table in summary.json.

The split is the apps' own (``data.load_split``: held-out songs by ``--val-frac`` and
``--seed``), with the training songs cut in two halves (``data.split_halves``): the generators
should have learnt from half a (``train --train-half a`` in each app), the judges' n-gram
learns from half b, and the plagiarism check looks for copies of half a's songs. A generator
trained on other songs is judged anyway, and its row says ``independent: false``.

Generators (each n melodies, as a user gets them):

* ``melody LSTM``: whole songs sampled from the song delimiter to the next one, at
  ``--temperature``;
* ``bigram``: the same from the LSTM's bigram baseline (next sixteenth-step symbol given the
  current one, add-0.1 smoothing, counted on half a);
* ``melody VAE (<arch>)``: z from the fitted prior, each position's most likely class;
* ``next-note MLP``: pitches sampled note by note on the rhythm of a held-out song (one per
  melody, in turn), its prime of real notes left out of the judged melody.

Writes in ``--out``: summary.json (the table, who beats the bigram where, timings) and the
first ``--files`` melodies of each generator as MIDI with PNG, MusicXML and WAV.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter

import numpy as np

from apps.common.errors import UsageError
from apps.common.runs import make_run_dir, write_summary
from apps.music import esac, midi, render
from apps.next_note.data import tune_from_song
from apps.next_note.generate import generate as next_note_generate
from apps.next_note.generate import template_of
from apps.next_note.model import load_model as load_next_note

from .data import load_split, split_halves, stream
from .judges import JUDGES, Judge, wins
from .lstm_generate import sample_chain, sample_songs
from .lstm_model import load_model as load_lstm
from .lstm_train import bigram_probs
from .vae_build import load_vae
from .vae_generate import sample_melodies

APP = "melody_judge"
LABELS = {"in_key": "in key", "pitch_class_distance": "pc dist", "interval_distance": "int dist",
          "bar_fill": "bars full", "longest_copy": "copy", "cross_entropy": "CE nats"}


def _independent(cfg: dict, args) -> bool:
    """Was this generator trained on half a of this very split?"""
    return (cfg.get("train_half") == "a" and cfg.get("subset") == args.subset
            and cfg.get("seed") == args.seed
            and abs(float(cfg.get("val_frac", -1)) - args.val_frac) < 1e-12)


def _write_events(path: str, events, title: str, meter=(2, 4)) -> list:
    if not events:
        events = [(None, 4.0)]
    midi.write_monophonic(path, [p for p, _ in events], [d for _, d in events], tempo=100.0,
                          time_signature=meter, name="judged melody")
    return [f for f in render.render_all(path, title=title).values() if f]


def _vae_melodies(run: str, n: int, rng) -> tuple:
    (nv, n_prior), (rv, r_prior) = (load_vae(os.path.join(run, f"{k}.npz"))
                                    for k in ("notes", "rhythm"))
    mels = sample_melodies(nv, rv, n, rng, {"notes": n_prior, "rhythm": r_prior})
    summary = {}
    path = os.path.join(run, "summary.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    name = f"melody VAE ({summary.get('arch', 'mlp')})"
    return name, [list(zip(p, d)) for p, d in mels], summary


def judge(args) -> dict:
    """``judge``: sample every generator given, score all against the held-out songs."""
    t0 = time.perf_counter()
    run = make_run_dir(args.out, APP)
    songs, stats, train, held = load_split(args.subset, args.data, args.limit, args.val_frac,
                                           args.seed, args.progress)
    half_a, half_b = split_halves(train, args.seed)
    def decode(song):
        return esac.decode(song.tokens)

    bar_ql = Counter(s.bar_ql for s in train if s.bar_ql).most_common(1)[0][0]
    judge_ = Judge([decode(s) for s in held], [decode(s) for s in half_a],
                   [decode(s) for s in half_b], bar_ql)
    print(f"data: {args.subset}: {len(held)} held-out songs (the real songs), {len(half_a)} "
          f"training songs for the generators (half a), {len(half_b)} for the judges' n-gram "
          f"(half b); bars of {bar_ql} beats (the commonest meter)")
    rng = np.random.default_rng(args.seed)
    sets, info = {}, {}

    model, vocab, ck = load_lstm(args.lstm)
    t = time.perf_counter()
    toks = sample_songs(model, vocab, args.n, rng, args.temperature, args.max_steps)
    sets["melody LSTM"] = [esac.decode(x) for x in toks]
    info["melody LSTM"] = {"source": args.lstm, "independent": _independent(ck.config, args),
                           "temperature": args.temperature, "seconds": time.perf_counter() - t}
    t = time.perf_counter()
    prob = bigram_probs(stream([s.tokens for s in half_a], vocab), len(vocab))
    sets["bigram"] = [esac.decode(x) for x in sample_chain(prob, vocab, args.n, rng,
                                                           args.max_steps)]
    info["bigram"] = {"source": "counted on half a", "independent": True,
                      "seconds": time.perf_counter() - t}
    for vae_run in args.vae or []:
        t = time.perf_counter()
        name, mels, summ = _vae_melodies(vae_run, args.n, rng)
        if name in sets:
            raise UsageError(f"two --vae runs of the same arch ({name}): judge one at a time")
        sets[name] = mels
        cfg = {**summ.get("config", {}).get("notes", {}), **{k: summ.get(k) for k in
                                                             ("subset", "train_half", "seed",
                                                              "val_frac")}}
        info[name] = {"source": vae_run, "independent": _independent(cfg, args),
                      "seconds": time.perf_counter() - t}
    if args.next_note:
        t = time.perf_counter()
        nn_model, cfg, _ = load_next_note(args.next_note)
        ctx = cfg["context"]
        templates = [template_of(x) for x in map(tune_from_song, held)
                     if x is not None and len(x.pitches) > ctx + 1]
        mels = []
        for i in range(args.n):
            tpl = templates[i % len(templates)]
            p, d = next_note_generate(nn_model, ctx, tpl, len(tpl["pitches"]),
                                      temperature=args.temperature, rng=rng)
            mels.append(list(zip(p[ctx:], d[ctx:])))
        sets["next-note MLP"] = mels
        info["next-note MLP"] = {"source": args.next_note, "independent": _independent(cfg, args),
                                 "temperature": args.temperature,
                                 "seconds": time.perf_counter() - t}

    table = judge_.table(sets)
    beats = wins(table, "melody LSTM", "bigram")
    files = []
    for name, mels in sets.items():
        slug = name.split(" (")[0].replace(" ", "_").replace("-", "_").lower()
        if "(" in name:
            slug += "_" + name.split("(")[1].rstrip(")")
        for i, m in enumerate(mels[:args.files]):
            files += _write_events(os.path.join(run, f"{slug}_{i}.mid"), m, f"{name}, sample {i}")
    print_table(table)
    print(f"melody LSTM closer to the real songs than the bigram on {len(beats)} of "
          f"{len(JUDGES)} judges: {', '.join(beats) or 'none'}")
    summary = {
        "app": APP, "subset": args.subset, "val_frac": args.val_frac, "seed": args.seed,
        "n": args.n, "bar_ql": bar_ql,
        "data": {"songs": stats, "held_out_songs": len(held), "half_a": len(half_a),
                 "half_b": len(half_b)},
        "judges": table, "generators": info,
        "lstm_vs_bigram": {"closer_on": beats, "count": len(beats), "of": len(JUDGES),
                           "goal_met": len(beats) >= 4},
        "files": files, "seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_summary(run, summary)
    print(f"wrote {len(files)} files and {path}")
    return summary


def print_table(table: dict) -> None:
    """One line per set: its size and the six judges."""
    head = f"{'':22s} {'n':>4s} " + " ".join(f"{LABELS[j]:>10s}" for j in JUDGES)
    print(head)
    for name, row in table.items():
        print(f"{name:22s} {row['n']:4d} " + " ".join(f"{row[j]:10.3f}" for j in JUDGES))
