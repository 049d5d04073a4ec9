"""Melody LSTM on the Essen folk songs, as on the 2024 slides (seed 002): one-hot symbols ->
LSTM 256 -> dropout -> dense -> softmax, trained to predict the next sixteenth-note step.

Data (apps/music/esac.py): each song filtered, transposed to C major / A minor and encoded at
sixteenth steps (MIDI pitch at an onset, ``_`` hold, ``r`` rest); songs are joined into one
stream with the delimiter ``/`` before and after each song, and cut into windows of 64 steps
(a random phase each epoch). One model per corpus: ``--subset han`` (Chinese Han songs) or
``--subset german`` (the German songs; ``kinder`` for the children's songs alone).

    x_t (one-hot, V)  ->  LSTM(V, 256)  ->  Dropout(0.2)  ->  Dense(256, V)  ->  softmax

Evaluation on held-out songs (10 %, never seen in training): per-step accuracy and
cross-entropy, against a bigram baseline (next symbol given the current one, add-0.1 smoothing)
on exactly the same predictions.

    python apps/melody_lstm.py train --subset han --epochs 30          # runs/melody_lstm/<time>/
    python apps/melody_lstm.py train --subset german --epochs 15
    python apps/melody_lstm.py generate --checkpoint runs/melody_lstm/<time>/best.npz \\
        --prime demo --temperature 0.8 --steps 256 --out ah_vous.mid
    python apps/melody_lstm.py generate --checkpoint ... --prime "60 _ _ _ 62 _ 64 _" --steps 128
    python apps/melody_lstm.py generate --checkpoint ... --prime "X:1\\nL:1/8\\nK:G\\nGABc d2B2|"

``--prime`` takes a token string (used as is: the model knows C major / A minor), ABC (transposed
like the training songs: ``K:Cmaj`` or ``K:Am`` fixes the key, a bare ``K:C`` is analysed, so
a phrase ending on G may be read as G major), or ``demo``: the first phrase of "Ah ! vous
dirai-je, maman" (``DEMO_ABC`` below, written for this app).
Writes in the run folder: model.npz (every epoch; ``train --resume``), best.npz (lowest
validation cross-entropy), curves.png, demo.mid and demo.png, summary.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn  # noqa: E402
from apps.music import esac  # noqa: E402
from nnscratch import optim  # noqa: E402
from nnscratch.layers.dropout import Dropout  # noqa: E402
from nnscratch.layers.lstm import LSTM  # noqa: E402

APP = "melody_lstm"
DELIM = "/"

# "Ah ! vous dirai-je, maman" (French, 18th century; the tune of "Twinkle, twinkle"),
# written out for this app: the first phrase is the demo prime.
DEMO_ABC = """X:1
T:Ah ! vous dirai-je, maman
M:2/4
L:1/4
K:C
C C | G G | A A | G2 | F F | E E | D D | C2 |
"""


# ----------------------------------------------------------------------------------------------
# Vocabulary and data
# ----------------------------------------------------------------------------------------------
class Vocab:
    """Symbols <-> ids: '/' (song delimiter), 'r', '_', then the pitches in ascending order."""

    def __init__(self, symbols):
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_songs(cls, token_lists):
        pitches = sorted({int(t) for toks in token_lists for t in toks if t not in (esac.HOLD, esac.REST)})
        return cls([DELIM, esac.REST, esac.HOLD, *map(str, pitches)])

    def __len__(self):
        return len(self.symbols)

    @property
    def pitch_range(self) -> tuple:
        p = [int(s) for s in self.symbols[3:]]
        return (min(p), max(p)) if p else (None, None)

    def encode(self, tokens) -> np.ndarray:
        """Token list -> ids; a ValueError names the first symbol outside the vocabulary."""
        out = np.empty(len(tokens), dtype=np.int64)
        for i, t in enumerate(tokens):
            j = self.index.get(t)
            if j is None:
                lo, hi = self.pitch_range
                what = f"pitch {t}" if t.lstrip("-").isdigit() else f"symbol {t!r}"
                raise ValueError(f"{what} (token {i}) is not in the vocabulary of this model: pitches "
                                 f"{lo}-{hi} (not all of them), '{esac.HOLD}', '{esac.REST}', '{DELIM}'")
            out[i] = j
        return out

    def decode(self, ids) -> list:
        return [self.symbols[int(i)] for i in ids]


def stream(token_lists, vocab: Vocab) -> np.ndarray:
    """'/ song1 / song2 / ... /' as one id array."""
    parts = [[DELIM]]
    for toks in token_lists:
        parts.append(list(toks) + [DELIM])
    return vocab.encode([t for p in parts for t in p])


def windows(ids: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Non-overlapping (length + 1)-id windows starting at ``offset``: inputs [:, :-1], targets [:, 1:]."""
    n = (len(ids) - offset - 1) // length
    if n < 1:
        raise ValueError(f"a stream of {len(ids)} symbols is too short for windows of {length}")
    idx = offset + np.arange(n)[:, None] * length + np.arange(length + 1)[None, :]
    return ids[idx]


def split_songs(songs, val_frac: float, seed: int) -> tuple:
    order = np.random.default_rng(seed).permutation(len(songs))
    n_val = max(1, int(round(len(songs) * val_frac)))
    return [songs[i] for i in order[n_val:]], [songs[i] for i in order[:n_val]]


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------
class MelodyLSTM(nn.Layer):
    """One-hot (batch, time, V) -> LSTM(V, H) -> Dropout(p) -> Dense(H, V) logits (batch, time, V).

    ``backward(dlogits)`` runs the three layers back in reverse; the LSTM's input is data, so
    it returns None. ``step(ids, state)`` advances one time step for generation.
    """

    def __init__(self, vocab_size: int, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        self.vocab_size, self.hidden_size, self.p = vocab_size, hidden, dropout
        self.lstm = LSTM(vocab_size, hidden)
        self.lstm.input_grad = False
        self.drop = Dropout(dropout)
        self.fc = nn.Dense(hidden, vocab_size)

    def one_hot(self, ids):
        """ids (...) -> one-hot (..., V) on the parameters' device."""
        xp = nn.get_array_module(self.fc.weight.data)
        return xp.eye(self.vocab_size, dtype=self.fc.weight.data.dtype)[xp.asarray(ids)]

    def forward(self, ids, state=None):
        y, state = self.lstm(self.one_hot(ids), state)
        return self.fc(self.drop(y))

    def backward(self, dlogits):
        dy = self.drop.backward(self.fc.backward(dlogits))
        self.lstm.backward(dy)
        return None

    def step(self, ids, state=None):
        """ids (batch,) -> (logits (batch, V), state); no dropout, nothing saved."""
        with nn.no_grad():
            h, state = self.lstm.step(self.one_hot(ids), state)
            return nn.to_cpu(self.fc(h)), state

    def extra_repr(self) -> str:
        return f"vocab={self.vocab_size}, hidden={self.hidden_size}, dropout={self.p}"


def evaluate(model, win: np.ndarray, batch: int = 128) -> dict:
    """Accuracy and cross-entropy (nats per step) over every target of the windows."""
    model.eval()
    ce, hits, n = 0.0, 0, 0
    with nn.no_grad():
        for s in range(0, len(win), batch):
            w = win[s:s + batch]
            logits = nn.to_cpu(model(w[:, :-1])).astype(np.float64)
            logp = nn.functions.log_softmax(logits, axis=-1)
            t = w[:, 1:]
            ce -= float(np.take_along_axis(logp, t[..., None], -1).sum())
            hits += int((logits.argmax(-1) == t).sum())
            n += t.size
    model.train()
    return {"accuracy": hits / n, "cross_entropy": ce / n, "steps": n}


def bigram_baseline(train_ids: np.ndarray, win: np.ndarray, V: int, alpha: float = 0.1) -> dict:
    """P(next | current) counted on the training stream, scored on the windows' targets."""
    counts = np.zeros((V, V))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1.0)
    prob = (counts + alpha) / (counts + alpha).sum(1, keepdims=True)
    cur, nxt = win[:, :-1].ravel(), win[:, 1:].ravel()
    return {"accuracy": float(np.mean(counts[cur].argmax(1) == nxt)),
            "cross_entropy": float(-np.log(prob[cur, nxt]).mean()), "steps": int(nxt.size)}


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
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
        raise ValueError(f"temperature must be positive, got {temperature}")
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


def plot_melody(tokens, n_prime: int, path: str, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(12, 3))
    t = 0.0
    for p, ql in esac.decode(tokens):
        if p is not None:
            ax.barh(p, ql, left=t, height=0.8, color="C1" if t < n_prime * esac.STEP else "C0")
        t += ql
    ax.axvline(n_prime * esac.STEP, c="k", ls="--", lw=1)
    ax.set_xlabel("beats (quarter notes); prime in orange"), ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_generation(path: str, tokens, n_prime: int, meter=(4, 4), tempo: float = 100.0) -> dict:
    esac.tokens_to_midi(path, tokens, tempo=tempo, time_signature=meter)
    png = os.path.splitext(path)[0] + ".png"
    plot_melody(tokens, n_prime, png, os.path.basename(path))
    pitches = [int(t) for t in tokens if t not in (esac.HOLD, esac.REST)]
    return {"file": path, "plot": png, "steps": len(tokens), "prime_steps": n_prime,
            "notes": len(pitches), "pitch_range": [min(pitches), max(pitches)] if pitches else None}


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def make_run_dir(out: str | None) -> str:
    path = out or os.path.join("runs", APP, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(path, exist_ok=True)
    return path


def plot_curves(history, base: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["val"]["cross_entropy"] for h in history], "o-", label="held-out")
    a.axhline(base["cross_entropy"], ls="--", c="gray", label="bigram (held-out)")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy (nats/step)"), a.legend()
    b.plot(ep, [h["val"]["accuracy"] for h in history], "o-", label="LSTM held-out")
    b.axhline(base["accuracy"], ls="--", c="gray", label="bigram")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.legend()
    fig.suptitle("melody LSTM")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_model(path: str) -> tuple:
    ck = nn.load_checkpoint(path)
    c = ck.config
    model = MelodyLSTM(len(c["vocab"]), c["hidden"], c["dropout"])
    model.load_state_dict(ck.model)
    return model, Vocab(c["vocab"]), ck


def train(args) -> dict:
    from tqdm import tqdm  # noqa: PLC0415

    nn.manual_seed(args.seed)
    run = make_run_dir(args.out)
    t0 = time.perf_counter()
    songs, stats = esac.load_songs(args.subset, data_dir=args.data, limit=args.limit,
                                   progress=args.progress)
    if args.max_songs:
        songs = songs[:args.max_songs]
    tr_songs, va_songs = split_songs(songs, args.val_frac, args.seed)
    vocab = Vocab.from_songs(s.tokens for s in songs)
    tr_ids = stream([s.tokens for s in tr_songs], vocab)
    va_ids = stream([s.tokens for s in va_songs], vocab)
    va_win = windows(va_ids, args.window)
    base = bigram_baseline(tr_ids, va_win, len(vocab))
    print(f"data: {args.subset}: {stats['kept']} songs kept of {stats['tunes']} (dropped "
          f"{stats['dropped']}); {len(tr_songs)} train / {len(va_songs)} held-out songs; "
          f"{len(tr_ids):,} / {len(va_ids):,} steps; vocabulary {len(vocab)} symbols "
          f"(pitches {vocab.pitch_range[0]}-{vocab.pitch_range[1]}); loaded in "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"bigram baseline (held-out): accuracy {base['accuracy']:.4f}  cross-entropy "
          f"{base['cross_entropy']:.4f}")

    model = MelodyLSTM(len(vocab), args.hidden, args.dropout)
    params = model.parameters()
    opt = optim.Adam(params, lr=args.lr)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    config = {"vocab": vocab.symbols, "hidden": args.hidden, "dropout": args.dropout,
              "subset": args.subset, "window": args.window}
    ckpt, best_path = os.path.join(run, "model.npz"), os.path.join(run, "best.npz")
    history, start, best = [], 1, math.inf
    if args.resume:
        ck = nn.load_checkpoint(args.resume, model, opt)
        if ck.config.get("vocab") != vocab.symbols:
            raise ValueError(f"{args.resume}: its vocabulary differs from this data's; resume with "
                             "the same --subset/--limit")
        history, start = ck.extra.get("history", []), int(ck.extra.get("epoch", 0)) + 1
        best = min([h["val"]["cross_entropy"] for h in history], default=math.inf)
        print(f"resumed from {args.resume} at epoch {start}")
    rng = np.random.default_rng(args.seed + start)
    for epoch in range(start, args.epochs + 1):
        win = windows(tr_ids, args.window, offset=int(rng.integers(args.window)))
        win = win[rng.permutation(len(win))]
        n_batches = math.ceil(len(win) / args.batch)
        if args.max_batches:
            n_batches = min(n_batches, args.max_batches)
        total, seen, t_ep = 0.0, 0, time.perf_counter()
        bar = tqdm(total=min(len(win), n_batches * args.batch) * args.window, unit="step",
                   unit_scale=True, desc=f"epoch {epoch}/{args.epochs}", disable=not args.progress,
                   leave=False)
        for b in range(n_batches):
            w = win[b * args.batch:(b + 1) * args.batch]
            loss = loss_fn(model(w[:, :-1]), nn.to_device(w[:, 1:]))
            model.backward(loss_fn.backward())
            if args.clip:
                optim.clip_grad_norm(params, args.clip)
            opt.step()
            opt.zero_grad()
            total += loss * w[:, 1:].size
            seen += w[:, 1:].size
            bar.update(w[:, 1:].size)
            bar.set_postfix(loss=f"{total / seen:.3f}")
        bar.close()
        secs = time.perf_counter() - t_ep
        val = evaluate(model, va_win)
        history.append({"epoch": epoch, "train_loss": total / seen, "val": val,
                        "steps_per_s": seen / secs, "seconds": secs})
        print(f"epoch {epoch:3d}: train loss {total / seen:.4f}  held-out cross-entropy "
              f"{val['cross_entropy']:.4f}  accuracy {val['accuracy']:.4f}  "
              f"({seen / secs:,.0f} steps/s)", flush=True)
        extra = {"epoch": epoch, "history": history, "bigram": base}
        nn.save_checkpoint(ckpt, model, opt, config=config, extra=extra)
        if val["cross_entropy"] < best:
            best = val["cross_entropy"]
            nn.save_checkpoint(best_path, model, config=config, extra=extra)

    files = [ckpt, best_path]
    curves = os.path.join(run, "curves.png")
    if history:
        plot_curves(history, base, curves)
        files.append(curves)
    best_model = load_model(best_path)[0] if os.path.isfile(best_path) else model
    final = evaluate(best_model, va_win)
    prime, meter = prime_tokens("demo")
    demo_tokens = generate(best_model, vocab, prime, args.demo_steps, args.temperature,
                           np.random.default_rng(args.seed))
    demo = write_generation(os.path.join(run, "demo.mid"), demo_tokens, len(prime), meter)
    files += [demo["file"], demo["plot"]]
    summary = {
        "app": APP, "subset": args.subset,
        "data": {"songs": stats, "train_songs": len(tr_songs), "held_out_songs": len(va_songs),
                 "train_steps": int(len(tr_ids)), "held_out_steps": int(len(va_ids)),
                 "vocab_size": len(vocab), "vocab": vocab.symbols},
        "config": dict(config, lr=args.lr, batch=args.batch, epochs=args.epochs, clip=args.clip,
                       parameters=model.num_parameters()),
        "held_out": final, "bigram": base,
        "beats_bigram": {"accuracy": final["accuracy"] > base["accuracy"],
                         "cross_entropy": final["cross_entropy"] < base["cross_entropy"]},
        "best_epoch": min(history, key=lambda h: h["val"]["cross_entropy"])["epoch"] if history else None,
        "steps_per_s": history[-1]["steps_per_s"] if history else None,
        "history": history, "demo": demo, "files": files,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"LSTM held-out accuracy {final['accuracy']:.4f}, cross-entropy {final['cross_entropy']:.4f} "
          f"(best epoch) vs bigram {base['accuracy']:.4f} / {base['cross_entropy']:.4f}")
    print(f"wrote {', '.join(files)} and {os.path.join(run, 'summary.json')}")
    return summary


def generate_cmd(args) -> dict:
    model, vocab, _ = load_model(args.checkpoint)
    prime, meter = prime_tokens(args.prime)
    tokens = generate(model, vocab, prime, args.steps, args.temperature,
                      np.random.default_rng(args.seed), stop_at_end=args.stop_at_end)
    out = args.out or os.path.join(os.path.dirname(args.checkpoint), f"generated_{args.seed}.mid")
    info = write_generation(out, tokens, len(prime), meter, args.tempo)
    print(f"wrote {out}: {info['notes']} notes, {info['steps']} steps ({len(prime)} from the prime), "
          f"pitches {info['pitch_range']}")
    return info


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train on an Essen subset, compare with a bigram, write a demo")
    t.add_argument("--subset", default="han", help="han, german, kinder or all")
    t.add_argument("--data", default=None, help="Essen folder (default ../shared/data/"
                   "essen-folksong-abc; env NNSCRATCH_DATA_ESSEN)")
    t.add_argument("--limit", type=int, default=None, help="first N tunes per file (quick runs)")
    t.add_argument("--max-songs", type=int, default=None, help="keep only the first N songs")
    t.add_argument("--window", type=int, default=64, help="steps per training window")
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--dropout", type=float, default=0.2)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--max-batches", type=int, default=0, help="cap batches per epoch (quick runs)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--clip", type=float, default=5.0, help="gradient-norm clip (0: off)")
    t.add_argument("--val-frac", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--temperature", type=float, default=0.8, help="for the demo")
    t.add_argument("--demo-steps", type=int, default=192)
    t.add_argument("--resume", default=None, help="checkpoint (model.npz) to continue from")
    t.add_argument("--out", default=None, help="run folder (default runs/melody_lstm/<time>)")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    g = sub.add_parser("generate", help="continue a prime and write MIDI")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--prime", default="demo", help='tokens ("60 _ _ _ 62 _"), ABC, or "demo"')
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--steps", type=int, default=256, help="sixteenth steps to generate")
    g.add_argument("--stop-at-end", action="store_true", help="stop when the model ends the song")
    g.add_argument("--tempo", type=float, default=100.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, help="MIDI file to write")
    return p.parse_args(argv)


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
