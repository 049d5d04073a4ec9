"""Next-note prediction with the 2017 report's network: a sigmoid MLP over the 88 piano keys.

Seed 000, chapter 2: the input describes the previous notes (their key among the 88, their
rhythm) and the place of the note in the bar; the output gives a probability for each of the
88 keys, and the most probable one is the note to play. Here:

* features of note i (all one-hot, concatenated; F = context * 100 + 44 inputs):
  the ``context`` previous notes' keys (88 + "no note" before the start) and durations
  (10 classes + "none"), then note i's own duration and its position in the bar (32 sixteenth
  slots + "unknown");
* network: Dense -> Sigmoid -> ... -> Dense(88), trained with softmax cross-entropy
  (``SoftmaxCrossEntropyLoss`` fuses the softmax over the 88 keys with the log-loss) and Adam;
* data: ``../shared/data/cre-irish-midi`` (MIDI via apps/music/midi.py, each tune transposed
  so its root is C using roots.csv) or an Essen subset (apps/music/esac.py, already in
  C major / A minor);
* baselines on the same held-out notes: the most frequent note, and a bigram (next key given
  the previous key);
* generation: note by note, sampling the softmax with a temperature, following the rhythm of a
  held-out tune (the network predicts keys, not durations, as in the report), written to MIDI.

    python apps/next_note_mlp.py train                      # CRE, 10 epochs, runs/next_note_mlp/<time>/
    python apps/next_note_mlp.py train --source essen --subset german --epochs 5
    python apps/next_note_mlp.py generate --checkpoint runs/next_note_mlp/<time>/model.npz \\
        --notes 96 --temperature 0.8 --prime "67 69 71"

Writes in the run folder: model.npz (checkpoint after every epoch; ``train --resume`` goes on
from it), curves.png, generated.mid, generated.png, summary.json.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps.music import esac, midi  # noqa: E402
from apps.music.data_paths import resolve_data_dir  # noqa: E402
from nnscratch import optim  # noqa: E402

APP = "next_note_mlp"
LOW_KEY, N_KEYS = 21, 88                     # A0 .. C8
NO_NOTE = N_KEYS                             # pitch slot before the first note
DUR_CLASSES = (0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)   # beats
NO_DUR = len(DUR_CLASSES)
N_POS = 32                                   # sixteenth slots in a bar (up to 8 beats)
UNKNOWN_POS = N_POS
P_SLOTS, D_SLOTS, POS_SLOTS = N_KEYS + 1, len(DUR_CLASSES) + 1, N_POS + 1


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclass
class Tune:
    """A monophonic tune as notes: keys (MIDI), durations to the next onset and bar positions
    (beats), bar length (beats, None if unknown), tempo (bpm) and meter."""

    name: str
    pitches: np.ndarray
    durs: np.ndarray
    pos: np.ndarray            # NaN where unknown
    bar_len: float | None
    tempo: float = 120.0
    meter: tuple = (4, 4)


def dur_class(d) -> np.ndarray:
    """Nearest duration class (in log2 distance)."""
    d = np.maximum(np.asarray(d, dtype=np.float64), 1e-3)
    dist = np.abs(np.log2(d)[..., None] - np.log2(np.array(DUR_CLASSES)))
    return dist.argmin(-1)


def pos_slot(pos) -> np.ndarray:
    pos = np.asarray(pos, dtype=np.float64)
    slot = np.clip(np.rint(np.nan_to_num(pos, nan=0.0) * 4), 0, N_POS - 1).astype(np.int64)
    return np.where(np.isnan(pos), UNKNOWN_POS, slot)


def load_cre(data_dir: str | None = None, limit: int | None = None, transpose: bool = True) -> list:
    """CRE tunes: channel-0 melody (skyline), roots.csv root moved to C."""
    root_dir = resolve_data_dir("cre-irish-midi", "NNSCRATCH_DATA_CRE", data_dir)
    roots = {}
    with open(os.path.join(root_dir, "roots.csv"), newline="") as f:
        for row in csv.reader(f):
            if len(row) == 2 and row[1].strip().isdigit():
                roots[row[0]] = int(row[1])
    files = sorted(glob.glob(os.path.join(root_dir, "midi", "*.mid")))
    if not files:
        raise FileNotFoundError(f"no .mid files under {root_dir}/midi")
    tunes = []
    for path in files[:limit]:
        song = midi.read_midi(path)
        mel = song.melody(channel=0) or song.melody()
        if len(mel) < 2:
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        shift = (-roots.get(name, 0) + 6) % 12 - 6 if transpose else 0
        starts = np.array([n.start for n in mel])
        durs = np.diff(np.append(starts, mel[-1].end))
        pitches = np.array([n.pitch + shift for n in mel])
        _, num, den = song.time_signatures[0]
        tunes.append(Tune(name, pitches, durs, np.array([song.bar_position(s)[1] for s in starts]),
                          num * 4.0 / den, song.bpm, (num, den)))
    return tunes


def load_essen(subset: str = "han", data_dir: str | None = None, limit: int | None = None) -> list:
    songs, _ = esac.load_songs(subset, data_dir=data_dir, limit=limit, progress=True)
    tunes = []
    for s in songs:
        notes = s.notes()
        if len(notes) < 2:
            continue
        num, den = (int(x) for x in s.meter.split("/")) if s.meter else (4, 4)
        tunes.append(Tune(s.ref, np.array([n[0] for n in notes]), np.array([n[1] for n in notes]),
                          np.array([np.nan if n[2] is None else n[2] for n in notes]), s.bar_ql,
                          100.0, (num, den)))
    return tunes


def split_tunes(tunes: list, val_frac: float = 0.1, seed: int = 0) -> tuple:
    """Held-out tunes (not notes): a seeded shuffle, the last ``val_frac`` for validation."""
    order = np.random.default_rng(seed).permutation(len(tunes))
    n_val = max(1, int(round(len(tunes) * val_frac)))
    return [tunes[i] for i in order[n_val:]], [tunes[i] for i in order[:n_val]]


def check_keys(pitches, what: str = "pitch") -> None:
    bad = [int(p) for p in np.ravel(pitches) if not LOW_KEY <= p < LOW_KEY + N_KEYS]
    if bad:
        raise ValueError(f"{what} {bad[0]} is outside the 88 piano keys ({LOW_KEY}-"
                         f"{LOW_KEY + N_KEYS - 1}), the vocabulary of this model")


@dataclass
class Examples:
    """One row per predicted note, as small integers (features are built per batch)."""

    prev_p: np.ndarray    # (N, context) key slots, NO_NOTE before the start
    prev_d: np.ndarray    # (N, context) duration classes, NO_DUR before the start
    cur_d: np.ndarray     # (N,)
    cur_pos: np.ndarray   # (N,)
    target: np.ndarray    # (N,) key index 0..87

    def __len__(self):
        return len(self.target)


def make_examples(tunes: list, context: int) -> Examples:
    cols = {k: [] for k in ("prev_p", "prev_d", "cur_d", "cur_pos", "target")}
    for t in tunes:
        keep = (t.pitches >= LOW_KEY) & (t.pitches < LOW_KEY + N_KEYS)
        if not keep.all():  # a note off the keyboard: skip the tune rather than clip it
            continue
        p = np.concatenate([np.full(context, NO_NOTE), t.pitches - LOW_KEY])
        d = np.concatenate([np.full(context, NO_DUR), dur_class(t.durs)])
        n = len(t.pitches)
        idx = np.arange(n)[:, None] + np.arange(context)[None, :]   # the context notes of i
        cols["prev_p"].append(p[idx])
        cols["prev_d"].append(d[idx])
        cols["cur_d"].append(d[context:])
        cols["cur_pos"].append(pos_slot(t.pos))
        cols["target"].append(t.pitches - LOW_KEY)
    if not cols["target"]:
        raise ValueError("no usable tunes (all empty or off the 88 keys)")
    return Examples(*(np.concatenate(cols[k]).astype(np.int64) for k in cols))


def n_features(context: int) -> int:
    return context * (P_SLOTS + D_SLOTS) + D_SLOTS + POS_SLOTS


def features(ex: Examples, rows, context: int, dtype=np.float32) -> np.ndarray:
    """One-hot feature matrix (len(rows), n_features(context))."""
    rows = np.asarray(rows)
    B = len(rows)
    X = np.zeros((B, n_features(context)), dtype=dtype)
    r = np.arange(B)
    block = P_SLOTS + D_SLOTS
    for j in range(context):
        X[r, j * block + ex.prev_p[rows, j]] = 1.0
        X[r, j * block + P_SLOTS + ex.prev_d[rows, j]] = 1.0
    base = context * block
    X[r, base + ex.cur_d[rows]] = 1.0
    X[r, base + D_SLOTS + ex.cur_pos[rows]] = 1.0
    return X


# ----------------------------------------------------------------------------------------------
# Model, baselines, metrics
# ----------------------------------------------------------------------------------------------
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


def topk_hits(scores: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return (top == target[:, None]).any(axis=1)


def evaluate(model, ex: Examples, context: int, batch: int = 2048) -> dict:
    """Cross-entropy (nats per note), top-1 and top-5 accuracy."""
    model.eval()
    ce, h1, h5 = 0.0, 0, 0
    with nn.no_grad():
        for s in range(0, len(ex), batch):
            rows = np.arange(s, min(s + batch, len(ex)))
            logits = nn.to_cpu(model(nn.to_device(features(ex, rows, context))))
            t = ex.target[rows]
            logp = nn.functions.log_softmax(logits.astype(np.float64), axis=-1)
            ce -= float(logp[np.arange(len(rows)), t].sum())
            h1 += int((logits.argmax(1) == t).sum())
            h5 += int(topk_hits(logits, t, 5).sum())
    model.train()
    n = len(ex)
    return {"cross_entropy": ce / n, "top1": h1 / n, "top5": h5 / n}


def baselines(train: Examples, val: Examples, alpha: float = 0.1) -> dict:
    """Most-frequent-note and bigram (previous key -> next key) baselines on the val notes.

    Cross-entropies use add-``alpha`` smoothing; the bigram backs off to the unigram order for
    ties in its ranking.
    """
    uni = np.bincount(train.target, minlength=N_KEYS).astype(np.float64)
    big = np.zeros((P_SLOTS, N_KEYS))
    np.add.at(big, (train.prev_p[:, -1], train.target), 1.0)
    t, prev = val.target, val.prev_p[:, -1]
    p_uni = (uni + alpha) / (uni + alpha).sum()
    scores_uni = np.broadcast_to(uni, (len(t), N_KEYS))
    row = big[prev]
    p_big = (row + alpha) / (row + alpha).sum(1, keepdims=True)
    scores_big = row + 1e-6 * uni / uni.max()  # rank by bigram counts, unigram breaks ties
    r = np.arange(len(t))
    return {
        "most_frequent": {"top1": float(np.mean(uni.argmax() == t)),
                          "top5": float(topk_hits(scores_uni, t, 5).mean()),
                          "cross_entropy": float(-np.log(p_uni[t]).mean())},
        "bigram": {"top1": float(np.mean(scores_big.argmax(1) == t)),
                   "top5": float(topk_hits(scores_big, t, 5).mean()),
                   "cross_entropy": float(-np.log(p_big[r, t]).mean())},
    }


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
def template_of(t: Tune) -> dict:
    return {"name": t.name, "pitches": [int(p) for p in t.pitches], "durs": [float(d) for d in t.durs],
            "pos": [None if np.isnan(p) else float(p) for p in t.pos], "bar_len": t.bar_len,
            "tempo": float(t.tempo), "meter": list(t.meter)}


def rhythm(template: dict, n_notes: int) -> tuple:
    """Durations and bar positions for n_notes, cycling the template's rhythm if needed."""
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
        raise ValueError(f"temperature must be positive, got {temperature}")
    rng = rng or np.random.default_rng(0)
    prime = list(template["pitches"][:context] if prime is None else prime)
    check_keys(prime, "prime pitch")
    n_notes = max(n_notes, len(prime))
    durs, pos = rhythm(template, n_notes)
    pitches = list(prime)
    model.eval()
    with nn.no_grad():
        for i in range(len(prime), n_notes):
            prev = [NO_NOTE] * max(0, context - i) + [p - LOW_KEY for p in pitches[max(0, i - context):i]]
            prev_d = [NO_DUR] * max(0, context - i) + list(dur_class(durs[max(0, i - context):i]))
            ex = Examples(np.array([prev]), np.array([prev_d]), dur_class(durs[i:i + 1]),
                          pos_slot(pos[i:i + 1]), np.zeros(1, dtype=np.int64))
            x = nn.to_device(features(ex, [0], context))
            logits = nn.to_cpu(model(x))[0].astype(np.float64) / temperature
            prob = np.exp(logits - logits.max())
            prob /= prob.sum()
            pitches.append(LOW_KEY + int(rng.choice(N_KEYS, p=prob)))
    model.train()
    return pitches, durs


def write_generated(path: str, pitches, durs, template: dict) -> str:
    return midi.write_monophonic(path, pitches, list(durs), tempo=template["tempo"],
                                 time_signature=tuple(template["meter"]), name="next-note MLP")


# ----------------------------------------------------------------------------------------------
# Plots and run folders
# ----------------------------------------------------------------------------------------------
def make_run_dir(out: str | None) -> str:
    path = out or os.path.join("runs", APP, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(path, exist_ok=True)
    return path


def plot_curves(history: list, base: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["val"]["cross_entropy"] for h in history], "o-", label="validation")
    a.axhline(base["bigram"]["cross_entropy"], ls="--", c="gray", label="bigram (val)")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy (nats/note)"), a.legend()
    for key, c in (("top1", "C0"), ("top5", "C1")):
        b.plot(ep, [h["val"][key] for h in history], "o-", c=c, label=f"MLP {key}")
        b.axhline(base["bigram"][key], ls="--", c=c, alpha=0.6, label=f"bigram {key}")
        b.axhline(base["most_frequent"][key], ls=":", c=c, alpha=0.6, label=f"most frequent {key}")
    b.set_xlabel("epoch"), b.set_ylabel("validation accuracy"), b.legend(fontsize=7)
    fig.suptitle("next-note sigmoid MLP")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_melody(pitches, durs, path: str, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    starts = np.concatenate([[0.0], np.cumsum(durs[:-1])])
    fig, ax = plt.subplots(figsize=(11, 3))
    ax.barh(pitches, durs, left=starts, height=0.8)
    ax.set_xlabel("beats"), ax.set_ylabel("MIDI pitch"), ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
def train(args) -> dict:
    nn.manual_seed(args.seed)
    run = make_run_dir(args.out)
    ckpt_path = os.path.join(run, "model.npz")
    t0 = time.perf_counter()
    if args.source == "cre":
        tunes = load_cre(args.data, args.limit)
    else:
        tunes = load_essen(args.subset, args.data, args.limit)
    tr_tunes, va_tunes = split_tunes(tunes, args.val_frac, args.seed)
    tr, va = make_examples(tr_tunes, args.context), make_examples(va_tunes, args.context)
    print(f"data: {args.source}{'/' + args.subset if args.source == 'essen' else ''}: "
          f"{len(tunes)} tunes ({len(tr_tunes)} train, {len(va_tunes)} held out), "
          f"{len(tr)} / {len(va)} notes, loaded in {time.perf_counter() - t0:.1f} s")
    base = baselines(tr, va)
    for name, b in base.items():
        print(f"baseline {name:13s}: top-1 {b['top1']:.4f}  top-5 {b['top5']:.4f}  "
              f"cross-entropy {b['cross_entropy']:.4f}")

    model = build_model(args.context, args.hidden)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    history, start_epoch = [], 1
    if args.resume:
        ck = nn.load_checkpoint(args.resume, model, opt)
        history = ck.extra.get("history", [])
        start_epoch = int(ck.extra.get("epoch", 0)) + 1
        print(f"resumed from {args.resume} at epoch {start_epoch}")
    rng = np.random.default_rng(args.seed + start_epoch)
    from tqdm import tqdm  # noqa: PLC0415

    config = {"context": args.context, "hidden": list(args.hidden), "source": args.source,
              "subset": args.subset}
    templates = [template_of(t) for t in va_tunes[:8]]
    for epoch in range(start_epoch, args.epochs + 1):
        order = rng.permutation(len(tr))
        n_batches = math.ceil(len(order) / args.batch)
        if args.max_batches:
            n_batches = min(n_batches, args.max_batches)
        total, seen, t_ep = 0.0, 0, time.perf_counter()
        bar = tqdm(total=min(len(order), n_batches * args.batch), unit="note",
                   desc=f"epoch {epoch}/{args.epochs}", disable=not args.progress, leave=False)
        for b in range(n_batches):
            rows = order[b * args.batch:(b + 1) * args.batch]
            x, t = nn.to_device(features(tr, rows, args.context)), nn.to_device(tr.target[rows])
            loss = loss_fn(model(x), t)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            total += loss * len(rows)
            seen += len(rows)
            bar.update(len(rows))
            bar.set_postfix(loss=f"{total / seen:.3f}")
        bar.close()
        secs = time.perf_counter() - t_ep
        val = evaluate(model, va, args.context)
        history.append({"epoch": epoch, "train_loss": total / seen, "val": val,
                        "notes_per_s": seen / secs})
        print(f"epoch {epoch:3d}: train loss {total / seen:.4f}  val cross-entropy "
              f"{val['cross_entropy']:.4f}  top-1 {val['top1']:.4f}  top-5 {val['top5']:.4f}  "
              f"({seen / secs:,.0f} notes/s)")
        nn.save_checkpoint(ckpt_path, model, opt, config=config,
                           extra={"epoch": epoch, "history": history, "templates": templates,
                                  "baselines": base})

    files = [ckpt_path]
    curves = os.path.join(run, "curves.png")
    if history:
        plot_curves(history, base, curves)
        files.append(curves)
    gen_rng = np.random.default_rng(args.seed)
    pitches, durs = generate(model, args.context, templates[0], args.gen_notes,
                             temperature=args.temperature, rng=gen_rng)
    mid = write_generated(os.path.join(run, "generated.mid"), pitches, durs, templates[0])
    png = os.path.join(run, "generated.png")
    plot_melody(pitches, durs, png, f"generated (rhythm of {templates[0]['name']}, "
                                    f"T={args.temperature})")
    files += [mid, png]
    final = history[-1]["val"] if history else evaluate(model, va, args.context)
    summary = {
        "app": APP, "data": {"source": args.source, "subset": args.subset, "tunes": len(tunes),
                             "train_notes": len(tr), "val_notes": len(va)},
        "config": dict(config, lr=args.lr, batch=args.batch, epochs=args.epochs),
        "val": final, "baselines": base, "history": history,
        "notes_per_s": history[-1]["notes_per_s"] if history else None,
        "generated": {"file": mid, "notes": len(pitches), "pitch_range": [min(pitches), max(pitches)]},
        "files": files, "seconds": round(time.perf_counter() - t0, 1),
    }
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"MLP val top-1 {final['top1']:.4f} top-5 {final['top5']:.4f} vs bigram "
          f"{base['bigram']['top1']:.4f} / {base['bigram']['top5']:.4f} and most-frequent "
          f"{base['most_frequent']['top1']:.4f} / {base['most_frequent']['top5']:.4f}")
    print(f"wrote {', '.join(files)} and {os.path.join(run, 'summary.json')}")
    return summary


def generate_cmd(args) -> dict:
    ck = nn.load_checkpoint(args.checkpoint)
    cfg = ck.config
    model = build_model(cfg["context"], cfg["hidden"])
    model.load_state_dict(ck.model)
    templates = ck.extra["templates"]
    template = templates[args.template % len(templates)]
    prime = None
    if args.prime:
        try:
            prime = [int(p) for p in args.prime.replace(",", " ").split()]
        except ValueError:
            raise ValueError(f"--prime must be MIDI pitches separated by spaces, got {args.prime!r}") from None
    pitches, durs = generate(model, cfg["context"], template, args.notes, prime,
                             args.temperature, np.random.default_rng(args.seed))
    out = args.out or os.path.join(os.path.dirname(args.checkpoint), "generated.mid")
    write_generated(out, pitches, durs, template)
    print(f"wrote {out}: {len(pitches)} notes, pitches {min(pitches)}-{max(pitches)}, rhythm of "
          f"{template['name']}")
    return {"file": out, "pitches": pitches}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train on CRE MIDI or Essen, report baselines, generate")
    t.add_argument("--source", choices=["cre", "essen"], default="cre")
    t.add_argument("--subset", default="han", help="Essen subset: han, kinder, german, all")
    t.add_argument("--data", default=None, help="dataset folder (default: ../shared/data/...; env "
                   "NNSCRATCH_DATA_CRE or NNSCRATCH_DATA_ESSEN)")
    t.add_argument("--limit", type=int, default=None, help="use only the first N tunes (per file)")
    t.add_argument("--context", type=int, default=8, help="previous notes in the features")
    t.add_argument("--hidden", default="256,256", help="hidden sizes, comma separated")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--max-batches", type=int, default=0, help="cap batches per epoch (quick runs)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--val-frac", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--gen-notes", type=int, default=96)
    t.add_argument("--temperature", type=float, default=0.8)
    t.add_argument("--resume", default=None, help="checkpoint to continue from")
    t.add_argument("--out", default=None, help="run folder (default runs/next_note_mlp/<time>)")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    g = sub.add_parser("generate", help="sample a melody from a checkpoint to MIDI")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--notes", type=int, default=96)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--prime", default=None, help='first MIDI pitches, e.g. "67 69 71"')
    g.add_argument("--template", type=int, default=0, help="which held-out tune gives the rhythm")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="MIDI file to write")
    args = p.parse_args(argv)
    if args.cmd == "train":
        try:
            args.hidden = [int(h) for h in args.hidden.split(",")]
        except ValueError:
            p.error(f"--hidden must be comma-separated integers, got {args.hidden!r}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.cmd == "train":
            train(args)
        else:
            generate_cmd(args)
    except (ValueError, FileNotFoundError, nn.CheckpointError) as exc:  # bad input: say why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
