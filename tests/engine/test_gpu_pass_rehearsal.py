"""benchmarks/gpu_pass.sh, proven on the CPU: its rehearsal runs every step of the GPU pass with
tiny sizes (about a minute on 2 cores), and its report's verdict on the gpu tests is checked on
made-up junit reports (a skipped or failed gpu test, or none, fails the pass)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from benchmarks import _gpu_pass_report as report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_pass.sh")
STEPS = {"env", "tests", "lstm_h512", "lstm_h1024", "lstm_fast", "mlp", "conv", "abc_seed"}
BENCH = {"lstm_h512": "lstm_train_step", "lstm_h1024": "lstm_train_step",
         "lstm_fast": "lstm_train_step", "mlp": "mlp_train_step", "conv": "conv2d_fwd_bwd",
         "abc_seed": "abc_lstm_vs_torch"}


def _run(args, env_extra=None, timeout=400):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env.pop("NNSCRATCH_DEVICE", None)
    env.update(env_extra or {})
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("timeout") is None, reason="coreutils' timeout is missing")
def test_rehearsal_runs_every_step_and_writes_the_json(tmp_path):
    out = tmp_path / "out"
    res = _run(["--rehearse", str(out)])
    log = res.stdout[-3000:] + res.stderr[-3000:]
    assert res.returncode == 0, log
    assert "gpu_pass: all steps passed" in res.stdout, log
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files  # what comes back from the device machine
    assert set(files) == {f"{s}.log" for s in STEPS - {"env"}} | {"gpu_pass.json"}, files
    record = json.loads((out / "gpu_pass.json").read_text())
    assert record["mode"] == "rehearse" and record["device"] == "cpu"
    assert set(record["steps"]) == STEPS
    for name, st in record["steps"].items():
        assert st["exit"] == 0 and not st["timed_out"] and st["seconds"] <= st["timeout"], name
    assert record["gpu_tests_ok"] and record["gpu_tests"]["passed"] > 0
    assert record["env"] and "'device': 'cpu'" in record["env"][-1]
    for name, bench in BENCH.items():
        fig = record["figures"][name]
        assert fig and fig["bench"] == bench and fig["device"] == "cpu", name
    assert record["figures"]["lstm_fast"]["config"].startswith("vocab 95")
    summary = record["summary"]
    for key in ("lstm_h512_b2_ratio_vs_torch", "lstm_h1024_b2_ratio_vs_torch",
                "sampling_ms_per_token", "mlp_ratio_vs_torch", "abc_seed_val_ce_ratio"):
        assert summary.get(key) is not None, key
    assert record["seconds"] < 480


def test_a_pass_out_of_time_runs_nothing_more_and_fails(tmp_path):
    res = _run([str(tmp_path / "out")], {"GPU_PASS_BUDGET": "12"}, timeout=120)
    assert res.returncode != 0
    assert "not run" in res.stdout and "out of time" in res.stderr
    record = json.loads((tmp_path / "out" / "gpu_pass.json").read_text())
    assert all(st["not_run"] for st in record["steps"].values())
    assert not record["gpu_tests_ok"]


def test_help_explains_the_modes():
    res = _run(["--help"], timeout=30)
    assert res.returncode == 0 and "--rehearse" in res.stdout and "--prepare" in res.stdout


# ----------------------------------------------------------------------------------------------
# The verdict on the gpu tests
# ----------------------------------------------------------------------------------------------
def _junit(tmp_path, cases):
    body = []
    for name, kind, msg in cases:
        inner = "" if kind == "passed" else f'<{kind} message="{msg}"/>'
        body.append(f'<testcase classname="tests.engine.test_x" name="{name}">{inner}</testcase>')
    path = tmp_path / "gpu_tests.xml"
    path.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest">'
                    + "".join(body) + "</testsuite></testsuites>")
    return str(path)


@pytest.mark.parametrize("cases, ok", [
    ([("a", "passed", ""), ("b", "passed", "")], True),
    ([("a", "passed", ""), ("m", "skipped", "test_midi.py needs mido, which is not installed "
                                            "here")], True),
    ([("a", "passed", ""), ("b", "skipped", "no CUDA device")], False),
    ([("a", "passed", ""), ("b", "failure", "assert")], False),
    ([("a", "passed", ""), ("b", "error", "fixture")], False),
    ([("m", "skipped", "test_midi.py needs mido, which is not installed here")], False),
    ([], False),
])
def test_the_gpu_tests_verdict(tmp_path, cases, ok):
    counts = report.junit_counts(_junit(tmp_path, cases))
    assert report.tests_ok(counts) is ok, counts


def test_no_junit_report_is_a_failure(tmp_path):
    counts = report.junit_counts(str(tmp_path / "missing.xml"))
    assert not counts["ran"] and not report.tests_ok(counts)


def test_summary_and_goals_from_benchmark_records():
    figures = {
        "lstm_h512": {"runs": [{"batch": 64, "ratio": 1.2}, {"batch": 256, "ratio": 0.9}],
                      "sampling": {"generation": {"nnscratch_tok_s": 2000.0,
                                                  "torch_tok_s": 1000.0}}},
        "mlp": {"ratio": 1.3},
    }
    summary, met = report.summarise(figures)
    assert summary["lstm_h512_b256_ratio_vs_torch"] == 0.9
    assert summary["sampling_ms_per_token"] == {"nnscratch": 0.5, "torch": 1.0}
    assert met == {"lstm_h512_b64_le_1.25x_cudnn": True,
                   "lstm_h512_b64_le_1.0x_cudnn_stretch": False,
                   "mlp_le_1.1x_torch": False, "sampling_latency_below_torch": True}
