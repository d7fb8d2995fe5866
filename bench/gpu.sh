#!/usr/bin/env bash
# Both benchmarks on one CUDA GPU at the paper's batch size (128, bf16 training); output also in a file.
#   bash bench/gpu.sh [RESULT_FILE]        (default bench/results-gpu.txt)
# Set PYTHON to choose the interpreter (default .venv/bin/python, else python).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
OUT=${1:-bench/results-gpu.txt}
run() { echo "\$ $*"; "$@" || echo "(exit status $?)"; echo; }
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  echo
  run "$PY" bench/train_step.py --device cuda --batch 128 --precision bf16 --classes 200 10 --warmup 2 --steps 5
  run "$PY" bench/train_step.py --device cuda --batch 128 --precision bf16 --classes 200 --warmup 2 --steps 5 \
    --grad-checkpointing
  run "$PY" bench/pgd_eval.py --device cuda --batch 128 --classes 200 --steps 100 --repeats 2
  run "$PY" bench/pgd_eval.py --device cuda --batch 256 --classes 200 --steps 100 --repeats 2 --precision bf16
} 2>&1 | tee "$OUT"
