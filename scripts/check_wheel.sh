#!/usr/bin/env bash
# What `pip install tgazsr` gives: build the wheel and sdist, install the wheel (not editable) into a fresh
# virtual environment, and from a folder outside the checkout, offline, list recipes and datasets, train the
# tiny recipe and the mini recipe (shipped weights) for a few steps and evaluate the result, read the shipped
# evaluation protocols, then run the README's Python example.
# Usage: scripts/check_wheel.sh   (TORCH="torch==... torchvision==..." picks the PyTorch pair to install)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
read -r -a torch_pair <<< "${TORCH:-torch==2.14.1 torchvision==0.29.1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

"$root/.venv/bin/python" -m build --sdist --wheel --outdir "$work/dist" "$root" > "$work/build.log" 2>&1 \
  || { tail -20 "$work/build.log"; exit 1; }
ls -l "$work"/dist
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q "${torch_pair[@]}"
"$work/venv/bin/python" -m pip install -q "$work"/dist/tgazsr-*.whl

cd "$work"  # outside the checkout: nothing can be imported from the source tree
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TGAZSR_CACHE="$work/cache" OMP_NUM_THREADS=2
tgazsr="$work/venv/bin/tgazsr"
installed="$("$work/venv/bin/python" -c 'import tgazsr_cli, pathlib; print(pathlib.Path(tgazsr_cli.__file__).parent)')"
case "$installed" in "$work/venv/"*) echo "installed package: $installed" ;;
  *) echo "error: tgazsr_cli imported from $installed, not from the wheel" >&2; exit 1 ;; esac
"$tgazsr" --version
"$tgazsr" recipes | tail -n 3
"$tgazsr" datasets | grep -E "shapes|fashion-mnist-a"
"$tgazsr" train --recipe tiny --set optim.max_steps=4 --output tiny-run
"$tgazsr" eval --checkpoint tiny-run --limit 32 --output tiny-eval
"$tgazsr" train --recipe mini/tga-zsr --set optim.max_steps=2 --set data.limit=128 --output mini-run
"$tgazsr" eval --checkpoint mini-run --original --datasets digits --limit 64 --eps 4 --steps 2 --output mini-eval
test -s tiny-eval/results.json && test -s mini-eval/results.md && ls mini-eval/clip_benchmark/*.json > /dev/null
# the protocols ship with their class-name, template and id files
"$tgazsr" protocols
"$tgazsr" protocols robustvlm --json | "$work/venv/bin/python" -c 'import json, sys; p = json.load(sys.stdin);
assert len(p["datasets"]["imagenet"]["templates"]) == 80 and p["datasets"]["imagenet"]["selection"]["mode"] == "subset"'
"$work/venv/bin/python" -c 'from tgazsr_cli.data.selection import subset_keys; assert len(subset_keys("robustbench-imagenet-5000")) == 5000' 
# the Python API from the wheel: importing it loads no torch, and the README's example runs as printed
"$work/venv/bin/python" -c 'import sys, tgazsr_cli; assert "torch" not in sys.modules; print(len(tgazsr_cli.__all__), "public names")'
"$work/venv/bin/python" - "$root/README.md" <<'PY'
import re, sys
section = open(sys.argv[1], encoding="utf-8").read().split("## Use from Python", 1)[1]
exec(re.search(r"```python\n(.*?)```", section, re.S).group(1))
PY
test -s attention.png
echo "wheel install check passed in $(( $(date +%s) - start )) s"
