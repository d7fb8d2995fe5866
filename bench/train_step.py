"""Throughput and peak memory of one TGA-ZSR training step: our engine vs the reference's pattern.

Each variant runs in its own subprocess (so peak memory is its own), on the same model weights,
batch and attack random start; the script then checks that both computed the same loss and the
same update, and prints the ratios side by side.

    python bench/train_step.py                                   # ViT-B-32, batch 8, 224 px, 200 and 10 classes
    python bench/train_step.py --model tgazsr-tiny --batch 4 --classes 20 --warmup 0 --steps 1   # seconds on CPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from bench.reference_pattern import ReferenceSettings, ReferenceStep
from tgazsr_cli.config import load_recipe
from tgazsr_cli.config.recipe import PAPER_TEMPLATE
from tgazsr_cli.data.loading import ImageClassificationData
from tgazsr_cli.models.classifier import ClipClassifier, build_prompts, load_classifier
from tgazsr_cli.training.loop import Trainer

LR = 1e-4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model name (random weights)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, nargs="+", default=[200, 10], help="class-prompt counts to run")
    parser.add_argument("--attack-steps", type=int, default=2, help="PGD steps of the training attack (paper: 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (the check uses step 1)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the warm-up ones")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--grad-checkpointing", action="store_true", help="our engine: train.grad_checkpointing")
    parser.add_argument("--compile", action="store_true", help="our engine: train.compile")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--variant", choices=["ours", "reference"], help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def classnames(count: int) -> list[str]:
    return [f"object number {i}" for i in range(count)]


def build_model(args: argparse.Namespace, classes: int, device: torch.device) -> ClipClassifier:
    torch.manual_seed(0)  # same random weights in both subprocesses
    model = load_classifier(args.model, None, device=device)
    model.set_classes(classnames(classes), [PAPER_TEMPLATE])
    return model


def perturb(params: list[torch.nn.Parameter]) -> None:
    """Move the trainable weights off the frozen copy: at equality L_AMC's gradient is arbitrary (spec §11)."""
    with torch.no_grad():
        for param in params:
            param.add_(1e-3 * torch.sin(torch.arange(param.numel(), device=param.device, dtype=param.dtype)
                                        .view_as(param)))


def make_batch(args: argparse.Namespace, size: int, classes: int, device: torch.device):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(classes, (args.batch,), generator=generator).to(device)
    return images, labels


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(args: argparse.Namespace, classes: int) -> dict[str, object]:
    """Child process: build, warm up, time `args.steps` steps; report loss, update fingerprint, memory."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build_model(args, classes, device)
    images, labels = make_batch(args, model.image_size, classes, device)
    if args.variant == "ours":
        overrides = [f"data.batch_size={args.batch}", f"attack.steps={args.attack_steps}", f"optim.lr={LR}",
                     "optim.warmup_steps=0", "optim.epochs=1", f"train.precision={args.precision}",
                     f"train.device={args.device}", f"train.compile={str(args.compile).lower()}",
                     f"train.grad_checkpointing={str(args.grad_checkpointing).lower()}"]
        data = ImageClassificationData(list(range(args.batch)), classnames(classes), [PAPER_TEMPLATE],
                                       "synthetic", "train", "bench")
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = Trainer(load_recipe(None, overrides), Path(run_dir), model=model, data=data)
        params = trainer.params
        perturb(params)

        def step() -> float:
            total = float(trainer.train_step(images, labels)["total"])  # a host sync, as the timing needs one
            assert math.isfinite(total), "non-finite step"
            return total
    else:
        params = list(model.visual.parameters())
        optimizer = torch.optim.SGD(params, lr=LR, momentum=0.9)
        reference = ReferenceStep(model, build_prompts(classnames(classes), [PAPER_TEMPLATE]),
                                  ReferenceSettings(steps=args.attack_steps, precision=args.precision), optimizer)
        perturb(params)

        def step() -> float:
            return reference.step(images, labels, LR)

    before = [p.detach().clone() for p in params]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base_rss = current_rss_mb()
    torch.manual_seed(2)  # the attack's random start
    timed, first_loss, fingerprint = 0.0, 0.0, {}
    for index in range(args.warmup + args.steps):
        sync(device)
        started = time.perf_counter()
        loss = step()
        sync(device)
        if index >= args.warmup:  # with --warmup 0 the first (checked) step is timed too
            timed += time.perf_counter() - started
        if index == 0:  # the check compares the first update of both variants
            first_loss = loss
            update = [(p.detach() - b).float() for p, b in zip(params, before, strict=True)]
            fingerprint = {"norms": [u.norm().item() for u in update], "sums": [u.sum().item() for u in update]}
            del before, update
    seconds = timed / max(1, args.steps)
    memory = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
              else peak_rss_mb() - base_rss)
    return {"loss": first_loss, "seconds_per_step": seconds, "images_per_s": args.batch / seconds,
            "peak_memory_mb": memory, **fingerprint}


def child_command(args: argparse.Namespace, variant: str, classes: int, result: Path) -> list[str]:
    command = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch), "--classes",
               str(classes), "--attack-steps", str(args.attack_steps), "--warmup", str(args.warmup),
               "--steps", str(args.steps), "--device", args.device, "--precision", args.precision,
               "--threads", str(args.threads), "--variant", variant, "--result", str(result)]
    if args.grad_checkpointing:
        command.append("--grad-checkpointing")
    if args.compile:
        command.append("--compile")
    return command


def compare(ours: dict, reference: dict, precision: str) -> tuple[bool, str]:
    """Same loss and same update (per-tensor norms and sums of the parameter change)."""
    loss_diff = abs(ours["loss"] - reference["loss"]) / max(abs(reference["loss"]), 1e-12)
    norm_diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours["norms"], reference["norms"], strict=True))
    scale = max(abs(v) for v in reference["norms"])
    sum_diff = max(abs(a - b) for a, b in zip(ours["sums"], reference["sums"], strict=True)) / max(scale, 1e-12)
    tolerance = 1e-3 if precision == "fp32" else 5e-2
    ok = loss_diff < tolerance and norm_diff < 10 * tolerance and sum_diff < 10 * tolerance
    text = (f"loss ours {ours['loss']:.6f} ref {reference['loss']:.6f} (rel diff {loss_diff:.1e}); update: "
            f"max rel diff of per-tensor norms {norm_diff:.1e}, of sums {sum_diff:.1e} -> "
            f"{'SAME' if ok else 'DIFFERENT'} (tolerance {tolerance:g})")
    return ok, text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.variant:
        args.result.write_text(json.dumps(run_variant(args, args.classes[0])))
        return 0
    print(f"TGA-ZSR train step: {args.model} random weights, batch {args.batch}, PGD-{args.attack_steps} "
          f"training attack, {args.precision}, device {args.device}, torch threads "
          f"{args.threads or torch.get_num_threads()}, {args.warmup} warm-up + {args.steps} timed step(s)"
          f"{', grad checkpointing' if args.grad_checkpointing else ''}{', compiled' if args.compile else ''}",
          flush=True)
    rows, all_ok = [], True
    with tempfile.TemporaryDirectory() as scratch:
        for classes in args.classes:
            results = {}
            for variant in ("ours", "reference"):
                result = Path(scratch) / f"{variant}-{classes}.json"
                subprocess.run(child_command(args, variant, classes, result), check=True)
                results[variant] = json.loads(result.read_text())
            ours, reference = results["ours"], results["reference"]
            ok, check = compare(ours, reference, args.precision)
            all_ok &= ok
            rows.append({"classes": classes, "ours": ours, "reference": reference, "same_result": ok})
            memory = "MiB (peak RSS above baseline)" if args.device == "cpu" else "MiB (max allocated)"
            print(f"\n{classes} classes:")
            print(f"  {'':10} {'s/step':>9} {'images/s':>9} {'peak mem':>9}")
            for name, row in (("ours", ours), ("reference", reference)):
                print(f"  {name:10} {row['seconds_per_step']:9.3f} {row['images_per_s']:9.2f} "
                      f"{row['peak_memory_mb']:9.0f}  {memory}")
            speed = reference["seconds_per_step"] / ours["seconds_per_step"]
            mem_ratio = reference["peak_memory_mb"] / max(ours["peak_memory_mb"], 1e-9)
            print(f"  ratio: ours is {speed:.2f}x faster, reference uses {mem_ratio:.2f}x the memory")
            print(f"  check: {check}", flush=True)
    if args.output:
        args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                          indent=2))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
