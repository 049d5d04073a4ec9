"""The seed-000 network learns XOR and sin by plain gradient descent; the demo CLI runs."""
from __future__ import annotations

import json

import pytest

from apps import mlp_demo


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigmoid_mlp_learns_xor(seed):
    task = mlp_demo.make_task("xor")
    _, history, mse = mlp_demo.fit(task, seed=seed)
    assert history[-1] < 1e-3, f"J = {history[-1]}"
    assert history[-1] < history[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_sigmoid_mlp_fits_sin(seed):
    task = mlp_demo.make_task("sin")
    _, history, mse = mlp_demo.fit(task, seed=seed)
    assert mse < 1e-3, f"MSE = {mse}"


def test_demo_cli_writes_plots_checkpoint_and_summary(tmp_path, capsys):
    rc = mlp_demo.main(["--task", "xor", "--out", str(tmp_path), "--log-every", "1000"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "J =" in out and "reload identical: True" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["xor"]["final_J"] < 1e-3
    png = (tmp_path / "xor.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_cli_rejects_bad_hidden(tmp_path):
    with pytest.raises(SystemExit):
        mlp_demo.main(["--hidden", "4,x", "--out", str(tmp_path)])
