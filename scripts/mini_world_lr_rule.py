"""Choose the mini-world learning rate by one rule for every method (tgazsr_cli/analysis/lr_rule.py): train every
recipe of tgazsr_cli/recipes/mini-world at each learning rate of the grid (seed 0, the protocol's schedule
otherwise), evaluate all runs and the original model on the validation split of emoji-seen (600 images: other draws
of the fine-tuning classes than the test split), clean and under the protocol's PGD-10 at 2/255, and print the
gentlest rate at which TeCoA and TGA-ZSR each gain 15 robust points (the protocol rule), next to every candidate and
each method's best harmonic mean of clean and robust accuracy.

    OMP_NUM_THREADS=1 python scripts/mini_world_lr_rule.py OUT [--lrs 1e-4,3e-4,1e-3,3e-3] [--methods tecoa,fare]
        [--workers 2] [--reuse BENCH_DIR]

Writes OUT/<method>-lr<lr>/ (runs; finished ones are kept, so a re-run trains only what is missing),
OUT/eval/ (the evaluation) and OUT/lr-rule.md / lr-rule.json (every candidate and the choice). --reuse BENCH_DIR
takes BENCH_DIR/<method>-s0 (a run of scripts/mini_world_benchmark.sh) as the grid point of the learning rate it
was trained at instead of training it again. Uses only the `tgazsr` CLI.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tgazsr_cli.analysis.lr_rule import gentlest_lr, grid_run_name, lr_choices, lr_rule_markdown, original_accuracy
from tgazsr_cli.config import load_recipe
from tgazsr_cli.runtime.resources import package_path

VALIDATION = "emoji-seen"
VALIDATION_IMAGES = 600  # the whole split (the recipes' own eval section samples 500)
ANCHORS = ("tecoa", "tga-zsr")  # the protocol rule: both gain GAIN robust points over the original
GAIN = 15.0
EVAL_FLAGS = ["--eps", "2", "--steps", "10", "--step-size", "1", "--batch-size", "250", "--no-sanity",
              "--limit", str(VALIDATION_IMAGES)]


def recipe_names() -> list[str]:
    folder = package_path("recipes", "mini-world")
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("pretrain"))


def run_folder(out: Path, reuse: Path | None, method: str, lr: float) -> Path:
    """The grid point's run: a finished seed-0 benchmark run trained at this rate, else OUT/<method>-lr<lr>."""
    if reuse is not None:
        run = reuse / f"{method}-s0"
        if (run / "final.safetensors").exists():
            recipe = load_recipe(str(run / "recipe.yaml"))
            if (recipe.optim.lr, recipe.train.seed) == (lr, 0):
                return run
    return out / grid_run_name(method, lr)


def train(tgazsr: str, method: str, lr: float, folder: Path) -> str:
    if (folder / "final.safetensors").exists():
        return f"kept {folder}"
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished run starts over
    began = time.monotonic()
    log = folder.parent / f"{folder.name}.log"
    with log.open("w") as handle:
        done = subprocess.run([tgazsr, "train", "--recipe", f"mini-world/{method}", "--set", f"optim.lr={lr:g}",
                               "--set", "train.seed=0", "--output", str(folder)],
                              stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"training {method} at lr {lr:g} failed (exit {done.returncode}); see {log}")
    return f"trained {method} at lr {lr:g} in {time.monotonic() - began:.0f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--lrs", default="1e-4,3e-4,1e-3,3e-3")
    parser.add_argument("--methods", default=",".join(recipe_names()))
    parser.add_argument("--workers", type=int, default=1, help="training runs at once (one core each)")
    parser.add_argument("--reuse", type=Path, help="a benchmark folder whose <method>-s0 runs are reused")
    args = parser.parse_args()
    tgazsr = str(Path(sys.executable).with_name("tgazsr"))
    lrs = [float(v) for v in args.lrs.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    start = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    grid = [(m, lr, run_folder(args.out, args.reuse, m, lr)) for m in methods for lr in lrs]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for line in pool.map(lambda job: train(tgazsr, *job), grid):
            print(line, file=sys.stderr, flush=True)
    # the reused runs are named <method>-s0: evaluate them under their grid name through a link
    for method, lr, folder in grid:
        named = args.out / grid_run_name(method, lr)
        if folder != named and not named.exists():
            named.symlink_to(folder.resolve(), target_is_directory=True)
    checkpoints = [flag for method, lr, _ in grid
                   for flag in ("--checkpoint", str(args.out / grid_run_name(method, lr)))]
    subprocess.run([tgazsr, "eval", *checkpoints, "--original", "--datasets", VALIDATION, "--split", "val", *EVAL_FLAGS,
                    "--output", str(args.out / "eval"), "--force"], check=True)
    records = json.loads((args.out / "eval" / "results.json").read_text())
    choices = lr_choices(records, attack="pgd", dataset=VALIDATION)
    original = original_accuracy(records, attack="pgd", dataset=VALIDATION)
    chosen = gentlest_lr(choices, ANCHORS, original, GAIN)
    note = (f"the validation split of {VALIDATION} ({VALIDATION_IMAGES} images), PGD-10 at 2/255, seed 0; "
            f"{time.monotonic() - start:.0f} s for this invocation (kept runs are not retrained)")
    verdict = (f"Protocol rule: the gentlest learning rate at which {' and '.join(ANCHORS)} each gain {GAIN:g} robust "
               f"points: {f'{chosen:g}' if chosen is not None else 'none of the grid'}.")
    text = verdict + "\n\n" + lr_rule_markdown(choices, original, chosen, note)
    (args.out / "lr-rule.md").write_text(text)
    (args.out / "lr-rule.json").write_text(json.dumps(
        {"protocol_lr": chosen, "anchors": list(ANCHORS), "gain": GAIN,
         "original": {"clean": original.clean, "robust": original.robust},
         "methods": {c.method: {"best_harmonic_lr": c.best.lr,
                                "candidates": [{"lr": x.lr, "clean": x.clean, "robust": x.robust,
                                                "harmonic": x.harmonic} for x in c.candidates]}
                     for c in choices}}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
