"""The ABC tune LSTM trained by nnscratch and by PyTorch on the same pipeline, side by side.

Both engines get the same prepared data, the same initial weights (copied from the nnscratch
model), the same sequence of training windows (one seeded sampler each, same seed), the same
AdamW / ReduceLROnPlateau / clipping settings, and the same evaluation protocol (each
validation tune teacher-forced from a zero state). Only dropout masks differ (each engine's own
generator). Early stopping is off so both run the same number of steps.

    python benchmarks/abc_reference_torch.py [--preset cpu] [--steps 3000] [--quick] \
        [--device cpu|gpu]

Prints both validation cross-entropies and accuracies, their ratio (goal: nnscratch / torch
val CE <= 1.02 at equal steps) and the training-time ratio, then one JSON line.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import (  # noqa: E402
    emit_json,
    machine,
    parser,
    print_table,
    setup_device,
    torch_precision,
)


def torch_model_from(ours, torch, device):
    """A torch MusicRNN holding a copy of the nnscratch model's weights."""
    cfg = ours.cfg

    class MusicRNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(cfg.vocab_size, cfg.embedding)
            self.lstm = torch.nn.LSTM(cfg.embedding, cfg.hidden, num_layers=cfg.layers,
                                      dropout=cfg.dropout if cfg.layers > 1 else 0.0,
                                      batch_first=True)
            self.dropout = torch.nn.Dropout(cfg.dropout)
            self.head = torch.nn.Linear(cfg.hidden, cfg.vocab_size)

        def forward(self, x):
            y, _ = self.lstm(self.embedding(x))
            return self.head(self.dropout(y))

    m = MusicRNN()
    import nnscratch as nn

    def t(a):
        return torch.from_numpy(np.asarray(nn.to_cpu(a), dtype=np.float32).copy())

    with torch.no_grad():
        m.embedding.weight.copy_(t(ours.embedding.weight.data))
        for k in range(cfg.layers):
            W_ih, W_hh, b = ours.lstm.layer_params(k)
            getattr(m.lstm, f"weight_ih_l{k}").copy_(t(W_ih.data))
            getattr(m.lstm, f"weight_hh_l{k}").copy_(t(W_hh.data))
            getattr(m.lstm, f"bias_ih_l{k}").copy_(t(b.data))   # one bias here = b_ih + b_hh there
            getattr(m.lstm, f"bias_hh_l{k}").zero_()
        m.head.weight.copy_(t(ours.head.weight.data))
        m.head.bias.copy_(t(ours.head.bias.data))
    return m.to(device)


def torch_evaluate(model, tunes_ids, torch, device):
    from apps.abc_tunes.data import IGNORE, tune_batches

    model.eval()
    nll, correct, n = 0.0, 0, 0
    ce = torch.nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="sum")
    with torch.no_grad():
        for x, y in tune_batches(tunes_ids):
            xt = torch.from_numpy(x.astype(np.int64)).to(device)
            yt = torch.from_numpy(y).to(device)
            logits = model(xt)
            nll += ce(logits.reshape(-1, logits.shape[-1]), yt.reshape(-1)).item()
            mask = yt != IGNORE
            correct += int(((logits.argmax(-1) == yt) & mask).sum().item())
            n += int(mask.sum().item())
    model.train()
    return nll / n, correct / n


def train_torch(ours_init, hp, train_ids, val_tunes, steps, eval_every, torch, device, log):
    from apps.abc_tunes.data import WindowSampler

    torch.manual_seed(hp["seed"])
    model = torch_model_from(ours_init, torch, device)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5,
                                                         patience=hp["lr_patience"],
                                                         min_lr=hp["lr"] / 100)
    sampler = WindowSampler(train_ids, hp["batch"], hp["seq"], seed=hp["seed"])
    ce = torch.nn.CrossEntropyLoss()
    train_time, curve = 0.0, []
    for step in range(1, steps + 1):
        x, y = sampler.next()
        t0 = time.perf_counter()
        xt = torch.from_numpy(x.astype(np.int64)).to(device)
        yt = torch.from_numpy(y.astype(np.int64)).to(device)
        logits = model(xt)
        loss = ce(logits.reshape(-1, logits.shape[-1]), yt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp["clip"])
        opt.step()
        loss_value = loss.item()
        train_time += time.perf_counter() - t0
        if step % eval_every == 0 or step == steps:
            v = torch_evaluate(model, val_tunes, torch, device)
            plateau.step(v[0])
            curve.append((step, loss_value, *v))
            log(f"  torch     step {step}: train {loss_value:.4f}  val {v[0]:.4f} / {v[1]:.4f}  "
                f"lr {opt.param_groups[0]['lr']:.1e}")
    return curve, train_time


def main(argv=None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="default: the app's default data")
    p.add_argument("--data-dir", default=None, help="an already prepared folder")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every = min(args.steps, 40), 20
    tdev = setup_device(args.device)

    import torch

    precision = torch_precision()  # both engines in plain FP32

    from apps.abc_tunes.data import default_data_path, load_prepared, prepare
    from apps.abc_tunes.train import PRESETS, Trainer

    log = print
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="abc_ref_")
        prepare(args.data or default_data_path(), data_dir, log)
    train_text, val_text, vocab = load_prepared(data_dir)
    hp = dict(PRESETS[args.preset], preset=args.preset, seed=args.seed, clip=1.0,
              patience=10 ** 9, lr_patience=2)
    if args.quick:
        hp.update(batch=16, seq=128)
    run_dir = tempfile.mkdtemp(prefix="abc_ref_run_")
    ours = Trainer(run_dir, train_text, val_text, vocab, hp, log=log, data_dir=data_dir)
    # the same seed gives the same initial weights: a copy for torch to start from
    init = Trainer(tempfile.mkdtemp(), train_text, val_text, vocab, hp, log=log)
    log(f"preset {args.preset}: {ours.model.num_parameters():,} parameters, {args.steps} steps, "
        f"batch {hp['batch']} x {hp['seq']}, eval every {args.eval_every}")

    log("nnscratch:")
    ours.run(args.steps, None, args.eval_every, progress=False)
    ours_val = ours.evaluate()
    ours_time = ours.elapsed
    log("torch:")
    curve, torch_time = train_torch(init.model, hp, ours.train_ids, ours.val_tunes, args.steps,
                                    args.eval_every, torch, tdev, log)
    torch_val = curve[-1][2:]
    tokens = args.steps * hp["batch"] * hp["seq"]
    ce_ratio = ours_val[0] / torch_val[0]
    time_ratio = ours_time / torch_time
    info = machine()
    print_table(
        f"ABC LSTM, preset {args.preset}, {args.steps} steps, device {args.device} "
        f"({info.get('gpu', 'CPU')}), same data order and initial weights",
        [["nnscratch", f"{ours_val[0]:.4f}", f"{ours_val[1]:.4f}", f"{tokens / ours_time:,.0f}"],
         ["torch", f"{torch_val[0]:.4f}", f"{torch_val[1]:.4f}", f"{tokens / torch_time:,.0f}"],
         ["ratio", f"{ce_ratio:.4f}", f"{ours_val[1] / torch_val[1]:.4f}",
          f"time {time_ratio:.3f}"]],
        ["engine", "val CE (nats/char)", "val accuracy", "train tokens/s"])
    emit_json({"bench": "abc_lstm_vs_torch", "device": args.device, "preset": args.preset,
               **precision,
               "steps": args.steps, "nnscratch_val_ce": round(ours_val[0], 5),
               "torch_val_ce": round(torch_val[0], 5), "nnscratch_val_acc": round(ours_val[1], 5),
               "torch_val_acc": round(torch_val[1], 5), "ce_ratio": round(ce_ratio, 5),
               "goal_ce_ratio": 1.02, "nnscratch_tokens_per_s": round(tokens / ours_time, 1),
               "torch_tokens_per_s": round(tokens / torch_time, 1),
               "time_ratio": round(time_ratio, 4)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
