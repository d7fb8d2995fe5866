"""PGD evaluation throughput: our `pgd` attack vs torchattacks.PGD on the same classifier and images.

The labels are the model's own clean predictions, so clean accuracy is 100% and robust accuracy
measures how strong each attack is (random weights would otherwise score at chance either way).

    python bench/pgd_eval.py                                     # ViT-B-32 random weights, batch 8, PGD-10
    python bench/pgd_eval.py --model tgazsr-tiny --batch 16 --steps 5 --repeats 3   # seconds on CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from tgazsr_cli.attacks import ThreatModel
from tgazsr_cli.attacks.pgd import pgd
from tgazsr_cli.config.recipe import PAPER_TEMPLATE
from tgazsr_cli.models.classifier import load_classifier


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model name (random weights)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10, help="PGD steps (the paper's evaluation uses 100)")
    parser.add_argument("--eps", type=float, default=1.0, help="in /255")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches per attack")
    parser.add_argument("--repeats", type=int, default=2, help="timed batches per attack, alternating attacks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="our attack's forward precision (torchattacks always runs as called, here fp32)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    return parser.parse_args(argv)


def timed_once(fn, device: torch.device) -> tuple[float, torch.Tensor]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, result


def interleaved(fns: list, device: torch.device, warmup: int, repeats: int) -> list[tuple[float, torch.Tensor]]:
    """Mean seconds per call of each fn, calls alternating so that load drift hits every fn alike."""
    for _ in range(warmup):  # allocator, kernels
        for fn in fns:
            fn()
    totals = [0.0] * len(fns)
    results: list = [None] * len(fns)
    for _ in range(repeats):
        for index, fn in enumerate(fns):
            seconds, results[index] = timed_once(fn, device)
            totals[index] += seconds
    return [(total / repeats, result) for total, result in zip(totals, results, strict=True)]


def main(argv: list[str] | None = None) -> int:
    import torchattacks

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = load_classifier(args.model, None, device=device)
    model.set_classes([f"object number {i}" for i in range(args.classes)], [PAPER_TEMPLATE])
    model.requires_grad_(False)  # evaluation: no parameter gradients for either attack
    model.eval()
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, model.image_size, model.image_size, generator=generator).to(device)
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    ids = torch.arange(args.batch)

    threat = ThreatModel(eps=args.eps, steps=args.steps, step_size=args.eps, precision=args.precision)
    theirs = torchattacks.PGD(model, eps=args.eps / 255, alpha=args.eps / 255, steps=args.steps, random_start=True)

    (ours_s, ours_adv), (theirs_s, theirs_adv) = interleaved(
        [lambda: pgd(model, images, labels, threat, ids), lambda: theirs(images, labels)], device,
        args.warmup, args.repeats)

    with torch.no_grad():
        ours_acc = (model(ours_adv).argmax(1) == labels).float().mean().item()
        theirs_acc = (model(theirs_adv).argmax(1) == labels).float().mean().item()
    ours_ips, theirs_ips = args.batch / ours_s, args.batch / theirs_s
    inside = (ours_adv - images).abs().max().item() <= args.eps / 255 + 1e-6
    print(f"PGD-{args.steps} eval, eps {args.eps:g}/255, step {args.eps:g}/255: {args.model} random weights, "
          f"{args.classes} classes, batch {args.batch}, {args.precision}, device {args.device}, torch threads "
          f"{args.threads or torch.get_num_threads()}, {args.warmup} warm-up + {args.repeats} timed batch(es) each, "
          "alternating")
    print(f"  {'':12} {'s/batch':>8} {'images/s':>9} {'robust acc':>10}  (labels = clean predictions)")
    print(f"  {'ours':12} {ours_s:8.3f} {ours_ips:9.2f} {ours_acc:10.1%}")
    print(f"  {'torchattacks':12} {theirs_s:8.3f} {theirs_ips:9.2f} {theirs_acc:10.1%}")
    print(f"  ratio: ours is {ours_ips / theirs_ips:.2f}x torchattacks' throughput; "
          f"our perturbation within eps: {inside}")
    if args.output:
        args.output.write_text(json.dumps({
            "args": {k: str(v) for k, v in vars(args).items()},
            "ours": {"seconds_per_batch": ours_s, "images_per_s": ours_ips, "robust_accuracy": ours_acc},
            "torchattacks": {"seconds_per_batch": theirs_s, "images_per_s": theirs_ips,
                             "robust_accuracy": theirs_acc},
            "ratio": ours_ips / theirs_ips}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
