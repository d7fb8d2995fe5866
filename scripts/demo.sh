#!/usr/bin/env bash
# The built-in main job, offline on a laptop CPU (about 3 minutes on 2 cores): TGA-ZSR fine-tuning of the
# shipped mini CLIP on fashion-mnist-a with the mini protocol (recipes/mini/tga-zsr.yaml: PGD-2 at 4/255, AdamW
# lr 1e-4, batch 64, 3 epochs), zero-shot evaluation against the original model on all shipped datasets under
# PGD-10 at 4/255, adversarial examples, and an attention panel. Usage: scripts/demo.sh [OUTPUT_DIR]
# The design of the protocol and the benchmark of every method: docs/mini-benchmark.md.
set -euo pipefail
out="${1:-demo-output}"
if [ -e "$out" ]; then
  if [ -f "$out/.tgazsr-demo" ]; then rm -rf "$out"; else
    echo "error: $out exists and is not a previous demo output; choose another folder" >&2; exit 2; fi
fi
mkdir -p "$out" && touch "$out/.tgazsr-demo"
start=$(date +%s)
eps=4
tgazsr train --recipe mini/tga-zsr --output "$out/tga-zsr"
tgazsr eval --checkpoint "$out/tga-zsr" --original \
  --datasets fashion-mnist-a,fashion-mnist-b,digits,shapes --limit 500 \
  --eps "$eps" --steps 10 --step-size 1 --batch-size 250 --output "$out/eval"
tgazsr attack --checkpoint "$out/tga-zsr" --dataset fashion-mnist-a -n 8 --eps "$eps" --steps 10 --step-size 1 \
  --output "$out/adversarial"
tgazsr visualize-attention --checkpoint "$out/tga-zsr" --dataset fashion-mnist-a --index 7 \
  --eps "$eps" --steps 10 --step-size 1 --output "$out/attention.png"
echo "demo finished in $(( $(date +%s) - start )) s: table $out/eval/results.md, plot $out/eval/tradeoff.png," \
  "adversarial examples $out/adversarial/, attention panel $out/attention.png" >&2
