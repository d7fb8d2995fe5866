#!/usr/bin/env bash
# The mini benchmark: fine-tune the shipped mini CLIP on fashion-mnist-a with every method of recipes/mini (one
# shared protocol: PGD-2 at 4/255, AdamW lr 1e-4, batch 64, 3 epochs; only method options differ), then evaluate
# all of them and the original model zero-shot, clean and under PGD-10 at 4/255, on the full test split of every
# shipped dataset. Uses only the `tgazsr` CLI (put the venv on PATH, e.g. PATH=.venv/bin:$PATH).
# Usage: scripts/mini_benchmark.sh [OUTPUT_DIR]
# Writes OUTPUT_DIR/<method>/ (runs), OUTPUT_DIR/eval/results.{md,json,csv} (the combined table) and
# OUTPUT_DIR/eval/tradeoff.png (the clean-vs-robust plot), and prints the total wall time.
# Finished runs (OUTPUT_DIR/<method>/final.safetensors) are kept, so a re-run only trains what is missing.
# docs/mini-benchmark.md holds the measured table; docs/mini-benchmark.png is OUTPUT_DIR/eval/tradeoff.png.
set -euo pipefail
out="${1:-mini-benchmark}"
eps="${EPS:-4}"          # L-inf radius in /255 of the evaluation attack
limit="${LIMIT:-1000}"   # examples per dataset (1000 = every test split in full)
mkdir -p "$out"
start=$(date +%s)
# every fine-tuning recipe of the mini protocol (tgazsr_cli/recipes/mini/*.yaml, pretraining excluded)
recipes_dir="$(dirname "$0")/../tgazsr_cli/recipes/mini"
mapfile -t methods < <(find "$recipes_dir" -maxdepth 1 -name '*.yaml' ! -name 'pretrain*.yaml' -printf '%f\n' \
  | sed 's/\.yaml$//' | sort)
checkpoints=()
for method in "${methods[@]}"; do
  if [ ! -f "$out/$method/final.safetensors" ]; then
    rm -rf "${out:?}/$method"
    began=$(date +%s)
    tgazsr train --recipe "mini/$method" --output "$out/$method"
    echo "trained $method in $(( $(date +%s) - began )) s" >&2
  fi
  checkpoints+=(--checkpoint "$out/$method")
done
# --original: the model the runs start from, attacked through the same logit scale as the fine-tuned rows
tgazsr eval --original "${checkpoints[@]}" \
  --datasets fashion-mnist-a,fashion-mnist-b,digits,shapes --eps "$eps" --steps 10 --step-size 1 \
  --batch-size 250 --limit "$limit" --output "$out/eval"
echo "mini benchmark finished in $(( $(date +%s) - start )) s: table $out/eval/results.md," \
  "plot $out/eval/tradeoff.png" >&2
