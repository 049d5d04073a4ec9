"""The GPU pass's report: one JSON from the steps' logs, and the verdict on the gpu tests.

Called by benchmarks/gpu_pass.sh at its end::

    python3 benchmarks/_gpu_pass_report.py OUTDIR SCRATCH MODE DEVICE SECONDS

reads SCRATCH/status.txt (one line per step: name, exit code or ``not_run``, seconds, timeout),
SCRATCH/gpu_tests.xml (pytest's junit report of the tests step), SCRATCH/env.log and the last
JSON line of each OUTDIR/<step>.log; writes OUTDIR/gpu_pass.json; prints a one-line summary.
Exits 3 when the gpu tests are not all passed: one failed or errored, one was skipped (a skipped
gpu test is not a passed one), or none ran. Test modules skipped whole for want of an app
package (tests/conftest.py: "... needs mido, which is not installed here") are counted apart:
they hold no gpu test (tests/engine/test_gpu_collection.py checks that in CI).
"""
from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET

MODULE_SKIP = "which is not installed here"


def read_status(path: str) -> dict:
    steps = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            name, rc, secs, limit = line.split()
            steps[name] = {"exit": None if rc == "not_run" else int(rc), "seconds": int(secs),
                           "timeout": int(limit), "timed_out": rc in ("124", "137"),
                           "not_run": rc == "not_run"}
    return steps


def last_json(path: str):
    """The last line of a log that parses as a JSON object (a benchmark's record), or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def junit_counts(path: str) -> dict:
    """Passed / failed / errors / skipped gpu tests in a junit report (and modules skipped
    whole for a missing app package, apart); ``ran`` False when there is no report."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return {"ran": False, "error": f"no junit report: {exc}"}
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "skipped_modules": 0}
    skipped = []
    for tc in root.iter("testcase"):
        kinds = {child.tag for child in tc}
        if "failure" in kinds:
            counts["failed"] += 1
        elif "error" in kinds:
            counts["errors"] += 1
        elif "skipped" in kinds:
            msg = tc.find("skipped").get("message", "")
            if MODULE_SKIP in msg:
                counts["skipped_modules"] += 1
            else:
                counts["skipped"] += 1
                skipped.append(f"{tc.get('classname')}::{tc.get('name')}: {msg}"[:200])
        else:
            counts["passed"] += 1
    return dict(counts, ran=True, skipped_tests=skipped[:20])


def tests_ok(tests: dict) -> bool:
    return bool(tests.get("ran") and tests["passed"] > 0 and tests["failed"] == 0
                and tests["errors"] == 0 and tests["skipped"] == 0)


def summarise(figures: dict) -> tuple[dict, dict]:
    """The headline figures and the issue's goals, met or not (None: not measured)."""
    summary = {}
    h512 = figures.get("lstm_h512") or {}
    for name in ("lstm_h512", "lstm_h1024"):
        for run in (figures.get(name) or {}).get("runs", []):
            summary[f"{name}_b{run['batch']}_ratio_vs_torch"] = run.get("ratio")
    fast = figures.get("lstm_fast") or {}
    if fast.get("runs"):
        run = fast["runs"][0]
        summary[f"lstm_h512_b{run['batch']}_switches_ratio_vs_torch"] = run.get("ratio")
    gen = (h512.get("sampling") or {}).get("generation")
    if gen:
        summary["sampling_ms_per_token"] = {"nnscratch": round(1e3 / gen["nnscratch_tok_s"], 4),
                                            "torch": round(1e3 / gen["torch_tok_s"], 4)}
    if figures.get("mlp"):
        summary["mlp_ratio_vs_torch"] = figures["mlp"].get("ratio")
    if figures.get("conv"):
        summary["conv_ratio_vs_torch"] = figures["conv"].get("ratio")
    if figures.get("abc_seed"):
        summary["abc_seed_val_ce_ratio"] = figures["abc_seed"].get("ce_ratio")
        summary["abc_seed_time_ratio"] = figures["abc_seed"].get("time_ratio")
    met = {}
    lstm = summary.get("lstm_h512_b64_ratio_vs_torch")
    if lstm is not None:
        met["lstm_h512_b64_le_1.25x_cudnn"] = lstm <= 1.25
        met["lstm_h512_b64_le_1.0x_cudnn_stretch"] = lstm <= 1.0
    if summary.get("mlp_ratio_vs_torch") is not None:
        met["mlp_le_1.1x_torch"] = summary["mlp_ratio_vs_torch"] <= 1.1
    lat = summary.get("sampling_ms_per_token")
    if lat:
        met["sampling_latency_below_torch"] = lat["nnscratch"] < lat["torch"]
    return summary, met


def report(out: str, scratch: str, mode: str, device: str, seconds: int) -> dict:
    steps = read_status(os.path.join(scratch, "status.txt"))
    tests = junit_counts(os.path.join(scratch, "gpu_tests.xml"))
    figures = {name: last_json(os.path.join(out, name + ".log"))
               for name in steps if name not in ("env", "tests")}
    env_log = os.path.join(scratch, "env.log")  # into the JSON only: 8 files come back at most
    env = []
    if os.path.exists(env_log):
        with open(env_log) as f:
            env = f.read().strip().splitlines()[-3:]
    summary, met = summarise(figures)
    return {"pass": "gpu_pass", "mode": mode, "device": device, "seconds": int(seconds),
            "env": env, "steps": steps, "gpu_tests": tests, "gpu_tests_ok": tests_ok(tests),
            "summary": summary, "goals_met": met, "figures": figures}


def main(argv=None) -> int:
    out, scratch, mode, device, seconds = (argv or sys.argv[1:])[:5]
    record = report(out, scratch, mode, device, int(seconds))
    with open(os.path.join(out, "gpu_pass.json"), "w") as f:
        json.dump(record, f, indent=1)
    tests = {k: v for k, v in record["gpu_tests"].items() if k != "skipped_tests"}
    print(json.dumps({"gpu_tests": tests, "summary": record["summary"],
                      "goals_met": record["goals_met"]}))
    return 0 if record["gpu_tests_ok"] else 3


if __name__ == "__main__":
    sys.exit(main())
