"""benchmarks/conv.py's plumbing on a tiny layer: the rounds' own ratios and the count of rounds
that met the goals reach the table and the JSON line (no timing is judged here)."""
from __future__ import annotations

import json

import pytest


def test_conv_benchmark_reports_each_rounds_ratio(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    from benchmarks import conv as bench

    tiny = [("tiny", "conv2d", (2, 2, 6, 6), 3, {"kernel_size": 3, "padding": 1}, True, True),
            ("tiny-1d", "conv1d", (2, 2, 9), 3, {"kernel_size": 3, "padding": "same"}, True,
             False)]
    monkeypatch.setattr(bench, "CONFIGS", tiny)
    monkeypatch.setattr(bench, "HEADLINE", "tiny")
    # as in the full suite, where tests/reference sets torch's default dtype to float64: the
    # benchmark must still build float32 layers on torch's side
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert bench.main(["--repeats", "4", "--rounds", "2"]) == 0
    finally:
        torch.set_default_dtype(default)
    out = capsys.readouterr().out
    record = json.loads(out.strip().splitlines()[-1])
    row = record["configs"]["tiny"]
    assert len(row["round_ratios_fwd"]) == len(row["round_ratios_fwd_bwd"]) == 2
    assert all(r > 0 for r in row["round_ratios_fwd"] + row["round_ratios_fwd_bwd"])
    met = sum(fb <= bench.GOAL_FWD_BWD and f <= bench.GOAL_FWD
              for f, fb in zip(row["round_ratios_fwd"], row["round_ratios_fwd_bwd"]))
    assert row["rounds_met"] == met  # (ratios rounded to 3 places: a tie at a goal is unlikely)
    assert record["configs"]["tiny-1d"]["rounds_met"] is None  # no goal of its own
    assert "rounds)" in out and "median (min-max)" in out


def test_conv_benchmark_refuses_zero_rounds():
    pytest.importorskip("torch")
    from benchmarks import conv as bench

    with pytest.raises(SystemExit):
        bench.main(["--rounds", "0"])
