#!/usr/bin/env bash
# The prepared accelerator run: Cohen et al.'s base models certified at n = 100,000.
#
# Runs benchmarks/bench_resnet.py at full n (n0 = 100, n = 1e5, alpha = 0.001, sigma = 0.25)
# on a GPU or TPU host, in steps with a time cap each (about 7.5 minutes in all, at most):
#   1. ResNet-110 (CIFAR-10 shape), 4 images, full float32            cap 150 s
#   2. ResNet-50 (ImageNet shape, 224x224), 2 images, full float32    cap 190 s
#   3. both models, 2 images each, TensorFloat-32 (JAX's GPU default)  cap 100 s
# A step that hits its cap is reported and the next one runs. Results (one JSON per step, the
# logs, the device description and steps.txt with each step's exit status and seconds) go to
# $OUT if it is set, else benchmarks/results/gpu/. Set PYTHON to the interpreter of an
# environment with rpjax's dependencies and a CUDA/TPU jaxlib. BENCH_EXTRA_ARGS is appended to
# every step (BENCH_EXTRA_ARGS=--quick checks the script itself on a CPU in about a minute).
#
#   bash benchmarks/gpu_run.sh
#   OUT=/tmp/out PYTHON=.venv/bin/python bash benchmarks/gpu_run.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEST=${OUT:-benchmarks/results/gpu}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: > "$DEST/steps.txt"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"; } \
  > "$DEST/device.txt" 2>&1
cat "$DEST/device.txt"

step() {  # step CAP_SECONDS NAME ARGS...: one bench_resnet.py run under a time cap
  local cap=$1 name=$2 start=$SECONDS rc
  shift 2
  echo "== $name (cap ${cap}s)"
  timeout --kill-after=10 "$cap" "$PY" benchmarks/bench_resnet.py "$@" \
    --json "$DEST/$name.json" ${BENCH_EXTRA_ARGS:-} > "$DEST/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 124 ] && echo "   hit its ${cap}s cap"
  tail -n 12 "$DEST/$name.log"
  echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$DEST/steps.txt"
}

step 150 resnet110_float32 --models resnet110 --images 4
step 190 resnet50_float32 --models resnet50 --images 2
step 100 resnets_tf32 --models resnet110,resnet50 --images 2 --precision tensorfloat32
echo "total ${SECONDS}s; results in $DEST"
