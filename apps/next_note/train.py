"""Training the next-note MLP (Adam, softmax cross-entropy over the 88 keys), its held-out
scores, and the two baselines it must beat on the same held-out notes: the most frequent note,
and a bigram (next key given the previous key).

Writes in the run folder: model.npz (checkpoint after every epoch; ``train --resume`` goes on
from it), curves.png, generated.mid with generated.png, .musicxml and .wav, summary.json.
``--train-half a`` (Essen) trains on half of the training tunes, the split of the melody LSTM's
``judge`` command.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

import nnscratch as nn
from apps.common.errors import UsageError
from apps.common.runs import Line, Panel, make_run_dir, plot_curves, write_summary
from apps.melody.data import split_halves
from nnscratch import optim

from .data import (
    N_KEYS,
    P_SLOTS,
    Examples,
    features,
    load_cre,
    load_essen,
    make_examples,
    split_tunes,
)
from .generate import generate, template_of, write_generated
from .model import build_model

APP = "next_note_mlp"


def topk_hits(scores: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: is target among the k highest of scores (N, 88)?"""
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


def plot_history(history: list, base: dict, path: str) -> str | None:
    """Cross-entropy per epoch beside the bigram's level; top-1 and top-5 validation accuracy
    beside both baselines (drawn as flat lines, so that each has its own colour)."""
    ep = [h["epoch"] for h in history]

    def flat(label, y, fmt):
        return Line(label, ep, [y] * len(ep), fmt)

    panels = [Panel("cross-entropy (nats/note)",
                    [Line("train", ep, [h["train_loss"] for h in history], "o-"),
                     Line("validation", ep, [h["val"]["cross_entropy"] for h in history], "o-")],
                    levels={"bigram (val)": base["bigram"]["cross_entropy"]}, xlabel="epoch")]
    for key, name in (("top1", "top-1"), ("top5", "top-5")):
        panels.append(Panel(f"validation {name} accuracy", [
            Line("MLP", ep, [h["val"][key] for h in history], "o-"),
            flat("bigram", base["bigram"][key], "x--"),
            flat("most frequent", base["most_frequent"][key], "+:"),
        ], xlabel="epoch"))
    return plot_curves(path, "next-note sigmoid MLP", panels)


def train(args) -> dict:
    """``train``: load tunes, report the baselines, fit, generate, write summary.json."""
    from tqdm import tqdm

    nn.manual_seed(args.seed)
    run = make_run_dir(args.out, APP)
    ckpt_path = os.path.join(run, "model.npz")
    t0 = time.perf_counter()
    if args.source == "cre":
        tunes = load_cre(args.data, args.limit)
    else:
        tunes = load_essen(args.subset, args.data, args.limit, progress=args.progress)
    tr_tunes, va_tunes = split_tunes(tunes, args.val_frac, args.seed)
    if args.train_half != "all":
        if args.source != "essen":
            raise UsageError("--train-half splits Essen songs as the melody apps do: it needs "
                             "--source essen")
        tr_tunes = split_halves(tr_tunes, args.seed)["ab".index(args.train_half)]
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
    config = {"context": args.context, "hidden": list(args.hidden), "source": args.source,
              "subset": args.subset, "train_half": args.train_half, "val_frac": args.val_frac,
              "seed": args.seed}
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
    curves = plot_history(history, base, os.path.join(run, "curves.png"))
    if curves:
        files.append(curves)
    gen_rng = np.random.default_rng(args.seed)
    pitches, durs = generate(model, args.context, templates[0], args.gen_notes,
                             temperature=args.temperature, rng=gen_rng)
    out = write_generated(os.path.join(run, "generated.mid"), pitches, durs, templates[0],
                          title=f"generated (rhythm of {templates[0]['name']}, "
                                f"T={args.temperature})", prime=args.context)
    mid = out["midi"]
    files += [f for f in out.values() if f]
    final = history[-1]["val"] if history else evaluate(model, va, args.context)
    summary = {
        "app": APP, "data": {"source": args.source, "subset": args.subset, "tunes": len(tunes),
                             "train_notes": len(tr), "val_notes": len(va)},
        "config": dict(config, lr=args.lr, batch=args.batch, epochs=args.epochs),
        "val": final, "baselines": base, "history": history,
        "notes_per_s": history[-1]["notes_per_s"] if history else None,
        "generated": {"file": mid, "notes": len(pitches),
                      "pitch_range": [min(pitches), max(pitches)]},
        "files": files, "seconds": round(time.perf_counter() - t0, 1),
    }
    summary_path = write_summary(run, summary)
    print(f"MLP val top-1 {final['top1']:.4f} top-5 {final['top5']:.4f} vs bigram "
          f"{base['bigram']['top1']:.4f} / {base['bigram']['top5']:.4f} and most-frequent "
          f"{base['most_frequent']['top1']:.4f} / {base['most_frequent']['top5']:.4f}")
    print(f"wrote {', '.join(files)} and {summary_path}")
    return summary
