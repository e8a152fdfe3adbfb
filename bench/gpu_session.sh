#!/usr/bin/env bash
# Everything a lent GPU machine is for, in one command (its time is short and each start costs minutes):
# the JAX check, `wanderlens finetune` on the GPU under JAX, then the PyTorch check.
#
#     bash bench/gpu_session.sh [STEPS]      # STEPS: gpu_check's steps for both backends, default 1,2,3,4
#
# Run from the repository root there, with the wheels in .whl/ and holidays-dev reachable as shared/datasets/
# (bench/README.md, "gpu_check"). Each step has its own time limit, so one that hangs cannot eat the others';
# each writes its whole log to $OUT (or gpu-logs/) and prints its last lines.
set -u
steps=${1:-1,2,3,4}
out=${OUT:-gpu-logs}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1

step() {
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s)"
    local started=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "--- $name: exit $?, $((SECONDS - started)) s; last lines:"
    tail -n 30 "$out/$name.log"
}

manifest=shared/datasets/holidays-dev/manifest.csv
KERAS_BACKEND=jax step jax-check 200 python3 -m bench.gpu_check --steps "$steps"
if [[ -f $manifest ]]; then
    KERAS_BACKEND=jax step jax-finetune 140 python3 -m wanderlens.cli finetune \
        --manifest "$manifest" --output "$(mktemp -d)/tuned.keras" --seed 0 --no-progress
else
    echo "=== jax-finetune skipped: $manifest is not there (carry shared/datasets/holidays-dev)"
fi
KERAS_BACKEND=torch step torch-check 200 python3 -m bench.gpu_check --steps "$steps"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
