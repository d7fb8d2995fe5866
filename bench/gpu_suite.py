"""The GPU numbers of issue 16 in one run: training images/s, memory, MFU, host syncs, PGD-100, bf16 vs fp32.

Sections (all by default, in this order; `--sections` picks some):
- train: TGA-ZSR and TeCoA training steps (`Trainer.train_step`, ViT-B-32 random weights, 200 classes, batch
  128, bf16): images/s, peak memory, host syncs per step (CUDA sync debug mode), FLOPs per step
  (torch.utils.flop_counter) and model FLOP utilisation against `--peak-tflops` (H200 bf16 dense: 989);
- compile: the TGA-ZSR step again with `train.compile=default` and `=reduce-overhead` (CUDA graphs); warm-up
  time = compile time;
- pgd: PGD-100 evaluation images/s at batch 256, attack forward in bf16 and in fp32;
- precision: robust accuracy of the shipped mini CLIP on shipped fashion-mnist-a test images under PGD with
  the attack run in fp32 and in bf16 (same images, same random start; predictions scored in fp32);
- suite: the projected wall time of the 16-dataset PGD-100 suite (recipes/eval/zs16.yaml; test split sizes
  from the dataset files' `splits: test: size`) at the measured PGD-100 rate;
- transform: the decoded cache's on-device batch transform (uint8 64 x 64 -> 224 x 224 float).

    python bench/gpu_suite.py                 # on a CUDA machine, about 3-5 minutes
    python bench/gpu_suite.py --tiny          # seconds on a CPU: tgazsr-tiny, tiny batches, few steps
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from tgazsr_cli.attacks import ThreatModel
from tgazsr_cli.attacks.pgd import pgd
from tgazsr_cli.config import load_recipe
from tgazsr_cli.config.recipe import PAPER_TEMPLATE
from tgazsr_cli.data import DatasetSpec
from tgazsr_cli.data.loading import ImageClassificationData
from tgazsr_cli.models.classifier import ClipClassifier, load_classifier
from tgazsr_cli.training.loop import Trainer

SECTIONS = ("train", "compile", "pgd", "precision", "suite", "transform")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tgazsr-tiny, small sizes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sections", default=",".join(s for s in SECTIONS if s != "compile"),
                        help=f"comma-separated, from {', '.join(SECTIONS)} (compile is opt-in: it is slow)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H200 SXM: 989)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--pgd-steps", type=int, default=100)
    parser.add_argument("--pgd-batches", type=int, default=2, help="timed PGD batches per precision")
    parser.add_argument("--precision-images", type=int, default=1000)
    parser.add_argument("--precision-eps", type=float, default=1.0, help="in /255")
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch, args.warmup, args.steps, args.eval_batch = 4, 1, 2, 8
        args.pgd_steps, args.pgd_batches, args.precision_images = 3, 1, 32
    args.model = "tgazsr-tiny" if args.tiny else "ViT-B-32"
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def classnames(count: int) -> list[str]:
    return [f"object number {i}" for i in range(count)]


def random_model(args: argparse.Namespace, device: torch.device, classes: int = 200) -> ClipClassifier:
    torch.manual_seed(0)
    model = load_classifier(args.model, None, device=device)
    model.set_classes(classnames(classes), [PAPER_TEMPLATE])
    return model


def count_syncs(fn: Callable[[], object], device: torch.device) -> int | None:
    """Host-device syncs CUDA reports while `fn` runs (sync debug mode "warn"); None off CUDA."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def train_row(args: argparse.Namespace, method: str, device: torch.device, compile_: str = "off") -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    model = random_model(args, device)
    overrides = [f"method={method}", f"data.batch_size={args.batch}", "optim.warmup_steps=0", "optim.epochs=1",
                 "train.precision=bf16", f"train.device={args.device}", f"train.compile={compile_}"]
    data = ImageClassificationData(list(range(args.batch)), classnames(200), [PAPER_TEMPLATE], "synthetic",
                                   "train", "bench")
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(load_recipe(None, overrides), Path(run_dir), model=model, data=data)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, model.image_size, model.image_size, generator=generator).to(device)
    labels = torch.randint(200, (args.batch,), generator=generator).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.warmup):
        trainer.train_step(images, labels)
    sync(device)
    warmup_s = time.perf_counter() - started
    syncs = count_syncs(partial(trainer.train_step, images, labels), device)
    sync(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(images, labels)
    sync(device)
    seconds = (time.perf_counter() - started) / args.steps
    trainer.check_stats()  # the stats read of a logging step: raises if a step was not finite
    flops = None
    if compile_ == "off":  # the counter runs the step eagerly; compiled graphs would not be counted
        with FlopCounterMode(display=False) as counter:
            trainer.train_step(images, labels)
        flops = counter.get_total_flops()
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del trainer, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    name = method + ("" if compile_ == "off" else f" compile={compile_}")
    return {"method": name, "seconds": seconds, "ips": args.batch / seconds,
            "memory_gib": memory, "syncs": syncs, "flops": flops, "warmup_s": warmup_s}


def print_train(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"Training step: {args.model} random weights, 200 classes, batch {args.batch}, bf16 autocast, PGD-2 "
          f"training attack, {args.warmup} warm-up + {args.steps} timed steps, no sync inside the timed loop")
    print(f"  {'':20} {'images/s':>9} {'ms/step':>8} {'peak GiB':>9} {'syncs/step':>10} {'GFLOP/step':>10} "
          f"{'MFU':>6} {'warm-up s':>9}")
    for row in rows:
        gflop = row["flops"] / 1e9 if row["flops"] else None
        mfu = gflop / 1e3 / row["seconds"] / args.peak_tflops if gflop else None
        print(f"  {row['method']:20} {row['ips']:9.1f} {row['seconds'] * 1e3:8.1f} "
              f"{_fmt(row['memory_gib'], '9.2f')} {_fmt(row['syncs'], '10d')} {_fmt(gflop, '10.1f')} "
              f"{_fmt(mfu, '6.1%')} {row['warmup_s']:9.1f}")
    print(f"  MFU = counted FLOPs per step / step time / {args.peak_tflops:g} TFLOP/s; target >= 3000 images/s")


def _fmt(value: float | int | None, spec: str) -> str:
    width = int(re.match(r"\d+", spec).group())  # type: ignore[union-attr]
    return f"{'n/a':>{width}}" if value is None else format(value, spec)


def pgd_rates(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    model = random_model(args, device)
    model.requires_grad_(False)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.eval_batch, 3, model.image_size, model.image_size, generator=generator).to(device)
    with torch.no_grad():
        labels = model(images).argmax(1)
    rates = {}
    for precision in ("bf16", "fp32"):
        threat = ThreatModel(eps=1, steps=args.pgd_steps, step_size=1, precision=precision)
        pgd(model, images, labels, ThreatModel(eps=1, steps=2, step_size=1, precision=precision))  # warm-up
        sync(device)
        started = time.perf_counter()
        for _ in range(args.pgd_batches):
            pgd(model, images, labels, threat)
        sync(device)
        rates[precision] = args.pgd_batches * args.eval_batch / (time.perf_counter() - started)
    print(f"PGD-{args.pgd_steps} evaluation: {args.model} random weights, 200 classes, batch {args.eval_batch}, "
          f"eps 1/255, {args.pgd_batches} timed batch(es) per precision")
    for precision, rate in rates.items():
        print(f"  attack in {precision}: {rate:9.1f} images/s")
    return rates


def precision_gap(args: argparse.Namespace, device: torch.device) -> None:
    from tgazsr_cli.data import load_image_dataset

    model = load_classifier("tgazsr-mini", "tgazsr:mini-clip", device=device, logit_scale=14.7)
    data = load_image_dataset("fashion-mnist-a", split="test", image_size=model.image_size,
                              limit=args.precision_images, seed=0)
    model.set_classes(data.classnames, data.templates)
    model.requires_grad_(False)
    items = [data.dataset[i] for i in range(len(data.dataset))]
    images = torch.stack([item[0] for item in items]).to(device)
    labels = torch.tensor([item[1] for item in items], device=device)
    ids = torch.arange(len(items))
    correct = {}
    for precision in ("fp32", "bf16"):
        threat = ThreatModel(eps=args.precision_eps, steps=args.pgd_steps, step_size=1, precision=precision)
        hits = []
        for start in range(0, len(items), args.eval_batch):
            part = slice(start, start + args.eval_batch)
            adversarial = pgd(model, images[part], labels[part], threat, ids[part])  # per-image seeded start
            with torch.no_grad():
                hits.append(model(adversarial).argmax(1) == labels[part])
        correct[precision] = torch.cat(hits)
    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).float().mean().item() * 100
    fp32, bf16 = (correct[p].float().mean().item() * 100 for p in ("fp32", "bf16"))
    flips = int((correct["fp32"] != correct["bf16"]).sum())
    print(f"Attack precision: shipped mini CLIP, {len(items)} fashion-mnist-a test images, PGD-{args.pgd_steps} "
          f"at {args.precision_eps:g}/255, predictions scored in fp32; clean accuracy {clean:.1f}%")
    print(f"  robust accuracy, fp32 attack {fp32:.2f}%, bf16 attack {bf16:.2f}%: difference {bf16 - fp32:+.2f} "
          f"points ({flips} image(s) change outcome); target |difference| <= 0.3")


def suite_projection(rates: dict[str, float], steps: int) -> None:
    from tgazsr_cli.config import find_recipe
    from tgazsr_cli.data import get_dataset_spec

    names = load_recipe(str(find_recipe("eval/zs16"))).eval.datasets
    sizes = {name: test_size(get_dataset_spec(name)) for name in names}
    total = sum(sizes.values())
    print(f"16-dataset PGD suite (recipes/eval/zs16.yaml): {total:,} test images "
          f"({', '.join(f'{n} {s:,}' for n, s in sizes.items())})")
    for precision, rate in rates.items():
        print(f"  PGD-{steps} at the measured {precision} rate ({rate:.0f} images/s): {total / rate / 3600:.2f} h "
              f"(attack only; clean pass and decoding not included); target < 1 h")


def test_size(spec: DatasetSpec) -> int:
    """The scored split's size as the dataset table states it (`spec.splits["test"].size`, a number)."""
    size = spec.split_size("test")
    if size is None:
        raise ValueError(f"no split size for the test split of dataset '{spec.name}' in {spec.defined_in}")
    return size


def transform_rate(args: argparse.Namespace, device: torch.device) -> None:
    from tgazsr_cli.data.decoded_cache import Geometry, to_model_input

    size = 32 if args.tiny else 224
    geometry = Geometry((round(size * 256 / 224),) * 2, size)
    batch = torch.randint(0, 256, (args.batch, 64, 64, 3), dtype=torch.uint8, device=device)
    to_model_input(batch, geometry)
    sync(device)
    started, repeats = time.perf_counter(), 20
    for _ in range(repeats):
        to_model_input(batch, geometry)
    sync(device)
    rate = repeats * args.batch / (time.perf_counter() - started)
    print(f"Decoded-cache batch transform on {device.type}: uint8 64x64 -> float {size}x{size} (bilinear "
          f"antialiased resize + crop), batch {args.batch}: {rate:,.0f} images/s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"bench/gpu_suite.py on {name}, torch {torch.__version__}, sections {', '.join(args.sections)}"
          f"{' (tiny)' if args.tiny else ''}", flush=True)
    if "train" in args.sections or "compile" in args.sections:
        rows = [train_row(args, m, device) for m in ("tga-zsr", "tecoa")] if "train" in args.sections else []
        if "compile" in args.sections:
            rows += [train_row(args, "tga-zsr", device, compile_=mode) for mode in ("default", "reduce-overhead")]
        print_train(rows, args)
    rates = pgd_rates(args, device) if "pgd" in args.sections else {}
    if "precision" in args.sections:
        precision_gap(args, device)
    if "suite" in args.sections and rates:
        suite_projection(rates, args.pgd_steps)
    if "transform" in args.sections:
        transform_rate(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
