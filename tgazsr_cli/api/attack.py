"""The `tgazsr attack` entry point: attack a seeded spread of a dataset's examples and save what came out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tgazsr_cli.attacks import ThreatModel, check_attack_or_suite
from tgazsr_cli.errors import UsageError
from tgazsr_cli.runtime.output import OutputFolder

# What `attack` writes into its folder; with --force these are replaced, nothing else is touched.
ATTACK_FILES = ("*-clean.png", "*-adversarial.png", "*-difference.png", "adversarial.safetensors",
                "predictions.json")


@dataclass
class AttackRequest:
    dataset: str
    checkpoint: str | None = None
    model: str | None = None
    pretrained: str | None = None
    data_dir: str | None = None
    split: str = "test"
    attack: str = "pgd"
    threat: ThreatModel = field(default_factory=ThreatModel)
    num_examples: int = 16
    device: str = "auto"
    output: Path = Path("adversarial")
    force: bool = False
    verify: bool = True  # check each checkpoint tensor against the digest written with it (runtime/digest.py)
    threads: int = 0  # torch's CPU threads on a CPU run; 0: OMP_NUM_THREADS, else automatic (runtime/threads.py)


@dataclass
class AttackResult:
    model_label: str
    dataset: str
    summary: object  # adversarial.AttackSummary
    requested: int
    notices: list[str] = field(default_factory=list)


def spread_indices(labels: list[int], count: int, seed: int) -> list[int]:
    """`count` example indices spread over the classes: a seeded shuffle of each class, taken round-robin
    (so -n 8 on a 5-class set shows every class, not the first 8 images of one class)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    queues = [[members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
              for _, members in sorted(by_class.items())]
    picked: list[int] = []
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return sorted(picked)


def check_request(request: AttackRequest) -> None:
    """Errors that need no model or data, raised before torch is imported."""
    from tgazsr_cli.api.train import check_dataset_name

    check_attack_or_suite(request.attack)
    if not request.checkpoint and not request.model:
        raise UsageError("name the model to attack: --checkpoint RUN_DIR|FILE or --model NAME")
    check_dataset_name(request.dataset)
    OutputFolder(request.output, ATTACK_FILES, force=request.force).validate()


def run_attack(request: AttackRequest) -> AttackResult:
    """Attack and save. The output folder is made (and, with `force`, its old results removed) only once the
    model and the data have loaded, and a folder this call made is removed again if nothing was written. The
    CPU thread count is among the notices (after the work, so an error stays the only line)."""
    check_request(request)

    from tgazsr_cli.checkpoints.loading import load_model
    from tgazsr_cli.data import load_image_dataset
    from tgazsr_cli.runtime.device import pick_device
    from tgazsr_cli.runtime.threads import use_threads
    from tgazsr_cli.viz.examples import attack_and_save

    device = pick_device(request.device)
    loaded = load_model(checkpoint=request.checkpoint, model=request.model, pretrained=request.pretrained,
                        device=device, verify=request.verify)
    data = load_image_dataset(request.dataset, split=request.split, image_size=loaded.classifier.image_size,
                              data_dir=request.data_dir)
    indices = spread_indices(data.labels(), request.num_examples, request.threat.seed)
    output = OutputFolder(request.output, ATTACK_FILES, force=request.force)
    output.check()
    threads = use_threads(device, request.threads)
    try:
        summary = attack_and_save(loaded.classifier, data, request.output, attack=request.attack,
                                  threat=request.threat, indices=indices)
    except BaseException:  # a failure or Ctrl-C before the first file: no empty folder is left behind
        output.discard_if_empty()
        raise
    notices = [threads.describe()] if threads else []
    if len(indices) < request.num_examples:
        notices.append(f"{data.name} ({request.split}) has only {len(indices)} examples")
    if summary.num_examples < len(indices):
        notices.append(f"{len(indices) - summary.num_examples} of the chosen images could not be decoded and "
                       "were left out")
    return AttackResult(loaded.label, data.name, summary, request.num_examples, notices)
