"""Memory and speed of LoRA (train.trainable=lora) against full fine-tuning of the image tower, side by side.

Each variant runs one training method's real `Trainer.train_step` (attack + loss + optimiser update) in
its own subprocess, on the same random weights and batch, so its peak memory is its own. Reported per
variant: seconds per step, trainable parameters, the bytes of trainable parameters + their gradients +
optimiser state (counted tensor by tensor after a step), and peak memory above the post-setup baseline
(RSS high-water mark, reset after setup, on the CPU; `torch.cuda.max_memory_allocated` on CUDA). Then the
ratios.

    python bench/lora.py                                        # ViT-B-32, batch 8, 224 px, tga-zsr, CPU
    python bench/lora.py --model tgazsr-tiny --batch 4          # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from tgazsr_cli.config import load_recipe
from tgazsr_cli.config.recipe import PAPER_TEMPLATE
from tgazsr_cli.data.loading import ImageClassificationData
from tgazsr_cli.models.classifier import load_classifier
from tgazsr_cli.training.loop import Trainer

VARIANTS = ("full", "lora")
MIB = 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model name (random weights)")
    parser.add_argument("--method", default="tga-zsr")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--attack-steps", type=int, default=2, help="PGD steps of the training attack (paper: 2)")
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    parser.add_argument("--rank", type=int, default=8, help="lora.rank (alpha = 2 x rank)")
    parser.add_argument("--targets", default="c_fc,c_proj,attn", help="lora.target_modules")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the warm-up ones")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def reset_peak_rss() -> bool:
    """Start the peak-RSS counter (VmHWM) afresh, so setup (model build, teacher copy) does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:  # not Linux, or not allowed: fall back to the lifetime peak
        return False


def peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tensor_mb(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / MIB


def training_state_mb(trainer: Trainer) -> dict[str, float]:
    """What fine-tuning keeps beyond the frozen weights: trainable parameters, gradients, optimiser state."""
    params = trainer.params
    optimizer_tensors = [v for state in trainer.optimizer.state.values() for v in state.values()
                         if isinstance(v, torch.Tensor) and v.dim() > 0]
    return {"params_mb": tensor_mb(params), "grads_mb": tensor_mb(p.grad for p in params if p.grad is not None),
            "optimizer_mb": tensor_mb(optimizer_tensors)}


def run_variant(args: argparse.Namespace) -> dict[str, object]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)  # same random weights in both subprocesses
    model = load_classifier(args.model, None, device=device)
    names = [f"object number {i}" for i in range(args.classes)]
    overrides = [f"method={args.method}", f"data.batch_size={args.batch}", f"attack.steps={args.attack_steps}",
                 f"optim.name={args.optimizer}", "optim.warmup_steps=0", "optim.epochs=1",
                 f"train.precision={args.precision}", f"train.device={args.device}",
                 f"train.trainable={args.variant}", f"lora.rank={args.rank}", f"lora.alpha={2 * args.rank}",
                 f"lora.target_modules=[{args.targets}]"]
    data = ImageClassificationData(list(range(args.batch)), names, [PAPER_TEMPLATE], "synthetic", "train", "bench")
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(load_recipe(None, overrides), Path(run_dir), model=model, data=data)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, model.image_size, model.image_size, generator=generator).to(device)
    labels = torch.randint(args.classes, (args.batch,), generator=generator).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    reset_peak_rss()
    base_rss = current_rss_mb()
    torch.manual_seed(2)
    timed = 0.0
    for index in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        assert trainer.train_step(images, labels) is not None, "non-finite step"
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= args.warmup:
            timed += time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else peak_rss_mb() - base_rss)
    return {"seconds_per_step": timed / max(1, args.steps), "peak_memory_mb": peak,
            "trainable_params": sum(p.numel() for p in trainer.params),
            "image_tower_params": sum(p.numel() for n, p in trainer.model.visual.named_parameters()
                                      if ".lora_" not in n),
            **training_state_mb(trainer)}


def child_command(args: argparse.Namespace, variant: str, result: Path) -> list[str]:
    options = ["--model", args.model, "--method", args.method, "--batch", args.batch, "--classes", args.classes,
               "--attack-steps", args.attack_steps, "--optimizer", args.optimizer, "--rank", args.rank,
               "--targets", args.targets, "--warmup", args.warmup, "--steps", args.steps, "--device", args.device,
               "--precision", args.precision, "--threads", args.threads]
    return [sys.executable, __file__, *map(str, options), "--variant", variant, "--result", str(result)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.variant:
        args.result.write_text(json.dumps(run_variant(args)))
        return 0
    print(f"{args.method} train step, full fine-tuning vs LoRA (rank {args.rank}, alpha {2 * args.rank}, modules "
          f"{args.targets}): {args.model} random weights, batch {args.batch}, {args.classes} classes, "
          f"PGD-{args.attack_steps} training attack, {args.optimizer}, {args.precision}, device {args.device}, "
          f"torch threads {args.threads or torch.get_num_threads()}, {args.warmup} warm-up + {args.steps} timed "
          "step(s)", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for variant in VARIANTS:
            result = Path(scratch) / f"{variant}.json"
            subprocess.run(child_command(args, variant, result), check=True)
            results[variant] = json.loads(result.read_text())
    memory = "peak RSS above baseline" if args.device == "cpu" else "max allocated"
    print(f"  {'':6} {'s/step':>9} {'trainable':>11} {'params MiB':>10} {'grads MiB':>9} {'optim MiB':>9} "
          f"{'peak MiB':>9}  ({memory})")
    for name, row in results.items():
        print(f"  {name:6} {row['seconds_per_step']:9.3f} {row['trainable_params']:11,d} {row['params_mb']:10.1f} "
              f"{row['grads_mb']:9.1f} {row['optimizer_mb']:9.1f} {row['peak_memory_mb']:9.0f}")
    full, lora = results["full"], results["lora"]
    state = [row["params_mb"] + row["grads_mb"] + row["optimizer_mb"] for row in (full, lora)]
    print(f"  LoRA trains {lora['trainable_params'] / full['image_tower_params']:.2%} of the image tower's "
          f"{full['image_tower_params']:,d} parameters")
    print(f"  ratios full / LoRA: trainable parameters {full['trainable_params'] / lora['trainable_params']:.1f}x, "
          f"params+grads+optimiser state {state[0] / state[1]:.1f}x, peak memory "
          f"{full['peak_memory_mb'] / max(lora['peak_memory_mb'], 1e-9):.2f}x, step time "
          f"{full['seconds_per_step'] / lora['seconds_per_step']:.2f}x", flush=True)
    if args.output:
        args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                          indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
