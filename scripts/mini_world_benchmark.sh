#!/usr/bin/env bash
# The mini-world benchmark: fine-tune the shipped mini-world CLIP on emoji-seen (200 colour-emoji classes, the
# Tiny-ImageNet role) with each method of recipes/mini-world (one shared protocol; only method options differ),
# then evaluate every run and the original model zero-shot, clean and under PGD-10, on the fine-tuning classes
# (emoji-seen test: other draws of the same glyphs), the 300 classes never fine-tuned on (emoji-unseen), the other
# rendering of every class (symbola), and fashion-mnist-a/b, digits, shapes. Uses only the `tgazsr` CLI.
# Usage: [METHODS="tga-zsr tecoa"] [SEEDS="0 1 2"] [LIMIT=500] scripts/mini_world_benchmark.sh [OUTPUT_DIR]
# Writes OUTPUT_DIR/<method>-s<seed>/ (runs), OUTPUT_DIR/eval/results.{md,json,csv} + tradeoff.png, and
# OUTPUT_DIR/eval/seeds.{md,png} (scripts/seed_table.py: mean ± sd over seeds, ranking, error bars).
# Finished runs are kept, so a re-run only trains what is missing. docs/mini-world.md holds measured numbers;
# scripts/mini_world_lr_rule.py chose the recipes' learning rate on the validation split.
set -euo pipefail
out="${1:-mini-world-benchmark}"
eps="${EPS:-2}"     # L-inf radius in /255 of the evaluation attack (the protocol's)
limit="${LIMIT:-500}"      # examples per dataset (seeded subset)
# default: every fine-tuning recipe of tgazsr_cli/recipes/mini-world (pretraining excluded), LoRA row included
recipes_dir="$(dirname "$0")/../tgazsr_cli/recipes/mini-world"
read -r -a methods <<< "${METHODS:-$(find "$recipes_dir" -maxdepth 1 -name '*.yaml' ! -name 'pretrain*.yaml' \
  -printf '%f\n' | sed 's/\.yaml$//' | sort | tr '\n' ' ')}"
read -r -a seeds <<< "${SEEDS:-0}"
datasets=emoji-seen,emoji-unseen,symbola,fashion-mnist-a,fashion-mnist-b,digits,shapes
mkdir -p "$out"
start=$(date +%s)
checkpoints=()
for seed in "${seeds[@]}"; do
  for method in "${methods[@]}"; do
    run="$out/$method-s$seed"
    if [ ! -f "$run/final.safetensors" ]; then
      rm -rf "${run:?}"
      began=$(date +%s)
      tgazsr train --recipe "mini-world/$method" --set "train.seed=$seed" --output "$run"
      echo "trained $method (seed $seed) in $(( $(date +%s) - began )) s" >&2
    fi
    checkpoints+=(--checkpoint "$run")
  done
done
# --original: the model the runs started from, with the recipe's logit scale, as a row of the same table
tgazsr eval "${checkpoints[@]}" --original --datasets "$datasets" --eps "$eps" --steps 10 --step-size 1 \
  --batch-size 250 --limit "$limit" --output "$out/eval"
# mean ± sd over seeds, the ranking and the trade-off plot with error bars, by the Python tgazsr runs on
python_of_tgazsr="$(head -n 1 "$(command -v tgazsr)" | sed 's/^#!//')"
"$python_of_tgazsr" "$(dirname "$0")/seed_table.py" "$out/eval/results.json" > /dev/null
echo "mini-world benchmark finished in $(( $(date +%s) - start )) s: tables $out/eval/results.md and" \
  "$out/eval/seeds.md, plot $out/eval/seeds.png" >&2
