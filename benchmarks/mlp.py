"""One MLP training step (forward, backward, Adam) against PyTorch, same process, same inputs.

Model: 784-512-512-10, ReLU hidden layers, softmax cross-entropy, batch 128, float32.

    python benchmarks/mlp.py [--quick] [--device cpu|gpu]

Goal (issue 2): time ratio nnscratch / torch <= 1.1 on the CPU; on the GPU too (issue 14).
Both engines in plain FP32 (torch's TF32 off: ``_common.torch_precision``).
"""
from __future__ import annotations

import os
import sys

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


def build_nnscratch(sizes, weights):
    import nnscratch as nn

    layers = []
    for i, (W, b) in enumerate(weights):
        d = nn.Dense(sizes[i], sizes[i + 1])
        d.weight.data = nn.to_device(W.copy())
        d.bias.data = nn.to_device(b.copy())
        layers.append(d)
        if i < len(weights) - 1:
            layers.append(nn.ReLU())
    layers[0].input_grad = False  # its input is data: no dx, as torch skips it for x
    return nn.Sequential(*layers)


def build_torch(sizes, weights, device):
    import torch

    mods = []
    for i, (W, b) in enumerate(weights):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(weights) - 1:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods).to(device)


def main(argv=None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args(argv)
    repeats = args.repeats or (20 if args.quick else 100)
    tdev = setup_device(args.device)

    import torch

    import nnscratch as nn

    precision = torch_precision()

    sizes = [784, 512, 512, 10]
    rng = np.random.default_rng(0)
    weights = [((rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32),
                np.zeros(o, np.float32)) for i, o in zip(sizes[:-1], sizes[1:])]
    x_np = rng.standard_normal((args.batch, sizes[0])).astype(np.float32)
    t_np = rng.integers(0, sizes[-1], size=args.batch)

    ours = build_nnscratch(sizes, weights)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    opt = nn.optim.Adam(ours.parameters(), lr=1e-3)
    x, t = nn.to_device(x_np), nn.to_device(t_np)

    def step_ours():
        loss_fn(ours(x), t)
        ours.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()

    ref = build_torch(sizes, weights, tdev)
    ropt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    xt, tt = torch.from_numpy(x_np).to(tdev), torch.from_numpy(t_np).to(tdev)
    ce = torch.nn.CrossEntropyLoss()

    def step_torch():
        ropt.zero_grad(set_to_none=True)
        loss = ce(ref(xt), tt)
        loss.backward()
        ropt.step()
        loss.item()  # both sides read the loss back each step, as a training loop does

    sync = (lambda: torch_sync(tdev)) if args.device == "gpu" else None
    if args.device == "gpu":
        from nnscratch.backend import synchronize

        sync = lambda: (synchronize(), torch_sync(tdev))  # noqa: E731
    # Interleave the two so slow drifts of the machine hit both alike.
    r_ours, r_torch = [], []
    for _ in range(3):
        r_ours.append(time_fn(step_ours, repeats // 3 or 1, warmup=3, sync=sync))
        r_torch.append(time_fn(step_torch, repeats // 3 or 1, warmup=3, sync=sync))
    ours_ms = min(r["median_ms"] for r in r_ours)
    torch_ms = min(r["median_ms"] for r in r_torch)
    ratio = ours_ms / torch_ms
    info = machine()
    print_table(f"MLP training step 784-512-512-10, batch {args.batch}, Adam, float32, device "
                f"{args.device} ({info.get('gpu', 'CPU')}, torch threads "
                f"{info['cpu_threads_torch']})",
                [["nnscratch", f"{ours_ms:.3f}"], ["torch", f"{torch_ms:.3f}"],
                 ["ratio", f"{ratio:.3f}"]],
                ["engine", "ms / step (median)"])
    emit_json({"bench": "mlp_train_step", "device": args.device,
               "config": f"784-512-512-10 relu batch {args.batch} adam fp32",
               "nnscratch_ms": round(ours_ms, 4), "torch_ms": round(torch_ms, 4),
               "ratio": round(ratio, 4), "goal_ratio": 1.1, **precision,
               "versions": {k: info[k] for k in ("numpy", "torch", "cupy", "gpu") if k in info}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
