"""Conv2D forward and backward against PyTorch on the same inputs, same process.

Configurations (float32, 3x3 kernels, padding 1, stride 1):
    digit-cnn-conv1   x (64, 1, 50, 50)   -> 16 channels  (the spoken-digit CNN's first layer)
    digit-cnn-conv2   x (64, 16, 25, 25)  -> 32 channels  (its second layer)
    cifar-like        x (32, 32, 32, 32)  -> 64 channels
For each: the forward alone, and forward + backward (input, weight and bias gradients; the
first layer of a network skips the input gradient, so 'conv1' is timed with
``input_grad=False`` on our side and ``requires_grad=False`` on x for torch).

    python benchmarks/conv.py [--quick] [--device cpu|gpu]

The JSON line reports the forward + backward of 'digit-cnn-conv2' as the headline figure.
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
    torch_sync,
)

CONFIGS = [
    # name, (N, C_in, H, W), C_out, input_grad
    ("digit-cnn-conv1", (64, 1, 50, 50), 16, False),
    ("digit-cnn-conv2", (64, 16, 25, 25), 32, True),
    ("cifar-like", (32, 32, 32, 32), 64, True),
]
HEADLINE = "digit-cnn-conv2"


def main(argv=None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    repeats = args.repeats or (6 if args.quick else 30)
    tdev = setup_device(args.device)

    import torch

    import nnscratch as nn
    from nnscratch.layers.conv import Conv2D

    sync = None
    if args.device == "gpu":
        from nnscratch.backend import synchronize

        sync = lambda: (synchronize(), torch_sync(tdev))  # noqa: E731
    rng = np.random.default_rng(0)
    rows, results = [], {}
    for name, shape, c_out, input_grad in CONFIGS:
        c_in = shape[1]
        x_np = rng.standard_normal(shape).astype(np.float32)
        layer = Conv2D(c_in, c_out, 3, padding=1)
        layer.input_grad = input_grad
        w_np = nn.to_cpu(layer.weight.data).copy()
        b_np = rng.standard_normal(c_out).astype(np.float32)
        layer.bias.data = nn.to_device(b_np)
        x = nn.to_device(x_np)
        out_shape = (shape[0], c_out, shape[2], shape[3])
        dy_np = rng.standard_normal(out_shape).astype(np.float32)
        dy = nn.to_device(dy_np)

        def fwd_ours(layer=layer, x=x):  # bound now: the loop rebinds the names
            with nn.no_grad():
                layer(x)

        def fwd_bwd_ours(layer=layer, x=x, dy=dy):
            layer(x)
            layer.backward(dy)
            layer.zero_grad()

        conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1).to(tdev)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w_np))
            conv.bias.copy_(torch.from_numpy(b_np))
        xt = torch.from_numpy(x_np).to(tdev).requires_grad_(input_grad)
        dyt = torch.from_numpy(dy_np).to(tdev)

        def fwd_torch(conv=conv, xt=xt):
            with torch.no_grad():
                conv(xt)

        def fwd_bwd_torch(conv=conv, xt=xt, dyt=dyt):
            conv.zero_grad(set_to_none=True)
            xt.grad = None
            conv(xt).backward(dyt)

        # correctness first: same outputs and weight gradients (float32 tolerance)
        layer(x)
        layer.backward(dy)
        fwd_bwd_torch()
        np.testing.assert_allclose(nn.to_cpu(layer.weight.grad), conv.weight.grad.cpu().numpy(),
                                   rtol=2e-3, atol=2e-3)
        layer.zero_grad()

        r = {}
        for key, fo, ft in (("fwd", fwd_ours, fwd_torch), ("fwd_bwd", fwd_bwd_ours, fwd_bwd_torch)):
            ours, theirs = [], []
            for _ in range(3):  # interleave so slow drifts of the machine hit both alike
                ours.append(time_fn(fo, max(1, repeats // 3), warmup=2, sync=sync)["median_ms"])
                theirs.append(time_fn(ft, max(1, repeats // 3), warmup=2, sync=sync)["median_ms"])
            r[key] = (min(ours), min(theirs))
        results[name] = r
        rows.append([name, f"{shape} -> {c_out}", f"{r['fwd'][0]:.2f}", f"{r['fwd'][1]:.2f}",
                     f"{r['fwd'][0] / r['fwd'][1]:.2f}", f"{r['fwd_bwd'][0]:.2f}",
                     f"{r['fwd_bwd'][1]:.2f}", f"{r['fwd_bwd'][0] / r['fwd_bwd'][1]:.2f}"])
    info = machine()
    print_table(f"Conv2D 3x3 pad 1, float32, device {args.device} ({info.get('gpu', 'CPU')}, torch "
                f"threads {info['cpu_threads_torch']}, numba {info.get('numba', 'absent')}); ms, "
                f"median of {repeats} (best of 3 interleaved rounds)",
                rows, ["config", "shape", "ours fwd", "torch fwd", "ratio", "ours fwd+bwd",
                       "torch fwd+bwd", "ratio"])
    ours_ms, torch_ms = results[HEADLINE]["fwd_bwd"]
    emit_json({"bench": "conv2d_fwd_bwd", "device": args.device,
               "config": f"{HEADLINE}: x (64,16,25,25) -> 32 ch, 3x3 pad 1, fp32, forward+backward",
               "nnscratch_ms": round(ours_ms, 3), "torch_ms": round(torch_ms, 3),
               "ratio": round(ours_ms / torch_ms, 3),
               "forward": {k: {"nnscratch_ms": round(v["fwd"][0], 3),
                               "torch_ms": round(v["fwd"][1], 3)} for k, v in results.items()},
               "forward_backward": {k: {"nnscratch_ms": round(v["fwd_bwd"][0], 3),
                                        "torch_ms": round(v["fwd_bwd"][1], 3)}
                                    for k, v in results.items()},
               "versions": {k: info[k] for k in ("numpy", "torch", "numba") if k in info}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
