"""The seed-000 network on two small problems: XOR and sin(x) on [-pi, pi].

A multilayer perceptron with sigmoid hidden neurons and a linear output neuron, trained by plain
gradient descent on the seed report's cost J = 1/2 * sum (y - y_target)^2, with the per-neuron
delta recursion as its backward (nnscratch/layers/mlp.py, docs/derivations/mlp.md).

    python apps/mlp_demo.py                 # both tasks, plots and checkpoints in runs/mlp_demo/
    python apps/mlp_demo.py --task sin --hidden 16 --lr 0.01 --epochs 20000

Writes, in the output folder: <task>.png (fit and loss curve), <task>.npz (checkpoint, reloaded
and checked), summary.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnscratch as nn
from apps.common.cli import (
    layer_sizes,
    nonnegative_int,
    positive_float,
    positive_int,
    run_command,
)
from apps.common.errors import UsageError
from apps.common.runs import make_run_dir, write_summary
from nnscratch import optim


@dataclass
class Task:
    name: str
    x: np.ndarray          # (N, n_in), what the network sees
    t: np.ndarray          # (N, 1) targets
    x_plot: np.ndarray     # (N,) abscissa for the plot
    hidden: list
    lr: float
    epochs: int


def make_task(name: str) -> Task:
    if name == "xor":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        t = np.array([[0], [1], [1], [0]], dtype=np.float64)
        return Task("xor", x, t, np.arange(4), hidden=[4], lr=0.2, epochs=5000)
    if name == "sin":
        grid = np.linspace(-np.pi, np.pi, 64)
        # The input is scaled to [-1, 1]: the sigmoid units then start in their useful range,
        # and plain gradient descent is far better conditioned than on [-pi, pi].
        return Task("sin", (grid / np.pi)[:, None], np.sin(grid)[:, None], grid, hidden=[16],
                    lr=0.01, epochs=20000)
    raise UsageError(f"unknown task {name!r}: expected xor or sin")


def fit(task: Task, hidden=None, lr=None, epochs=None, seed: int = 0, log_every: int = 0,
        log=print):
    """Train a SigmoidMLP by plain gradient descent on J; returns (model, J history, final MSE)."""
    hidden = task.hidden if hidden is None else hidden
    lr = task.lr if lr is None else lr
    epochs = task.epochs if epochs is None else epochs
    nn.manual_seed(seed)
    with nn.default_dtype(np.float64):
        model = nn.SigmoidMLP([task.x.shape[1], *hidden, task.t.shape[1]])
    J = nn.LeastSquares()
    opt = optim.SGD(model.parameters(), lr=lr)  # w <- w - lr dJ/dw: plain descent, mlp.md (9)
    history = []
    for epoch in range(1, epochs + 1):
        j = J(model(task.x), task.t)
        model.backward(J.backward())
        opt.step()
        opt.zero_grad()
        history.append(j)
        if log_every and (epoch % log_every == 0 or epoch == 1):
            log(f"[{task.name}] epoch {epoch:6d}/{epochs}  J = {j:.6f}")
    with nn.no_grad():
        mse = float(((model(task.x) - task.t) ** 2).mean())
    return model, np.array(history), mse


def plot(task: Task, model, history, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with nn.no_grad():
        y = model(task.x)[:, 0]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    if task.name == "sin":
        a.plot(task.x_plot, task.t[:, 0], label="sin(x)", lw=3, alpha=0.4)
        a.plot(task.x_plot, y, label="network", lw=1.5)
        a.set_xlabel("x")
    else:
        labels = ["00", "01", "10", "11"]
        a.bar(np.arange(4) - 0.2, task.t[:, 0], width=0.4, label="target")
        a.bar(np.arange(4) + 0.2, y, width=0.4, label="network")
        a.set_xticks(range(4), labels)
    a.legend()
    a.set_title(f"{task.name}: fit")
    b.semilogy(history)
    b.set_xlabel("epoch")
    b.set_ylabel("J = 1/2 sum (y - t)^2")
    b.set_title("training cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["xor", "sin", "both"], default="both")
    p.add_argument("--hidden", type=layer_sizes, default=None,
                   help="hidden sizes, comma separated (default: 4 for xor, 16 for sin)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: 0.2 xor, 0.01 sin)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default: 5000 xor, 20000 sin")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--log-every", type=nonnegative_int, default=1000, help="0: silent")
    p.add_argument("--out", default=os.path.join("runs", "mlp_demo"), help="output folder")
    return p


def run(args) -> dict:
    """Train, checkpoint, reload and plot each task; write summary.json."""
    out = make_run_dir(args.out)
    summary = {}
    for name in (["xor", "sin"] if args.task == "both" else [args.task]):
        task = make_task(name)
        t0 = time.perf_counter()
        model, history, mse = fit(task, args.hidden, args.lr, args.epochs, args.seed,
                                  args.log_every)
        seconds = time.perf_counter() - t0
        ckpt = os.path.join(out, f"{name}.npz")
        nn.save_checkpoint(ckpt, model, config={"sizes": model.sizes, "task": name})
        with nn.default_dtype(np.float64):
            reloaded = nn.SigmoidMLP(nn.load_checkpoint(ckpt).config["sizes"])
        nn.load_checkpoint(ckpt, reloaded)
        with nn.no_grad():
            same = bool(np.array_equal(reloaded(task.x), model(task.x)))
        png = os.path.join(out, f"{name}.png")
        plot(task, model, history, png)
        print(f"[{name}] final J = {history[-1]:.3e}, MSE = {mse:.3e} in {seconds:.1f} s; "
              f"checkpoint reload identical: {same}; wrote {png}, {ckpt}")
        summary[name] = {"final_J": float(history[-1]), "mse": mse, "epochs": len(history),
                         "seconds": round(seconds, 2), "sizes": model.sizes,
                         "files": [png, ckpt], "reload_identical": same}
    write_summary(out, summary)
    return summary


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
