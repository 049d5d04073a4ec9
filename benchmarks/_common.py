"""Shared helpers for the benchmark scripts: timing, device setup, the table and the JSON line."""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nnscratch import backend  # noqa: E402


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer repeats: under a minute on 2 cores")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (median reported)")
    return p


def setup_device(name: str):
    """Select the device for nnscratch; returns the torch device string."""
    backend.set_device(name)
    return "cuda" if name == "gpu" else "cpu"


def torch_precision(tf32: bool = False) -> dict:
    """Set PyTorch's float32 precision for a comparison with nnscratch: plain FP32 by default,
    i.e. TF32 off for cuBLAS matrix products and cuDNN convolutions and RNNs (on Ampere and
    later GPUs PyTorch lets cuDNN use TF32 unless told not to, which would compare a 10-bit
    mantissa against our 23). nnscratch's own GEMMs are FP32 unless NNSCRATCH_TF32=1
    (``backend.set_tf32``); pass ``tf32=True`` to compare both with TF32 on.

    Every benchmark that times or checks against torch calls this once, before the first torch
    operation; the returned dict goes into its JSON record.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return {"torch_tf32": bool(tf32)}


def torch_sync(torch_device: str):
    import torch

    if torch_device == "cuda":
        torch.cuda.synchronize()


def time_fn(fn, repeats: int, warmup: int = 2, sync=None) -> dict:
    """Median and spread of ``fn()`` wall time in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times),
            "max_ms": max(times), "repeats": repeats}


def machine() -> dict:
    import torch

    info = backend.describe()
    info.update({"torch": torch.__version__, "python": platform.python_version(),
                 "cpu_threads_torch": torch.get_num_threads(), "cpus": os.cpu_count()})
    return info


def print_table(title: str, rows: list[list], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print()


def emit_json(record: dict) -> None:
    """The one machine-readable line every benchmark ends with."""
    print(json.dumps(record))
