#!/usr/bin/env bash
# Issue 23 on the mini-world protocol (docs/mini-world.md, "Shallow layers, test-time defence, calibration"):
#  shallow  TGA-ZSR and TeCoA fine-tuning only the first K blocks (`train.trainable: first-K`, K = 1, 2; recipes
#           mini-world/{tga-zsr,tecoa}-first{1,2}) next to full fine-tuning, seeds 0 1 2: 18 trainings, then one
#           evaluation of all 18 runs plus --original on the 7 sets, 300 examples, PGD-10 at 2/255
#           (scripts/mini_world_benchmark.sh; its seeds.md holds the mean ± sd table);
#  ttc      TTC (docs/defences.md) in front of the original mini-world CLIP and the three full TGA-ZSR runs on
#           emoji-seen and emoji-unseen: non-adaptive and adaptive views, PGD-10 at 2/255, 300 examples, EOT with
#           EOT_SAMPLES draws (default 5 here, the project's default is 20: a cost reduction);
#  tables   OUT/ece.md (clean / robust ECE, mean ± sd over seeds, from the shallow evaluation's records) and
#           OUT/ttc.md (TTC per dataset, mean ± sd over seeds, with the undefended numbers of the same examples).
# Usage: [STAGES="shallow ttc tables"] [EOT_SAMPLES=5] scripts/mini_world_shallow_ttc.sh [OUT]
# Every stage keeps what is finished (trained runs, an evaluation folder with results.json), so stages can run
# side by side (e.g. STAGES=ttc-s0 once shallow/tga-zsr-s0 is trained) and a re-run only does what is missing.
# Wall times of each stage go to OUT/times.txt.
set -euo pipefail
out="${1:-mw23}"
here="$(dirname "$0")"
stages=" ${STAGES:-shallow ttc tables} "
eot="${EOT_SAMPLES:-5}"
mkdir -p "$out"
timed() {  # timed LABEL COMMAND...: run it, append "LABEL START END SECONDS" to OUT/times.txt
  local label="$1" began ended
  shift
  began=$(date +%s)
  "$@"
  ended=$(date +%s)
  echo "$label $began $ended $(( ended - began ))" >> "$out/times.txt"
}
if [[ "$stages" == *" shallow "* ]]; then
  METHODS="tga-zsr tecoa tga-zsr-first1 tga-zsr-first2 tecoa-first1 tecoa-first2" SEEDS="0 1 2" LIMIT=300 \
    timed shallow "$here/mini_world_benchmark.sh" "$out/shallow"
fi
ttc_eval() {  # ttc_eval SEED [--original]: TTC on shallow/tga-zsr-sSEED (and the original) -> OUT/ttc-sSEED
  local seed="$1"
  shift
  [ -f "$out/ttc-s$seed/results.json" ] && return 0
  timed "ttc-s$seed" tgazsr eval --checkpoint "$out/shallow/tga-zsr-s$seed" "$@" \
    --datasets emoji-seen,emoji-unseen --defence ttc --eot-samples "$eot" \
    --eps 2 --steps 10 --step-size 1 --batch-size 250 --limit 300 --output "$out/ttc-s$seed"
}
for seed in 0 1 2; do
  if [[ "$stages" == *" ttc "* || "$stages" == *" ttc-s$seed "* ]]; then
    if [ "$seed" = 0 ]; then ttc_eval 0 --original; else ttc_eval "$seed"; fi
  fi
done
if [[ "$stages" == *" tables "* ]]; then
  python_of_tgazsr="$(head -n 1 "$(command -v tgazsr)" | sed 's/^#!//')"
  "$python_of_tgazsr" - "$out" "$eot" <<'EOF'
import json
import sys
from pathlib import Path

from tgazsr_cli.analysis.seeds import cell, group_name

out, eot = Path(sys.argv[1]), sys.argv[2]


def grouped(records, value):
    """group -> dataset -> Cell over seeds, plus "average" (the per-run average over datasets, over seeds)."""
    runs = {}
    for r in records:
        runs.setdefault(group_name(r["model"]), {}).setdefault(r["model"], {})[r["dataset"]] = value(r)
    table = {}
    for group, members in runs.items():
        datasets = list(dict.fromkeys(d for m in members.values() for d in m))
        row = {d: cell([m[d] for m in members.values() if d in m]) for d in datasets}
        row["average"] = cell([sum(m.values()) / len(m) for m in members.values()])
        table[group] = row
    return table


shallow = out / "shallow/eval/results.json"
if shallow.exists():
    records = [r for r in json.loads(shallow.read_text()) if r["attack"] == "pgd"]
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    lines = []
    for key, title in (("clean_ece", "Clean ECE"), ("robust_ece", "Robust ECE (PGD-10, 2/255)")):
        table = grouped(records, lambda r, key=key: r[key])
        lines += [f"**{title} (%), mean ± sd over training seeds; lower is better calibrated**", "",
                  "| model | " + " | ".join([*datasets, "average"]) + " |", "|---|" + "---:|" * (len(datasets) + 1)]
        lines += [f"| {g} | " + " | ".join(row[c].text() for c in [*datasets, "average"]) + " |"
                  for g, row in table.items()]
        lines.append("")
    (out / "ece.md").write_text("\n".join(lines))
    print("\n".join(lines))
ttc = [r for p in sorted(out.glob("ttc-s*/results.json")) for r in json.loads(p.read_text())]
if ttc and shallow.exists():
    plain = [dict(r, attack_view="no defence") for r in json.loads(shallow.read_text())
             if r["attack"] == "pgd" and r["dataset"] in {"emoji-seen", "emoji-unseen"}
             and group_name(r["model"]) in {group_name(t["model"]) for t in ttc}]
    datasets = ["emoji-seen", "emoji-unseen"]
    lines = [f"**TTC on emoji-seen / emoji-unseen: clean and robust accuracy (%), PGD-10 at 2/255, 300 examples; "
             f"adaptive = PGD through TTC (BPDA) with EOT over {eot} draws; mean ± sd over training seeds**", "",
             "| model | view | seeds | " + " | ".join(f"{d} clean | {d} robust" for d in datasets) + " |",
             "|---|---|---:|" + "---:|---:|" * len(datasets)]
    for view in ("no defence", "non-adaptive", "adaptive"):
        chosen = [r for r in plain + ttc if r.get("attack_view") == view]
        clean = grouped(chosen, lambda r: r["clean_accuracy"])
        robust = grouped(chosen, lambda r: r["robust_accuracy"])
        for g in clean:
            label = g if view == "no defence" else f"{g} + ttc"
            cells = [f"{clean[g][d].text()} | {robust[g][d].text()}" for d in datasets]
            lines.append(f"| {label} | {view} | {clean[g][datasets[0]].n} | " + " | ".join(cells) + " |")
    (out / "ttc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
EOF
fi
