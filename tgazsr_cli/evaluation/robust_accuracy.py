"""Zero-shot clean and robust accuracy of one model on one dataset under one or more attacks (spec §6).

A point counts as robust when the model classifies it correctly both clean and under attack, so
robust accuracy can never exceed clean accuracy; only clean-correct points are attacked, which
gives the same number for less work ("clean-and-robust" counting). With `robust_counting="all"` every
image is attacked and robust accuracy counts the correct adversarial predictions over all images, as
TGA-ZSR's reference code does (it can then exceed clean accuracy, rarely). A one-attack suite (paper-pgd) is
then its attack, with the suite's budget, on every image; a suite of several keeps AutoAttack's rule, where a
clean-misclassified point stays broken, so its numbers are the same under both. Behind a test-time defence
only clean-and-robust is offered: its views (defences/adaptive.py) attack the clean-correct points.
Each image's random start depends only on (seed, its index), and the attack loss is summed per sample,
so results do not depend on the batch size.

Besides top-1 counts, each record keeps top-5 counts and counts per true class, from which the
CLIP_benchmark metrics `acc5` and `mean_per_class_recall` follow exactly (evaluation/clip_benchmark.py).

An "attack" here is either a single registered attack (`pgd`, `cw`, `apgd-ce`, ...) or a named suite
(`paper-pgd`, `paper-aa`, `autoattack`), which runs its members in order on the still-robust points.
The data are read once: every attack of the list sees the same clean batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from tgazsr_cli.attacks import SUITES, ThreatModel, check_attack_names, get_suite, resolve_attack, sanity_checks
from tgazsr_cli.attacks.suites import run_suite_detailed
from tgazsr_cli.data import ImageClassificationData, collate_skip_broken
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.evaluation.calibration import CalibrationBins, all_reduce_bins, ece
from tgazsr_cli.evaluation.clip_benchmark import per_class_recall
from tgazsr_cli.models.classifier import ClipClassifier
from tgazsr_cli.runtime.progress import Progress, SilentProgress

SANITY_EXAMPLES = 32  # examples of the first batch the sanity checks look at (they run two extra attacks)
SANITY_MAX_STEPS = 20
TOP_K = 5  # CLIP_benchmark's acc5
ROBUST_COUNTINGS = ("clean-and-robust", "all")


@dataclass
class EvalRecord:
    """One flat result record: a model on a dataset under one attack (or suite)."""

    model: str
    dataset: str
    split: str
    attack: str
    num_examples: int
    clean_correct: int
    robust_correct: int
    threat: dict[str, Any]
    batch_size: int
    source: str
    skipped_images: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    defence: str | None = None  # a test-time defence (defences/registry.py) the model was evaluated behind
    attack_view: str | None = None  # with a defence: non-adaptive (crafted on the bare model) or adaptive
    clean_bins: dict[str, list] = field(default_factory=dict)  # calibration.py: per-bin count, confidence, correct
    robust_bins: dict[str, list] = field(default_factory=dict)  # the same for the predictions robust acc. scores
    clean_top5_correct: int = 0  # the label among the 5 largest logits (all of them with fewer classes)
    robust_top5_correct: int = 0  # the same for the logits robust accuracy scores
    class_counts: list[int] = field(default_factory=list)  # examples per true class
    clean_per_class: list[int] = field(default_factory=list)  # clean-correct examples per true class
    robust_per_class: list[int] = field(default_factory=list)  # robust examples per true class
    robust_counting: str = "clean-and-robust"  # or "all" (module docstring)
    protocol: str | None = None  # the evaluation protocol's name, set by the caller
    pretrained: str | None = None  # the weights (open_clip tag or file), set by the caller
    arch: str | None = None  # the open_clip model name

    @property
    def clean_accuracy(self) -> float:
        return 100.0 * self.clean_correct / max(1, self.num_examples)

    @property
    def robust_accuracy(self) -> float:
        return 100.0 * self.robust_correct / max(1, self.num_examples)

    def to_dict(self) -> dict[str, Any]:
        n = max(1, self.num_examples)
        return {**asdict(self), "clean_accuracy": self.clean_accuracy, "robust_accuracy": self.robust_accuracy,
                "clean_ece": ece(self.clean_bins), "robust_ece": ece(self.robust_bins),
                "clean_acc5": 100.0 * self.clean_top5_correct / n, "robust_acc5": 100.0 * self.robust_top5_correct / n,
                "clean_mean_per_class_recall": _percent(per_class_recall(self.clean_per_class, self.class_counts)),
                "robust_mean_per_class_recall": _percent(per_class_recall(self.robust_per_class, self.class_counts))}


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def top_k_hits(logits: torch.Tensor, labels: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """Whether each label is among its row's k largest logits (all of them with fewer than k classes); ties
    go as torch.topk breaks them, as in CLIP_benchmark's `accuracy`."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1)


@dataclass
class _Scores:
    """Exact counts of one set of predictions beyond top-1: top-5 correct and correct per true class."""

    num_classes: int
    top5: int = 0
    per_class: Any = None  # int64 tensor of num_classes counts, on the CPU

    def add(self, logits: torch.Tensor, labels: torch.Tensor, hit: torch.Tensor) -> None:
        if self.per_class is None:
            self.per_class = torch.zeros(self.num_classes, dtype=torch.int64)
        self.top5 += int(top_k_hits(logits, labels).sum())
        self.per_class += torch.bincount(labels[hit].cpu(), minlength=self.num_classes)[:self.num_classes]

    def as_list(self) -> list[int]:
        return [0] * self.num_classes if self.per_class is None else [int(v) for v in self.per_class.tolist()]


class _IndexedDataset(torch.utils.data.Dataset):
    """Adds each example's index, which seeds its attack's random start."""

    def __init__(self, dataset: torch.utils.data.Dataset, indices: Sequence[int] | None = None) -> None:
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, tuple[int, int]] | None:
        index = self.indices[position]
        item = self.dataset[index]
        return None if item is None else (item[0], (item[1], index))


def _split_targets(targets: torch.Tensor | list) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = torch.as_tensor(targets).view(-1, 2)
    return pairs[:, 0], pairs[:, 1]


@dataclass
class _Tally:
    """Running counts of one attack over the batches."""

    robust: int = 0
    seconds: float = 0.0
    after_member: dict[str, int] = field(default_factory=dict)  # suites: robust points after each member
    skipped: dict[str, str] = field(default_factory=dict)
    bins: CalibrationBins = field(default_factory=CalibrationBins)  # of the predictions robust accuracy scores
    logits: Any = None  # the last batch's logits of the attacked points' scored images
    attack: str = ""  # the attack or suite (the key of its tally)
    view: str | None = None  # with a defence: which of defences.VIEWS this tally counts
    defended: Any = None  # with a defence: the defended model (defences/base.py) and the EOT draws
    eot_samples: int = 1
    scores: _Scores = field(default_factory=lambda: _Scores(0))  # top-5 and per-class counts of robust accuracy
    every: bool = False  # "all" counting: every point is attacked


def _attack_batch(name: str, model: ClipClassifier, images: torch.Tensor, labels: torch.Tensor,
                  threat: ThreatModel, ids: torch.Tensor, tally: _Tally) -> torch.Tensor:
    """Robust mask of `images` (the clean-correct ones, or all under "all" counting) under attack or suite
    `name`, updating `tally`."""
    started = time.monotonic()
    single = get_suite(name) if name in SUITES and tally.every and len(get_suite(name)) == 1 else None
    if tally.view is not None:  # behind a defence: the view's attack, the defended model classifying
        from tgazsr_cli.defences.adaptive import robust_under

        outcome = robust_under(tally.view, tally.attack, model, tally.defended, images, labels, threat, ids,
                               tally.eot_samples)
        for member, count in outcome.after_member.items():
            tally.after_member[member] = tally.after_member.get(member, 0) + count
        tally.skipped.update(outcome.skipped)
        tally.logits, robust = outcome.logits, outcome.robust
    elif name in SUITES and single is None:
        result = run_suite_detailed(model, images, labels, name, threat, ids)
        for member, mask in result.robust.items():
            if member != "clean":
                tally.after_member[member] = tally.after_member.get(member, 0) + int(mask.sum())
        tally.skipped.update(result.skipped)
        robust = list(result.robust.values())[-1]
        with torch.no_grad():  # the image that broke each point, else its clean image (AutoAttack's x_adv)
            tally.logits = model(result.adversarial)
    else:  # an attack; under "all" counting also a one-attack suite (paper-pgd), with the suite's budget
        member, overrides = single[0] if single else (name, {})
        adversarial = resolve_attack(member)(model, images, labels, dataclasses.replace(threat, **overrides), ids)
        with torch.no_grad():
            tally.logits = model(adversarial)
            robust = tally.logits.argmax(dim=1) == labels
        if single:
            tally.after_member[member] = tally.after_member.get(member, 0) + int(robust.sum())
    tally.seconds += time.monotonic() - started
    return robust


def _sanity_warnings(model: ClipClassifier, images: torch.Tensor, labels: torch.Tensor,
                     threat: ThreatModel) -> list[str]:
    """AutoAttack-style checks on a slice of the first batch, with a short attack budget."""
    quick = dataclasses.replace(threat, steps=min(max(threat.steps, 1), SANITY_MAX_STEPS), restarts=1)
    return sanity_checks(model, images[:SANITY_EXAMPLES], labels[:SANITY_EXAMPLES], threat=quick)


def evaluate_attacks(
    model: ClipClassifier,
    data: ImageClassificationData,
    *,
    model_label: str,
    attacks: Sequence[str] = ("pgd",),
    threat: ThreatModel | None = None,
    batch_size: int = 256,
    num_workers: int = 2,
    templates: list[str] | None = None,
    progress: Progress | None = None,
    sanity: bool = True,
    indices: Sequence[int] | None = None,
    on_broken: str = "skip",
    defence: str = "none",
    defence_options: dict[str, Any] | None = None,
    eot_samples: int = 20,
    robust_counting: str = "clean-and-robust",
    protocol: str | None = None,
    pretrained: str | None = None,
) -> list[EvalRecord]:
    """Clean accuracy and robust accuracy under each of `attacks` (attack or suite names), one record each.

    With eps 0 or 0 steps, or no attacks, one clean-only record (attack "none") comes back.
    `indices` restricts the evaluation to those dataset positions (a shard); counts are then of the shard.
    Undecodable images are skipped and counted, or with `on_broken="fail"` stop the evaluation.
    `robust_counting` is "clean-and-robust" or "all" (module docstring); `protocol` and `pretrained` are
    copied into the records.
    """
    if robust_counting not in ROBUST_COUNTINGS:
        raise UsageError(f"robust counting must be one of {', '.join(ROBUST_COUNTINGS)}, got '{robust_counting}'")
    if robust_counting == "all" and defence != "none":  # the defence views attack clean-correct points only
        raise UsageError("robust counting 'all' is not available behind a test-time defence; "
                         "use clean-and-robust")
    threat = threat or ThreatModel()
    progress = progress or SilentProgress()
    attacks = check_attack_names(attacks) if threat.eps > 0 and threat.steps > 0 else []
    device = model.mean.device
    model.set_classes(data.classnames, templates or data.templates)
    model.eval()
    indexed = _IndexedDataset(data.dataset, indices)
    loader = torch.utils.data.DataLoader(
        indexed, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_skip_broken,
    )
    num_classes = len(data.classnames)
    tallies = {name: _Tally(attack=name, scores=_Scores(num_classes), every=robust_counting == "all")
               for name in attacks}
    judge: torch.nn.Module = model  # what classifies: the model, or the model behind the defence
    if defence != "none":  # both views of every attack (defences/adaptive.py), the defended model classifying
        from tgazsr_cli.defences import VIEWS, get_defence

        judge = get_defence(defence).build(model, defence_options, seed=threat.seed)
        tallies = {f"{name} ({view})": _Tally(attack=name, view=view, defended=judge, eot_samples=eot_samples,
                                              scores=_Scores(num_classes)) for name in attacks for view in VIEWS}
    warnings: list[str] = []
    clean_correct = total = skipped = 0
    clean_bins, clean_scores = CalibrationBins(), _Scores(num_classes)
    class_counts = torch.zeros(num_classes, dtype=torch.int64)
    started = time.monotonic()
    task = progress.task(f"{data.name} ({', '.join(attacks) or 'clean'})", len(indexed))
    for images, targets, dropped in loader:
        skipped += dropped
        if dropped and on_broken == "fail":
            raise RuntimeFailure(f"{dropped} image(s) of {data.name} could not be decoded; "
                                 "pass --on-broken skip to skip and count them")
        if images.numel() == 0:
            continue
        labels, ids = _split_targets(targets)
        images, labels = images.to(device), labels.to(device)
        if sanity and attacks and total == 0:
            warnings = _sanity_warnings(model, images, labels, threat)
        with torch.no_grad():
            clean_logits = judge(images)
            clean_hit = clean_logits.argmax(dim=1) == labels
        clean_bins.add(clean_logits, clean_hit)
        clean_scores.add(clean_logits, labels, clean_hit)
        class_counts += torch.bincount(labels.cpu(), minlength=num_classes)[:num_classes]
        every = torch.ones_like(clean_hit) if robust_counting == "all" else clean_hit
        keep = every.nonzero().squeeze(1)  # the points attacked
        robust_now = {}
        for name, tally in tallies.items():
            logits, hit = clean_logits.clone(), clean_hit.clone()  # clean-misclassified: the clean prediction
            if len(keep):
                robust = _attack_batch(name, model, images[keep], labels[keep], threat, ids[keep.cpu()], tally)
                tally.robust += int(robust.sum())
                logits[keep], hit[keep] = tally.logits.to(logits.dtype), robust
            tally.bins.add(logits, hit)
            tally.scores.add(logits, labels, hit)
            robust_now[name] = 100 * tally.robust
        clean_correct += int(clean_hit.sum())
        total += len(labels)
        shown = {"robust": min(robust_now.values()) / total} if robust_now else {}
        task.advance(len(labels) + dropped, clean=100 * clean_correct / total, **shown)
    task.close()
    seconds = round(time.monotonic() - started, 3)
    common = {"model": model_label, "dataset": data.name, "split": data.split, "num_examples": total,
              "clean_correct": clean_correct, "threat": threat.describe(), "batch_size": batch_size,
              "source": data.source, "skipped_images": skipped, "clean_bins": clean_bins.to_dict(),
              "clean_top5_correct": clean_scores.top5, "clean_per_class": clean_scores.as_list(),
              "class_counts": [int(v) for v in class_counts.tolist()], "robust_counting": robust_counting,
              "protocol": protocol, "pretrained": pretrained,
              "arch": getattr(getattr(model, "spec", None), "name", None)}  # a wrapped model may have no spec
    common["defence"] = None if defence == "none" else defence
    if not attacks:
        return [EvalRecord(attack="none", robust_correct=clean_correct, seconds=seconds,
                           robust_bins=clean_bins.to_dict(), robust_top5_correct=clean_scores.top5,
                           robust_per_class=clean_scores.as_list(), **common)]
    records = []
    for name, tally in tallies.items():
        extra: dict[str, Any] = {"attack_seconds": round(tally.seconds, 3)}
        name = tally.attack  # behind a defence the key also names the view: "pgd (adaptive)"
        if name in SUITES:
            extra["suite"] = [{"attack": member, **overrides} for member, overrides in get_suite(name)]
            extra["robust_after"] = tally.after_member
            extra["skipped_members"] = tally.skipped
        if tally.view is not None:
            from tgazsr_cli.defences.adaptive import view_facts

            extra.update(view_facts(tally.view, name, tally.defended, tally.eot_samples, defence_options))
        record_warnings = list(warnings)
        record_warnings += [f"suite member '{member}' skipped: {why}" for member, why in tally.skipped.items()]
        records.append(EvalRecord(attack=name, robust_correct=tally.robust, seconds=seconds,
                                  warnings=record_warnings, extra=extra, robust_bins=tally.bins.to_dict(),
                                  attack_view=tally.view, robust_top5_correct=tally.scores.top5,
                                  robust_per_class=tally.scores.as_list(), **common))
    return records


def evaluate_sharded(
    model: ClipClassifier,
    data: ImageClassificationData,
    **options: Any,
) -> list[EvalRecord]:
    """`evaluate_attacks` with the dataset split over torchrun's processes: each rank evaluates its contiguous
    shard and the exact integer counts are summed over ranks, so every rank returns the 1-process records
    (sanity warnings and timings are rank 0's). Without a process group it is `evaluate_attacks`."""
    from tgazsr_cli.runtime import distributed as dist
    if not dist.is_distributed():
        return evaluate_attacks(model, data, **options)
    shard = dist.shard_indices(len(data.dataset), dist.rank(), dist.world_size())  # type: ignore[arg-type]
    records = evaluate_attacks(model, data, indices=shard, **options)
    for record in records:
        members = sorted(record.extra.get("robust_after", {}))
        c = len(record.class_counts)  # every rank has the dataset's classes, so the same lengths
        counts = dist.all_reduce_sum([record.num_examples, record.clean_correct, record.robust_correct,
                                      record.skipped_images, record.clean_top5_correct, record.robust_top5_correct,
                                      *record.class_counts, *record.clean_per_class, *record.robust_per_class,
                                      *(record.extra["robust_after"][m] for m in members)])
        record.num_examples, record.clean_correct, record.robust_correct, record.skipped_images = counts[:4]
        record.clean_top5_correct, record.robust_top5_correct = counts[4:6]
        record.class_counts, record.clean_per_class, record.robust_per_class = (
            counts[6 + i * c:6 + (i + 1) * c] for i in range(3))
        if members:
            record.extra["robust_after"] = dict(zip(members, counts[6 + 3 * c:], strict=True))
        record.warnings = dist.broadcast_object(record.warnings)
        record.extra["processes"] = dist.world_size()
        record.clean_bins, record.robust_bins = all_reduce_bins(record.clean_bins), all_reduce_bins(record.robust_bins)
    return records
