#!/usr/bin/env bash
# The GPU pass (issue 14): every gpu test and every GPU figure in one command that fits one
# short device window (a lent H100/H200: no network, at most 10 minutes a command, only the
# output folder named at the start comes back, and at most 8 files from it).
#
#   bash benchmarks/gpu_pass.sh --prepare           # HERE, before: data into .gpu_data/
#   bash benchmarks/gpu_pass.sh OUTDIR              # THERE: run with carry [".gpu_data"]
#   bash benchmarks/gpu_pass.sh --rehearse OUTDIR   # the same steps on the CPU, tiny sizes (CI)
#
# With the device tool: run(command="bash benchmarks/gpu_pass.sh $OUT", carry=[".gpu_data"],
# timeout_s=600). It uses the machine's own python3 (CuPy, CUDA PyTorch, numpy, scipy, numba,
# pytest, hypothesis; no mido, soundfile, music21 or librosa) and installs nothing: nnscratch is
# imported from this checkout (PYTHONPATH).
#
# Steps, each under its own `timeout`, the whole pass under 8 minutes (a step that would start
# with too little time left is not run, and says so):
#   env         versions and the device
#   tests       every gpu-marked test with NNSCRATCH_DEVICE=gpu (the GPU really selected); the
#               step fails when a gpu test fails, is skipped, or none ran
#   lstm_h512   the ABC model's LSTM training step at hidden 512, batch 64 and 256, sequence
#               256, nnscratch against cuDNN, and per-token sampling latency
#   lstm_h1024  the same at hidden 1024
#   lstm_fast   hidden 512, batch 64, with the speed switches on (CUDA graphs, fused xent)
#   mlp         the MLP training step;   conv   Conv2D forward and backward
#   abc_seed    the ABC model's `seed` preset trained a few hundred steps by both engines
# Each step's log goes to OUTDIR/<step>.log (its last line is the benchmark's JSON; env's goes
# into the JSON: 8 files at most come back) and every figure into OUTDIR/gpu_pass.json; the pass
# goes on after a failed step and fails at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
data=$root/.gpu_data

prepare() {  # prepare DEST: the ABC data, and mido (imported by the ABC app's modules)
  local dest=$1 tunes=${2:-}
  mkdir -p "$dest/site"
  PYTHONPATH=$root python3 - "$dest" "$tunes" <<'EOF' || return 1
import os, shutil, sys, tempfile
import mido
from apps.abc_tunes.data import default_data_path, prepare
dest, tunes = sys.argv[1], sys.argv[2]
src = default_data_path()
if tunes:  # the rehearsal: the first N tunes only
    with open(src, encoding="utf-8") as f:
        head = [next(f) for _ in range(int(tunes))]
    src = os.path.join(tempfile.mkdtemp(), "tunes.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        f.writelines(head)
prepare(src, os.path.join(dest, "abc"), print)
site = os.path.join(dest, "site", "mido")
shutil.rmtree(site, ignore_errors=True)
shutil.copytree(os.path.dirname(mido.__file__), site,
                ignore=shutil.ignore_patterns("__pycache__"))
print(f"mido copied into {site} (pure Python; the GPU machines lack it)")
EOF
}

mode=gpu
case "${1:-}" in
  --prepare)
    prepare "$data" && echo "gpu_pass: data ready in $data (ignored by git; carry it)"
    exit $? ;;
  --rehearse) mode=rehearse; shift ;;
  -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
esac
out=${1:?usage: gpu_pass.sh [--rehearse] OUTDIR | --prepare}
mkdir -p "$out" && out=$(cd "$out" && pwd)
scratch=$(mktemp -d)
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

budget=${GPU_PASS_BUDGET:-480}  # seconds for the whole pass (override: tests only)
start=$SECONDS
failed=()
declare -A status

step() {  # step NAME SECONDS COMMAND...: run with a timeout, log into ${logs:-OUTDIR}/NAME.log
  local name=$1 limit=$2; shift 2
  local dir=${logs:-$out}
  local left=$((budget - (SECONDS - start)))
  if [ "$left" -lt "$limit" ]; then limit=$((left - 5)); fi
  if [ "$limit" -lt 10 ]; then
    echo "== $name: not run, ${left}s of the pass left" | tee "$dir/$name.log"
    status[$name]="not_run 0 0"; failed+=("$name (not run: out of time)"); return
  fi
  echo "== $name (timeout ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$dir/$name.log" 2>&1
  local rc=$?
  status[$name]="$rc $((SECONDS - t0)) $limit"
  tail -n 2 "$dir/$name.log" | cut -c1-200
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then failed+=("$name (timed out after ${limit}s)")
  elif [ "$rc" -ne 0 ]; then failed+=("$name (exit $rc)"); fi
}

if [ "$mode" = gpu ]; then
  dev=gpu
  [ -d "$data/abc" ] || echo "gpu_pass: $data/abc missing: run 'bash benchmarks/gpu_pass.sh --prepare' here first and carry .gpu_data" >&2
  logs=$scratch step env 30 python3 -c "import cupy, torch, numpy, nnscratch; from nnscratch import backend; \
assert torch.cuda.is_available(), 'torch sees no GPU'; backend.set_device('gpu'); \
print(dict(backend.describe(), torch=torch.__version__, cuda=torch.version.cuda))"
  step tests 150 env NNSCRATCH_DEVICE=gpu python3 -m pytest -q -m gpu tests -p no:cacheprovider \
    -rs --junitxml="$scratch/gpu_tests.xml"
  bench_lstm=(--device gpu --repeats 5)
  step lstm_h512 70 python3 benchmarks/lstm.py "${bench_lstm[@]}" --hidden 512
  step lstm_h1024 60 python3 benchmarks/lstm.py "${bench_lstm[@]}" --hidden 1024
  step lstm_fast 35 env NNSCRATCH_CUDA_GRAPH=1 NNSCRATCH_FUSED_XENT=1 \
    python3 benchmarks/lstm.py "${bench_lstm[@]}" --hidden 512 --batch 64
  step mlp 25 python3 benchmarks/mlp.py --device gpu
  step conv 35 python3 benchmarks/conv.py --device gpu
  step abc_seed 75 env PYTHONPATH="$data/site:$PYTHONPATH" python3 \
    benchmarks/abc_reference_torch.py --device gpu --preset seed --steps 300 --eval-every 150 \
    --data-dir "$data/abc"
else
  dev=cpu
  logs=$scratch step env 30 python3 -c "import torch, numpy, nnscratch; from nnscratch import backend; \
print(dict(backend.describe(), torch=torch.__version__))"
  # the CPU has no gpu tests to run: a small real selection proves the running and the check
  step tests 60 python3 -m pytest -q tests/engine/test_backend.py -m "not gpu" \
    -p no:cacheprovider -rs --junitxml="$scratch/gpu_tests.xml"
  tiny=(--device cpu --quick --batch 2 --seq 8 --repeats 1 --no-memory)
  step lstm_h512 60 python3 benchmarks/lstm.py "${tiny[@]}" --hidden 16
  step lstm_h1024 60 python3 benchmarks/lstm.py "${tiny[@]}" --hidden 24
  step lstm_fast 60 env NNSCRATCH_CUDA_GRAPH=1 NNSCRATCH_FUSED_XENT=1 \
    python3 benchmarks/lstm.py "${tiny[@]}" --hidden 16
  step mlp 60 python3 benchmarks/mlp.py --device cpu --quick --batch 8 --repeats 3
  step conv 60 python3 benchmarks/conv.py --device cpu --quick --repeats 1
  prepare "$scratch/data" 60 >"$scratch/prepare.log" 2>&1 || failed+=("prepare (see below)")
  step abc_seed 60 env PYTHONPATH="$scratch/data/site:$PYTHONPATH" python3 \
    benchmarks/abc_reference_torch.py --device cpu --preset cpu --quick --steps 2 \
    --eval-every 2 --data-dir "$scratch/data/abc"
fi

# One JSON with every figure, the steps' outcomes and the gpu tests' counts
for name in "${!status[@]}"; do echo "$name ${status[$name]}"; done >"$scratch/status.txt"
python3 benchmarks/_gpu_pass_report.py "$out" "$scratch" "$mode" "$dev" "$((SECONDS - start))"
combined=$?
[ "$combined" -eq 0 ] || failed+=("tests check (a gpu test failed, was skipped, or none ran: see gpu_pass.json)")
if [ "$mode" = rehearse ] && [ -f "$scratch/prepare.log" ]; then cat "$scratch/prepare.log"; fi
rm -rf "$scratch"
n_files=$(find "$out" -type f | wc -l)
[ "$n_files" -le 8 ] || echo "gpu_pass: warning: $n_files files in $out, only 8 come back" >&2
echo "gpu_pass: $mode pass on the $dev took $((SECONDS - start)) s; logs and gpu_pass.json in $out"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'gpu_pass: failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "gpu_pass: all steps passed"
