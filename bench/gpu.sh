#!/usr/bin/env bash
# The GPU benchmarks on one CUDA GPU (about 5 minutes on an H200); output also in a file.
#   bash bench/gpu.sh [RESULT_FILE]        (default bench/results-gpu.txt)
# Set PYTHON to choose the interpreter (default .venv/bin/python, else python). Needs nothing outside the
# repository and its environment: random ViT-B-32 weights, the shipped mini CLIP and shipped data.
# Each step has a time limit, so one slow step (torch.compile) cannot use up the others' time.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
OUT=${1:-bench/results-gpu.txt}
run() { local limit=$1; shift; echo "\$ $*"; timeout "$limit" "$@" || echo "(exit status $?; 124 = over ${limit}s)"; echo; }
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  echo
  # issue 16: train images/s, peak memory, syncs/step and MFU (TGA-ZSR, TeCoA); PGD-100 rates; bf16-vs-fp32
  # robust accuracy; the 16-dataset suite projection; the decoded cache's device transform
  run 150 "$PY" bench/gpu_suite.py --device cuda
  run 180 "$PY" bench/gpu_suite.py --device cuda --sections compile   # train.compile default and reduce-overhead (CUDA graphs)
  # ours vs the reference pattern and torchattacks (issue 7), shortened to fit
  run 45 "$PY" bench/train_step.py --device cuda --batch 128 --precision bf16 --classes 200 --warmup 1 --steps 3
  run 30 "$PY" bench/pgd_eval.py --device cuda --batch 256 --classes 200 --steps 100 --repeats 1 --precision bf16
} 2>&1 | tee "$OUT"
