"""The whole machine: one training job alone, two at once, and one beside a foreign CPU hog.

For nnscratch and for PyTorch, each job a separate process training the same model on random
tokens (or images) for a fixed window of wall time, all jobs of a scenario starting their
window together (after their imports and warm-up steps):

    solo        one job alone (every core)
    solo-1t     one job on one thread (NNSCRATCH_THREADS=1 / torch.set_num_threads(1)): one
                core's worth, for reference
    pair        two jobs of the same engine at once
    foreign     one job beside a CPU-bound process that is not ours (a Python busy loop)

Printed: steps/s of every job, and the ratios the issue's acceptance reads (issue 21): in
'pair', each job's speed over its solo speed and the two together over solo (>= 0.45 each,
>= 0.90 together, i.e. the pair does at least 90% of the work two cores did for one job); in
'foreign', the job's speed over solo (>= 0.45). nnscratch runs with its thread policy
(nnscratch/threads.py) unless NNSCRATCH_THREADS is set; torch with its defaults.

Models (float32): 'lstm' is the ABC app's cpu preset (embedding 128, 2 x LSTM 256, dropout 0.2,
softmax cross-entropy, AdamW, clipping 1.0) on batches of 32 x 128 tokens; 'cnn' is the digit
CNN (Conv 1->16, ReLU, MaxPool 2, Conv 16->32, ReLU, MaxPool 2, Dense 4608->10) on batches of
64 images 50 x 50.

    python benchmarks/concurrency.py [--quick] [--model lstm|cnn] [--seconds S]
                                     [--engines nnscratch,torch] [--scenarios solo,pair,...]

--quick: 6-second windows, about a minute and a half. Do not run two of these at once, nor
beside other work: it measures the machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import emit_json, print_table  # noqa: E402

ENGINES = ("nnscratch", "torch")
SCENARIOS = ("solo", "solo-1t", "pair", "foreign")
VOCAB, EMBED, HIDDEN, LAYERS, DROPOUT, BATCH, SEQ = 95, 128, 256, 2, 0.2, 32, 128
CNN_BATCH = 64
GOAL_EACH, GOAL_PAIR, GOAL_FOREIGN = 0.45, 0.90, 0.45
BUSY_LOOP = "while True:\n    pass\n"


# ==============================================================================================
# One job (a worker process)
# ==============================================================================================
def _nnscratch_job(model: str):
    """A function running one training step of the model on nnscratch."""
    import nnscratch as nn
    from nnscratch.layers.dropout import Dropout
    from nnscratch.layers.embedding import Embedding
    from nnscratch.layers.lstm import LSTM

    nn.manual_seed(0)
    rng = np.random.default_rng(0)
    if model == "lstm":
        emb, lstm = Embedding(VOCAB, EMBED), LSTM(EMBED, HIDDEN, num_layers=LAYERS,
                                                   dropout=DROPOUT)
        drop, fc, loss_fn = Dropout(DROPOUT), nn.Dense(HIDDEN, VOCAB), nn.SoftmaxCrossEntropyLoss()
        params = emb.parameters() + lstm.parameters() + fc.parameters()
        opt = nn.optim.AdamW(params, lr=2e-3)
        x = rng.integers(0, VOCAB, (BATCH, SEQ))
        t = rng.integers(0, VOCAB, (BATCH, SEQ))

        def step():
            y, _ = lstm(x, embedding=emb)
            logits = fc(drop(y).reshape(BATCH * SEQ, HIDDEN))
            loss_fn(logits, t.reshape(-1))
            dy = drop.backward(fc.backward(loss_fn.backward()).reshape(BATCH, SEQ, HIDDEN))
            lstm.backward(dy)
            nn.optim.clip_grad_norm(params, 1.0)
            opt.step()
            opt.zero_grad()
        return step, BATCH * SEQ

    from nnscratch.layers.conv import Conv2D
    from nnscratch.layers.pool import MaxPool2D
    from nnscratch.layers.reshape import Flatten

    net = nn.Sequential(Conv2D(1, 16, 3, padding=1), nn.ReLU(), MaxPool2D(2),
                        Conv2D(16, 32, 3, padding=1), nn.ReLU(), MaxPool2D(2), Flatten(),
                        nn.Dense(32 * 12 * 12, 10))
    net[0].input_grad = False
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    opt = nn.optim.Adam(net.parameters(), lr=1e-3)
    x = rng.standard_normal((CNN_BATCH, 1, 50, 50)).astype(np.float32)
    t = rng.integers(0, 10, CNN_BATCH)

    def step():
        loss_fn(net(x), t)
        net.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    return step, CNN_BATCH


def _torch_job(model: str):
    import torch

    torch.manual_seed(0)
    if model == "lstm":
        m = torch.nn.ModuleDict({
            "emb": torch.nn.Embedding(VOCAB, EMBED),
            "lstm": torch.nn.LSTM(EMBED, HIDDEN, num_layers=LAYERS, dropout=DROPOUT,
                                  batch_first=True),
            "drop": torch.nn.Dropout(DROPOUT), "fc": torch.nn.Linear(HIDDEN, VOCAB)})
        opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
        x = torch.randint(0, VOCAB, (BATCH, SEQ))
        t = torch.randint(0, VOCAB, (BATCH, SEQ))

        def step():
            opt.zero_grad(set_to_none=True)
            y, _ = m["lstm"](m["emb"](x))
            loss = torch.nn.functional.cross_entropy(m["fc"](m["drop"](y)).reshape(-1, VOCAB),
                                                     t.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            loss.item()
        return step, BATCH * SEQ

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(16, 32, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(32 * 12 * 12, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(CNN_BATCH, 1, 50, 50)
    t = torch.randint(0, 10, (CNN_BATCH,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), t)
        loss.backward()
        opt.step()
        loss.item()
    return step, CNN_BATCH


def worker(engine: str, model: str, seconds: float, one_thread: bool) -> int:
    """Build, warm up, say 'ready', wait for 'go' on stdin, train for ``seconds``; print JSON."""
    if engine == "torch":
        import torch

        if one_thread:
            torch.set_num_threads(1)
        step, items = _torch_job(model)
        threads_used = lambda: torch.get_num_threads()  # noqa: E731
    else:
        if one_thread:
            os.environ["NNSCRATCH_THREADS"] = "1"
        step, items = _nnscratch_job(model)
        from nnscratch import threads

        threads_used = lambda: threads.current()  # noqa: E731
    for _ in range(3):
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    steps = 0
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    print(json.dumps({"engine": engine, "steps": steps, "seconds": elapsed,
                      "steps_per_s": steps / elapsed, "items_per_s": steps * items / elapsed,
                      "threads": threads_used()}), flush=True)
    return 0


# ==============================================================================================
# The scenarios (the parent process)
# ==============================================================================================
def run_scenario(engine: str, scenario: str, model: str, seconds: float) -> list[dict]:
    """Start the scenario's jobs (and the foreign process), run one window, return the jobs'
    results."""
    n_jobs = 2 if scenario == "pair" else 1
    hog = None
    if scenario == "foreign":
        hog = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--model", model,
           "--seconds", str(seconds)] + (["--one-thread"] if scenario == "solo-1t" else [])
    jobs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(n_jobs)]
    try:
        for j in jobs:
            line = j.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"{engine} {scenario}: a job failed to start ({line!r})")
        for j in jobs:  # start the windows together
            j.stdin.write("go\n")
            j.stdin.flush()
        results = []
        for j in jobs:
            out, _ = j.communicate(timeout=seconds * 50 + 600)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for j in jobs:
            if j.poll() is None:
                j.kill()
        if hog is not None:
            hog.kill()
            hog.wait()


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="6-second windows (about 1.5 minutes)")
    p.add_argument("--model", choices=["lstm", "cnn"], default="lstm")
    p.add_argument("--seconds", type=float, default=None, help="each window (default 30; 6 quick)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--one-thread", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    seconds = args.seconds or (6.0 if args.quick else 30.0)
    if args.worker:
        return worker(args.worker, args.model, seconds, args.one_thread)

    engines = [e for e in args.engines.split(",") if e]
    scenarios = [s for s in args.scenarios.split(",") if s]
    settings = {k: os.environ[k] for k in ("NNSCRATCH_THREADS", "OPENBLAS_NUM_THREADS",
                                           "OMP_NUM_THREADS", "OPENBLAS_CORETYPE")
                if k in os.environ}
    load_start = os.getloadavg()[0]
    figures: dict = {}
    rows = []
    for engine in engines:
        res = {s: run_scenario(engine, s, args.model, seconds) for s in scenarios}
        speed = {s: [r["steps_per_s"] for r in rs] for s, rs in res.items()}
        solo = speed.get("solo", [None])[0]
        f = {"steps_per_s": speed, "threads": {s: [r["threads"] for r in rs]
                                               for s, rs in res.items()},
             "items_per_s": {s: [round(r["items_per_s"], 1) for r in rs]
                             for s, rs in res.items()}}
        if solo:
            if "pair" in speed:
                f["pair_each_over_solo"] = [v / solo for v in speed["pair"]]
                f["pair_combined_over_solo"] = sum(speed["pair"]) / solo
            if "foreign" in speed:
                f["foreign_over_solo"] = speed["foreign"][0] / solo
            if "solo-1t" in speed:
                f["solo_1t_over_solo"] = speed["solo-1t"][0] / solo
        figures[engine] = f
        for s in scenarios:
            for k, r in enumerate(res[s]):
                ratio = f"{r['steps_per_s'] / solo:.2f}" if solo else "-"
                rows.append([engine, s + (f" #{k + 1}" if len(res[s]) > 1 else ""),
                             f"{r['steps_per_s']:.3f}", f"{r['items_per_s']:,.0f}", r["threads"],
                             ratio])
            if s == "pair" and solo:
                rows.append([engine, "pair, together", f"{sum(speed['pair']):.3f}", "", "",
                             f"{f['pair_combined_over_solo']:.2f}"])
    load_end = os.getloadavg()[0]
    unit = "tokens/s" if args.model == "lstm" else "images/s"
    print_table(f"Concurrency, model '{args.model}', {seconds:g}-second windows, "
                f"{os.cpu_count()} CPUs; load average {load_start:.2f} at the start, "
                f"{load_end:.2f} at the end; settings {settings or 'none'}",
                rows, ["engine", "scenario", "steps/s", unit, "threads", "/ solo"])
    verdicts = {}
    for engine, f in figures.items():
        if "pair_combined_over_solo" in f:
            ok = (f["pair_combined_over_solo"] >= GOAL_PAIR
                  and min(f["pair_each_over_solo"]) >= GOAL_EACH)
            verdicts[f"{engine}_pair"] = "met" if ok else "NOT met"
            each = ", ".join(f"{v:.2f}" for v in f["pair_each_over_solo"])
            print(f"{engine}: two jobs at once: each {each} of solo, together "
                  f"{f['pair_combined_over_solo']:.2f} (goal for nnscratch: "
                  f">= {GOAL_EACH} each, >= {GOAL_PAIR} together): {verdicts[f'{engine}_pair']}")
        if "foreign_over_solo" in f:
            ok = f["foreign_over_solo"] >= GOAL_FOREIGN
            verdicts[f"{engine}_foreign"] = "met" if ok else "NOT met"
            print(f"{engine}: beside a busy loop: {f['foreign_over_solo']:.2f} of solo (goal for "
                  f"nnscratch: >= {GOAL_FOREIGN}): {verdicts[f'{engine}_foreign']}")
    print()

    def rounded(v):
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, list):
            return [rounded(x) for x in v]
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v

    emit_json({"bench": "concurrency", "device": "cpu", "model": args.model,
               "config": f"{args.model}: solo / pair / beside a busy loop, {seconds:g}-s windows",
               "nnscratch": rounded(figures.get("nnscratch")),
               "torch": rounded(figures.get("torch")),
               "verdicts": verdicts, "load_average": [round(load_start, 2), round(load_end, 2)],
               "settings": settings, "cpus": os.cpu_count(), "quick": bool(args.quick)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
