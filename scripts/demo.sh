#!/usr/bin/env bash
# The built-in main job, offline on a laptop CPU (a few minutes on 2 cores), on the mini world, a scale model of
# the paper's protocol (docs/mini-world.md): TGA-ZSR fine-tuning of the shipped mini-world CLIP on emoji-seen
# (200 classes, the Tiny-ImageNet role; recipes/mini-world/tga-zsr.yaml: PGD-2 at 2/255, AdamW lr 1e-3,
# 6 epochs), zero-shot evaluation next to the original model under PGD-10 at 2/255 on the fine-tuning classes,
# 300 classes never fine-tuned on, the line-drawing rendering of all 500 and four older sets (300 seeded examples
# each), adversarial examples, and an attention panel of the example whose original-model attention the attack
# moves most while the fine-tuned model's moves least. Usage: scripts/demo.sh [OUTPUT_DIR]
set -euo pipefail
out="${1:-demo-output}"
if [ -e "$out" ]; then
  if [ -f "$out/.tgazsr-demo" ]; then rm -rf "$out"; else
    echo "error: $out exists and is not a previous demo output; choose another folder" >&2; exit 2; fi
fi
mkdir -p "$out" && touch "$out/.tgazsr-demo"
start=$(date +%s)
# Each command picks torch's CPU threads from the cores free of other work and prints the count (README, "CPU
# threads"): on a busy 2-core laptop that is 1, where torch's default of 2 ran 10x slower. OMP_NUM_THREADS or
# --threads N, when given, decide instead.
threat=(--eps 2 --steps 10 --step-size 1)
tgazsr train --recipe mini-world/tga-zsr --output "$out/tga-zsr"
# the run's recipe names the evaluation sets and the attack (eval: section); --limit keeps the demo short
tgazsr eval --checkpoint "$out/tga-zsr" --original --limit 300 --output "$out/eval"
tgazsr attack --checkpoint "$out/tga-zsr" --dataset emoji-seen -n 8 "${threat[@]}" --output "$out/adversarial"
tgazsr visualize-attention --checkpoint "$out/tga-zsr" --dataset emoji-seen --pick-from 48 "${threat[@]}" \
  --output "$out/attention.png"
echo "demo finished in $(( $(date +%s) - start )) s: table $out/eval/results.md, plot $out/eval/tradeoff.png," \
  "adversarial examples $out/adversarial/, attention panel $out/attention.png" >&2
