#!/usr/bin/env bash
# The GPU pass of issue 9 in one command, for a machine with an NVIDIA GPU, CuPy and a CUDA
# build of PyTorch already installed (the lent H100/H200 machines ship both):
#
#     bash benchmarks/gpu_pass.sh [OUT_DIR]          # default OUT_DIR: runs/gpu_pass
#
# 1. the whole test suite with NNSCRATCH_DEVICE=gpu (the gpu-marked tests included; a skipped
#    gpu test is a failure here, since CuPy must be present);
# 2. every benchmark with --device gpu against PyTorch/cuDNN on the same GPU: the LSTM step at
#    hidden 512 and 1024 (batch 64 and 256, sequence 256) with per-token sampling, the MLP and
#    Conv2D steps, and the ABC model's seed preset trained for a fixed number of steps by both
#    engines (validation cross-entropy at equal steps).
# Every script's output goes to OUT_DIR/<name>.log; its last line is the JSON record that
# docs/benchmarks.md is filled from. The script does not stop at the first failure: it reports
# every step's exit code at the end and fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_pass}
mkdir -p "$out"
python -c "import cupy, torch; assert torch.cuda.is_available(); print('cupy', cupy.__version__, \
'torch', torch.__version__, cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())" \
  | tee "$out/versions.log" || { echo "gpu_pass: CuPy or CUDA PyTorch missing" >&2; exit 1; }
pip install --quiet --no-deps -e . >/dev/null 2>&1 || true   # importable as nnscratch

failed=()
step() {  # step NAME COMMAND...: run, log, remember failures
  local name=$1; shift
  echo "== $name: $*"
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n 3 "$out/$name.log"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

export NNSCRATCH_DEVICE=gpu
step tests python -m pytest -q -m "not slow" -rs
if grep -q "SKIPPED.*gpu\|SKIPPED.*cupy\|SKIPPED.*CUDA" "$out/tests.log"; then
  failed+=("tests (gpu tests skipped although a GPU is present)")
fi
step lstm_h512 python benchmarks/lstm.py --device gpu --hidden 512
step lstm_h1024 python benchmarks/lstm.py --device gpu --hidden 1024
step mlp python benchmarks/mlp.py --device gpu
step conv python benchmarks/conv.py --device gpu
step abc_seed python benchmarks/abc_reference_torch.py --device gpu --preset seed --steps 2000

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'gpu_pass: failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "gpu_pass: all steps passed; logs in $out/"
