"""Training the melody LSTM: windows of 64 steps (a random phase each epoch), Adam, gradient
clipping, a checkpoint every epoch and the best one by held-out cross-entropy.

Evaluation on held-out songs (10 %, never seen in training): per-step accuracy and
cross-entropy, against a bigram baseline (next symbol given the current one, add-0.1 smoothing)
on exactly the same predictions.

Writes in the run folder: model.npz (every epoch; ``train --resume``), best.npz (lowest
validation cross-entropy), curves.png, demo.mid with demo.png, demo.musicxml and demo.wav
("Ah ! vous dirai-je, maman" continued), summary.json. ``--train-half a`` trains on half of the
training songs (the judges' split: apps/melody/judges.py).
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

import nnscratch as nn
from apps.common.errors import UsageError
from apps.common.runs import make_run_dir, write_summary
from nnscratch import optim

from .data import Vocab, load_split, stream, windows
from .lstm_generate import generate, prime_tokens, write_generation
from .lstm_model import MelodyLSTM, config_of, load_model
from .plots import plot_lstm_curves

APP = "melody_lstm"


def evaluate(model, win: np.ndarray, batch: int = 128) -> dict:
    """Accuracy and cross-entropy (nats per step) over every target of the windows (n, T + 1)."""
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


def bigram_counts(train_ids: np.ndarray, V: int) -> np.ndarray:
    """(V, V) counts of (current, next) symbols in the training stream (N,)."""
    counts = np.zeros((V, V))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1.0)
    return counts


def bigram_probs(train_ids: np.ndarray, V: int, alpha: float = 0.1) -> np.ndarray:
    """P(next | current) (V, V) with add-``alpha`` smoothing: the bigram baseline, and the
    chain that lstm_generate.sample_chain samples from."""
    counts = bigram_counts(train_ids, V) + alpha
    return counts / counts.sum(1, keepdims=True)


def bigram_baseline(train_ids: np.ndarray, win: np.ndarray, V: int, alpha: float = 0.1) -> dict:
    """P(next | current) counted on the training stream (N,), scored on the windows' targets."""
    counts = bigram_counts(train_ids, V)
    prob = bigram_probs(train_ids, V, alpha)
    cur, nxt = win[:, :-1].ravel(), win[:, 1:].ravel()
    return {"accuracy": float(np.mean(counts[cur].argmax(1) == nxt)),
            "cross_entropy": float(-np.log(prob[cur, nxt]).mean()), "steps": int(nxt.size)}


def train(args) -> dict:
    """``train``: load a subset, fit, compare with the bigram, write a demo and summary.json."""
    from tqdm import tqdm

    nn.manual_seed(args.seed)
    run = make_run_dir(args.out, APP)
    t0 = time.perf_counter()
    songs, stats, tr_songs, va_songs = load_split(args.subset, args.data, args.limit,
                                                  args.val_frac, args.seed, args.progress,
                                                  max_songs=args.max_songs,
                                                  train_half=args.train_half)
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
    config = config_of(model, vocab, subset=args.subset, window=args.window,
                       train_half=args.train_half, val_frac=args.val_frac, seed=args.seed)
    ckpt, best_path = os.path.join(run, "model.npz"), os.path.join(run, "best.npz")
    history, start, best = [], 1, math.inf
    if args.resume:
        ck = nn.load_checkpoint(args.resume, model, opt)
        if ck.config.get("vocab") != vocab.symbols:
            raise UsageError(f"{args.resume}: its vocabulary differs from this data's; resume "
                             "with the same --subset/--limit")
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
    curves = plot_lstm_curves(history, base, os.path.join(run, "curves.png"))
    if curves:
        files.append(curves)
    best_model = load_model(best_path)[0] if os.path.isfile(best_path) else model
    final = evaluate(best_model, va_win)
    prime, meter = prime_tokens("demo")
    demo_tokens = generate(best_model, vocab, prime, args.demo_steps, args.temperature,
                           np.random.default_rng(args.seed))
    demo = write_generation(os.path.join(run, "demo.mid"), demo_tokens, len(prime), meter,
                            title=f"melody LSTM ({args.subset}) continues \"Ah ! vous dirai-je, "
                                  f"maman\" (T={args.temperature})")
    files += [f for f in (demo["file"], demo["plot"], demo["musicxml"], demo["wav"]) if f]
    best_epoch = min(history, key=lambda h: h["val"]["cross_entropy"])["epoch"] if history else None
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
        "best_epoch": best_epoch,
        "steps_per_s": history[-1]["steps_per_s"] if history else None,
        "history": history, "demo": demo, "files": files,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    summary_path = write_summary(run, summary)
    print(f"LSTM held-out accuracy {final['accuracy']:.4f}, cross-entropy "
          f"{final['cross_entropy']:.4f} (best epoch) vs bigram {base['accuracy']:.4f} / "
          f"{base['cross_entropy']:.4f}")
    print(f"wrote {', '.join(files)} and {summary_path}")
    return summary
