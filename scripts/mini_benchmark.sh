#!/usr/bin/env bash
# The mini benchmark: fine-tune the shipped mini CLIP on fashion-mnist-a with every method, then evaluate all of
# them (and the original model) zero-shot, clean and under PGD-10 at 4/255, on every shipped dataset.
# Usage: scripts/mini_benchmark.sh [OUTPUT_DIR]   (writes OUTPUT_DIR/eval/results.{json,md} and tradeoff.png)
set -euo pipefail
out="${1:-mini-benchmark}"
mkdir -p "$out"
methods=(tga-zsr tecoa ft-clean ft-adv pmg-aft fare vision-tga comp-tga)
checkpoints=()
for method in "${methods[@]}"; do
  if [ ! -f "$out/$method/final.safetensors" ]; then
    rm -rf "$out/$method"
    tgazsr train --recipe "mini/$method" --output "$out/$method"
  fi
  checkpoints+=(--checkpoint "$out/$method")
done
tgazsr eval "${checkpoints[@]}" --model tgazsr-mini --pretrained tgazsr:mini-clip \
  --datasets fashion-mnist-a,fashion-mnist-b,digits,shapes --eps 4 --steps 10 --step-size 1 \
  --batch-size 250 --limit 1000 --output "$out/eval"
