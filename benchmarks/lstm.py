"""The ABC tune model's training step and sampling loop, nnscratch against PyTorch, same process.

Model (seed 004): Embedding(95, 256) -> LSTM(256, 512, 2 layers, dropout 0.3) -> Dropout(0.3)
-> Linear(512, 95) -> softmax cross-entropy; AdamW (lr 1e-3) and gradient clipping (max norm 1).
Both engines get the same weights (torch's initialisation copied into ours, b_ih + b_hh summed)
and the same token batches; float32.

    python benchmarks/lstm.py [--quick] [--device cpu|gpu] [--repeats N] [--batch B] [--seq T]
                              [--hidden H]

Figures:
* training step: median ms of forward + backward + clipping + AdamW, the engines interleaved
  in rounds so slow drifts of a shared machine hit all; CPU: batch 64 x sequence 128 (the seed
  config); GPU: batch 64 and 256 x sequence 256 (cuDNN on the torch side). nnscratch runs the
  model with the embedding folded into the first LSTM layer (``lstm(ids, embedding=emb)``, the
  same function: docs/derivations/lstm.md (22)-(24)) and, on a second row, unfolded
  (``lstm(emb(ids))``, what torch computes; skipped with --quick);
* sampling: tokens/s of one stream (batch 1) through embedding, the stateful step, the linear
  layer and a categorical draw, against torch running its LSTM on one-token inputs with the
  carried state (``lstm_step`` alone is also timed);
* memory: the peak of a training step. CPU: each engine in a fresh subprocess does a tiny warm-up
  step (kernels loaded, optimizer state created), then one full step; reported is the peak RSS
  during that step (VmHWM, reset just before it through /proc/self/clear_refs; ru_maxrss where
  that is unavailable) minus the RSS just before it (so weights, optimizer state, data
  and imports are excluded; activations, saved contexts, gradients and temporaries are included),
  plus, for nnscratch, tracemalloc's peak of NumPy allocations during a further step.
  GPU: torch.cuda.max_memory_allocated and the growth of CuPy's memory pool over the first step.
Goals (issue 3): CPU ratio nnscratch / torch <= 1.0; GPU <= 1.25 x cuDNN's time. Both engines
run in plain FP32: torch's TF32 switches are turned off (``_common.torch_precision``), as
CuPy's are unless NNSCRATCH_TF32=1. The phase times (forward, backward, clip+adamw) are taken
between device synchronisations, so on the GPU each phase holds its own kernels' time.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
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
    time_fn,
    torch_precision,
    torch_sync,
)
from nnscratch.backend import synchronize  # noqa: E402

VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT = 95, 256, 512, 2, 0.3


def _sync():
    """Wait for the GPU's queued work (phase boundaries); nothing to wait for on the CPU."""
    synchronize()


# ==============================================================================================
# The two models
# ==============================================================================================
def build_torch(tdev, hidden=HIDDEN):
    import torch

    torch.manual_seed(0)
    m = torch.nn.ModuleDict({
        "emb": torch.nn.Embedding(VOCAB, EMBED),
        "lstm": torch.nn.LSTM(EMBED, hidden, num_layers=LAYERS, dropout=DROPOUT, batch_first=True),
        "drop": torch.nn.Dropout(DROPOUT),
        "fc": torch.nn.Linear(hidden, VOCAB),
    })
    return m.to(tdev)


class Ours:
    """The same model on nnscratch, with its hand-written backward.

    ``fold=True`` (the default) runs ``lstm(ids, embedding=emb)``: the embedding is folded into
    the first layer's input projection (docs/derivations/lstm.md, (22)-(24)), the same function
    with three GEMMs fewer; ``fold=False`` chains ``lstm(emb(ids))`` like torch does.
    """

    def __init__(self, ref, fold=True):
        self.fold = fold
        import nnscratch as nn
        from nnscratch.layers.dropout import Dropout
        from nnscratch.layers.embedding import Embedding
        from nnscratch.layers.lstm import LSTM

        self.nn = nn
        hidden = ref["lstm"].hidden_size  # the reference's size (--hidden)
        self.emb = Embedding(VOCAB, EMBED)
        self.lstm = LSTM(EMBED, hidden, num_layers=LAYERS, dropout=DROPOUT)
        self.drop = Dropout(DROPOUT)
        self.fc = nn.Dense(hidden, VOCAB)
        self.loss_fn = nn.SoftmaxCrossEntropyLoss()

        def put(param, tensor):
            param.data = nn.to_device(np.array(tensor.detach().cpu().numpy(), dtype=np.float32,
                                               copy=True))

        put(self.emb.weight, ref["emb"].weight)
        for k in range(LAYERS):
            W_ih, W_hh, b = self.lstm.layer_params(k)
            put(W_ih, getattr(ref["lstm"], f"weight_ih_l{k}"))
            put(W_hh, getattr(ref["lstm"], f"weight_hh_l{k}"))
            put(b, getattr(ref["lstm"], f"bias_ih_l{k}") + getattr(ref["lstm"], f"bias_hh_l{k}"))
        put(self.fc.weight, ref["fc"].weight)
        put(self.fc.bias, ref["fc"].bias)
        self.params = self.emb.parameters() + self.lstm.parameters() + self.fc.parameters()
        self.opt = nn.optim.AdamW(self.params, lr=1e-3)
        self.phase_ms = {"forward": [], "backward": [], "clip+adamw": []}

    def train_step(self, x, t):
        nn = self.nn
        _sync()
        t0 = time.perf_counter()
        if self.fold:
            y, _ = self.lstm(x, embedding=self.emb)
        else:
            y, _ = self.lstm(self.emb(x))
        B, T, H = y.shape
        logits = self.fc(self.drop(y).reshape(B * T, H))
        loss = self.loss_fn(logits, t.reshape(-1))                 # reads the loss back
        _sync()
        t1 = time.perf_counter()
        dy = self.drop.backward(self.fc.backward(self.loss_fn.backward()).reshape(B, T, H))
        dx, _ = self.lstm.backward(dy)
        if not self.fold:
            self.emb.backward(dx)
        _sync()
        t2 = time.perf_counter()
        nn.optim.clip_grad_norm(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad()
        _sync()
        t3 = time.perf_counter()
        self.phase_ms["forward"].append((t1 - t0) * 1e3)
        self.phase_ms["backward"].append((t2 - t1) * 1e3)
        self.phase_ms["clip+adamw"].append((t3 - t2) * 1e3)
        return loss


def torch_train_step(ref, opt, x, t):
    import torch

    opt.zero_grad(set_to_none=True)
    y, _ = ref["lstm"](ref["emb"](x))
    logits = ref["fc"](ref["drop"](y))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), t.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
    opt.step()
    return loss.item()                                              # both read the loss back


# ==============================================================================================
# Sampling: one stream, batch 1
# ==============================================================================================
def sample_ours(ours, n_tokens, xp):
    nn = ours.nn
    from nnscratch.functions.activation import softmax

    ours.lstm.eval()
    ours.emb.check_range = False          # ids come from our own sampler
    rng = nn.get_rng()
    tok = xp.zeros((1,), dtype=np.int64)
    state = None
    with nn.no_grad():
        for _ in range(n_tokens):
            y, state = ours.lstm.step(ours.emb(tok), state)
            p = softmax(ours.fc(y), axis=-1)
            u = rng.random((1, 1), dtype=p.dtype)
            tok = xp.minimum((xp.cumsum(p, axis=-1) < u).sum(axis=-1), VOCAB - 1)
    ours.lstm.train()
    ours.emb.check_range = True
    return tok


def step_only_ours(ours, n_tokens, xp):
    nn = ours.nn
    x = xp.asarray(np.random.default_rng(0).normal(size=(1, EMBED)).astype(np.float32))
    state = None
    with nn.no_grad():
        for _ in range(n_tokens):
            _, state = ours.lstm.step(x, state)


def sample_torch(ref, n_tokens, tdev):
    import torch

    tok = torch.zeros((1, 1), dtype=torch.long, device=tdev)
    state = None
    ref.eval()
    with torch.no_grad():
        for _ in range(n_tokens):
            y, state = ref["lstm"](ref["emb"](tok), state)
            p = torch.softmax(ref["fc"](y[:, -1]), dim=-1)
            tok = torch.multinomial(p, 1)
    ref.train()
    return tok


def step_only_torch(ref, n_tokens, tdev):
    import torch

    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, EMBED)).astype(np.float32))
    x = x.to(tdev)
    state = None
    with torch.no_grad():
        for _ in range(n_tokens):
            _, state = ref["lstm"](x, state)


# ==============================================================================================
# Memory
# ==============================================================================================
def _rss_now_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    """VmHWM (peak RSS since the last reset), else ru_maxrss (peak over the process's life)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _step_peak_mb(step) -> float:
    """Peak RSS during ``step()`` minus the RSS just before it, in MiB."""
    _reset_peak_rss()
    before = _rss_now_bytes()
    step()
    return (_peak_rss_bytes() - before) / 2**20


def memory_probe(engine: str, batch: int, seq: int, hidden: int = HIDDEN) -> dict:
    """Run in a fresh process: peak RSS growth over the first training step of one engine."""
    import torch

    import nnscratch as nn

    nn.set_device("cpu")
    rng = np.random.default_rng(0)
    x_np = rng.integers(0, VOCAB, size=(batch, seq))
    t_np = rng.integers(0, VOCAB, size=(batch, seq))
    ref = build_torch("cpu", hidden)
    out = {}
    small_x, small_t = x_np[:2, :3].copy(), t_np[:2, :3].copy()
    if engine == "nnscratch":
        ours = Ours(ref)
        del ref
        ours.train_step(small_x, small_t)   # loads the kernels and creates the optimizer state
        out["rss_peak_mb"] = _step_peak_mb(lambda: ours.train_step(x_np, t_np))
        import tracemalloc

        tracemalloc.start()
        ours.train_step(x_np, t_np)
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    else:
        opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
        torch_train_step(ref, opt, torch.from_numpy(small_x), torch.from_numpy(small_t))
        xt, tt = torch.from_numpy(x_np), torch.from_numpy(t_np)
        out["rss_peak_mb"] = _step_peak_mb(lambda: torch_train_step(ref, opt, xt, tt))
    return out


def run_memory_probe(engine, batch, seq, hidden=HIDDEN):
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe", engine,
           "--batch", str(batch), "--seq", str(seq), "--hidden", str(hidden)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def gpu_memory(ours_factory, ref, opt, x, t, xt, tt):
    import cupy
    import torch

    ours = ours_factory()                  # weights allocated before the measurement
    pool = cupy.get_default_memory_pool()
    cupy.cuda.get_current_stream().synchronize()
    pool.free_all_blocks()                 # drop cached blocks: the pool then grows to the peak
    before = pool.total_bytes()
    ours.train_step(x, t)
    cupy.cuda.get_current_stream().synchronize()
    ours_mb = (pool.total_bytes() - before) / 2**20
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    torch_train_step(ref, opt, xt, tt)
    torch.cuda.synchronize()
    torch_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    return {"nnscratch_pool_growth_mb": round(ours_mb, 1), "torch_peak_mb": round(torch_mb, 1)}


# ==============================================================================================
# Main
# ==============================================================================================
def _round(v, n):
    return None if v is None else round(v, n)


def _spread(rounds):
    return [round(min(r["min_ms"] for r in rounds), 1), round(max(r["max_ms"] for r in rounds), 1)]


def time_training(batch, seq, args, tdev, repeats, rounds, unfolded=True):
    import torch

    import nnscratch as nn

    rng = np.random.default_rng(0)
    x_np = rng.integers(0, VOCAB, size=(batch, seq))
    t_np = rng.integers(0, VOCAB, size=(batch, seq))
    ref = build_torch(tdev, args.hidden)
    ours = Ours(ref)
    plain = Ours(ref, fold=False) if unfolded else None
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    x, t = nn.to_device(x_np), nn.to_device(t_np)
    xt, tt = torch.from_numpy(x_np).to(tdev), torch.from_numpy(t_np).to(tdev)
    sync = None
    if args.device == "gpu":
        from nnscratch.backend import synchronize

        sync = lambda: (synchronize(), torch_sync(tdev))  # noqa: E731
    losses = [ours.train_step(x, t), torch_train_step(ref, opt, xt, tt)]
    if plain is not None:
        losses.append(plain.train_step(x, t))
    r_ours, r_torch, r_plain = [], [], []
    for r in range(rounds):  # interleaved rounds: drifts of a shared machine hit every engine
        w = 1 if r == 0 else 0
        r_ours.append(time_fn(lambda: ours.train_step(x, t), repeats, warmup=w, sync=sync))
        r_torch.append(time_fn(lambda: torch_train_step(ref, opt, xt, tt), repeats, warmup=w,
                               sync=sync))
        if plain is not None:
            r_plain.append(time_fn(lambda: plain.train_step(x, t), repeats, warmup=w, sync=sync))
    res = {
        "batch": batch, "seq": seq,
        "nnscratch_ms": min(r["median_ms"] for r in r_ours),
        "torch_ms": min(r["median_ms"] for r in r_torch),
        "nnscratch_unfolded_ms": min(r["median_ms"] for r in r_plain) if r_plain else None,
        "nnscratch_spread_ms": _spread(r_ours),
        "torch_spread_ms": _spread(r_torch),
        "first_loss": [round(float(v), 4) for v in losses],
        "phases_ms": {k: round(float(np.median(v[1:])), 1) for k, v in ours.phase_ms.items()},
    }
    res["ratio"] = res["nnscratch_ms"] / res["torch_ms"]
    res["ratio_unfolded"] = res["nnscratch_unfolded_ms"] / res["torch_ms"] if r_plain else None
    if args.device == "gpu":
        res["memory"] = gpu_memory(lambda: Ours(ref), ref, opt, x, t, xt, tt)
    return res, ours, ref


def time_sampling(ours, ref, tdev, n_tokens, args):
    import nnscratch as nn

    xp = nn.backend.xp_for(args.device)
    sync = None
    if args.device == "gpu":
        from nnscratch.backend import synchronize

        sync = lambda: (synchronize(), torch_sync(tdev))  # noqa: E731
    out = {}
    cases = (("generation", lambda: sample_ours(ours, n_tokens, xp),
              lambda: sample_torch(ref, n_tokens, tdev)),
             ("lstm_step", lambda: step_only_ours(ours, n_tokens, xp),
              lambda: step_only_torch(ref, n_tokens, tdev)))
    for name, fo, ft in cases:
        a = time_fn(fo, 3, warmup=1, sync=sync)
        b = time_fn(ft, 3, warmup=1, sync=sync)
        out[name] = {"nnscratch_tok_s": n_tokens / (a["median_ms"] / 1e3),
                     "torch_tok_s": n_tokens / (b["median_ms"] / 1e3)}
        out[name]["speedup"] = out[name]["nnscratch_tok_s"] / out[name]["torch_tok_s"]
    return out


def main(argv=None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=None, help="one batch size instead of the defaults")
    p.add_argument("--seq", type=int, default=None,
                   help="sequence length (CPU 128, 64 with --quick; GPU 256)")
    p.add_argument("--hidden", type=int, default=HIDDEN,
                   help=f"LSTM hidden size (default {HIDDEN}; the GPU pass also runs 1024)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the CPU memory probes (two subprocesses): the GPU pass's rehearsal")
    p.add_argument("--memory-probe", choices=["nnscratch", "torch"], default=None,
                   help=argparse_hidden())
    args = p.parse_args(argv)
    if args.memory_probe:
        probe = memory_probe(args.memory_probe, args.batch or 64, args.seq or 128, args.hidden)
        print(json.dumps(probe))
        return 0
    t_start = time.perf_counter()
    tdev = setup_device(args.device)
    gpu = args.device == "gpu"
    # --quick halves the CPU sequence (64) so the whole script stays under a minute on 2 cores
    seq = args.seq or (256 if gpu else (64 if args.quick else 128))
    batches = [args.batch] if args.batch else ([64, 256] if gpu else [64])
    repeats = args.repeats or (2 if args.quick else (10 if gpu else 3))
    rounds = 1 if args.quick else 3
    n_tokens = 200 if args.quick else 1000

    precision = torch_precision()  # both engines in plain FP32
    runs = []
    ours = ref = None
    for batch in batches:
        res, ours, ref = time_training(batch, seq, args, tdev, repeats, rounds,
                                       unfolded=not args.quick)
        runs.append(res)
    sampling = time_sampling(ours, ref, tdev, n_tokens, args)
    memory = None
    if not gpu and not args.no_memory:
        memory = {e: run_memory_probe(e, batches[0], seq, args.hidden)
                  for e in ("nnscratch", "torch")}
    info = machine()
    load = os.getloadavg()[0]

    rows = []
    for r in runs:
        rows.append([f"train step b{r['batch']} x s{r['seq']} (ms)", f"{r['nnscratch_ms']:.1f}",
                     f"{r['torch_ms']:.1f}", f"{r['ratio']:.3f}"])
        if not args.quick:
            rows.append(["  same, Embedding then LSTM, unfolded (ms)",
                         f"{r['nnscratch_unfolded_ms']:.1f}", f"{r['torch_ms']:.1f}",
                         f"{r['ratio_unfolded']:.3f}"])
    for name, s in sampling.items():
        rows.append([f"sampling: {name} (tokens/s)", f"{s['nnscratch_tok_s']:.0f}",
                     f"{s['torch_tok_s']:.0f}", f"{1 / s['speedup']:.3f}"])
    if memory:
        a = memory["nnscratch"].get("rss_peak_mb", float("nan"))
        b = memory["torch"].get("rss_peak_mb", float("nan"))
        rows.append(["train step peak RSS growth (MiB)", f"{a:.0f}", f"{b:.0f}", f"{a / b:.3f}"])
    for r in runs:
        if "memory" in r:
            a, b = r["memory"]["nnscratch_pool_growth_mb"], r["memory"]["torch_peak_mb"]
            rows.append([f"train step b{r['batch']} memory (MiB)", f"{a:.0f}", f"{b:.0f}",
                         f"{a / max(b, 1e-9):.3f}"])
    where = info.get("gpu", f"CPU x{info['cpus']}, torch threads {info['cpu_threads_torch']}")
    print_table(f"LSTM char model (vocab {VOCAB}, embed {EMBED}, {LAYERS} x LSTM {args.hidden}, "
                f"dropout {DROPOUT}), float32, device {args.device} ({where}), "
                f"load average {load:.2f}",
                rows, ["figure", "nnscratch", "torch", "ratio (time, memory: lower is better)"])
    for r in runs:
        print(f"nnscratch phases b{r['batch']} (median ms): {r['phases_ms']}; spread of single "
              f"steps nnscratch {r['nnscratch_spread_ms']}, torch {r['torch_spread_ms']}; first "
              f"losses {r['first_loss']}")
    if memory and "tracemalloc_peak_mb" in memory["nnscratch"]:
        print(f"nnscratch tracemalloc peak of NumPy allocations in a steady-state step: "
              f"{memory['nnscratch']['tracemalloc_peak_mb']:.0f} MiB")
    print(f"wall time {time.perf_counter() - t_start:.1f} s")
    main_run = runs[0]
    record = {
        "bench": "lstm_train_step", "device": args.device,
        "config": f"vocab {VOCAB} embed {EMBED} 2x lstm {args.hidden} dropout {DROPOUT} seq {seq} "
                  "adamw clip fp32",
        "nnscratch_ms": round(main_run["nnscratch_ms"], 2),
        "torch_ms": round(main_run["torch_ms"], 2),
        "ratio": round(main_run["ratio"], 4), "goal_ratio": 1.25 if gpu else 1.0,
        "nnscratch_unfolded_ms": _round(main_run["nnscratch_unfolded_ms"], 2),
        "ratio_unfolded": _round(main_run["ratio_unfolded"], 4),
        "runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                 for r in runs],
        "sampling": {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in sampling.items()},
        "memory_mb": memory if memory else {f"b{r['batch']}": r.get("memory") for r in runs},
        "load_average": round(load, 2), "quick": bool(args.quick), **precision,
        "switches": {k: info[k] for k in ("tf32", "cuda_graph", "fused_xent") if k in info},
        "versions": {k: info[k] for k in ("numpy", "torch", "numba", "cupy", "gpu") if k in info},
    }
    emit_json(record)
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
