"""The recipe schema: typed training and evaluation settings, each field's choices and bounds beside it.

Defaults are the paper's TGA-ZSR row (spec §3). Reading files and `--set` overrides is `config.loading`;
a method's own settings (`method_options`) are checked by the method's Options where a run is planned.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import yaml

from tgazsr_cli.config.fields import (
    BooleanWords,
    Bounds,
    Check,
    NonNegative,
    NonNegativeInt,
    Positive,
    PositiveInt,
)

PAPER_TEMPLATE = "This is a photo of a {}"  # spec §3: training prompt
Eps = Annotated[float, Bounds(ge=0, le=64, unit="1/255")]
Precision = Literal["fp32", "bf16"]
# torch's CPU threads on a CPU run; 0: automatic from the free cores, unless OMP_NUM_THREADS is set
# (runtime/threads.py). The bound only catches typos: no machine has more.
Threads = Annotated[int, Bounds(ge=0, le=4096)]
TRAINABLE_FORMS = "full, last-k, lora, first-k"  # last-k and first-k are written with their k: last-4, first-1


def no_modules(value: list[str]) -> str | None:
    return None if value else "must name the image-tower modules to adapt (c_fc, c_proj, attn)"


def trainable_problem(value: str) -> str | None:
    """`full`, `lora`, `last-K` (the image tower's last K parameter tensors, K >= 1) or `first-K` (its patch
    embedding and first K transformer blocks, K >= 1; K is checked against the model when it is built)."""
    if value in ("full", "lora") or re.fullmatch(r"(last|first)-[1-9]\d*", value):
        return None
    return f"must be one of {TRAINABLE_FORMS} (write last-k and first-k with their k, e.g. last-4, first-1)"


def lora_layers_problem(value: list[int]) -> str | None:
    if not value:
        return "must list at least one block index, or be null for every block"
    return "must not repeat a block index" if len(set(value)) != len(value) else None


def eval_every_problem(value: str) -> str | None:
    """`off`, `epoch` or a positive number of optimiser steps (`0` reads as off)."""
    if value in ("off", "epoch") or re.fullmatch(r"\d+", value):
        return None
    return "must be off, epoch or a positive number of steps"


@dataclass
class ModelConfig:
    name: str = "ViT-B-32"
    pretrained: str | None = "openai"
    logit_scale: Positive = 100.0  # spec §3: fixed at exp(ln 100), never trained


@dataclass
class DataConfig:
    dataset: str = "tinyimagenet"
    data_dir: str | None = None
    split: str = "train"
    templates: list[str] = field(default_factory=lambda: [PAPER_TEMPLATE])
    # the class names prompted in training (null: the dataset's): a list in its label order, or those evaluation
    # protocol `classnames_protocol` gives this dataset (AGFT trains ImageNet with its map_clsloc names)
    classnames: list[str] | None = None
    classnames_protocol: str | None = None
    batch_size: PositiveInt = 128
    num_workers: NonNegativeInt = 4
    limit: PositiveInt | None = None
    on_broken: Literal["skip", "fail"] = "skip"  # an image that cannot be decoded: skip and count it, or fail
    cache: Literal["off", "disk", "device"] = "off"  # decode once into a uint8 array file (data/decoded_cache.py)
    cache_dir: str | None = None  # default $TGAZSR_CACHE/decoded, else ~/.cache/tgazsr/decoded
    cache_size: PositiveInt | None = None  # stored side S (resized on the device); null: the exact model input


@dataclass
class AttackConfig:
    """The training-time attack (spec §3): PGD-2 at 1/255, step 1/255, against the current model."""

    eps: Eps = 1.0
    steps: NonNegativeInt = 2
    step_size: Positive = 1.0


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: Positive = 1e-4
    momentum: NonNegative = 0.9
    weight_decay: NonNegative = 0.0
    warmup_steps: NonNegativeInt = 1000
    schedule: Literal["cosine", "constant"] = "cosine"
    epochs: PositiveInt = 10
    max_steps: PositiveInt | None = None  # stop early after this many optimiser steps (quick runs)


@dataclass
class TrainConfig:
    seed: int = 0
    precision: Precision = "fp32"  # bf16: autocast, losses stay fp32
    save_every: PositiveInt = 500  # optimiser steps between resumable checkpoints
    keep_last: PositiveInt = 3
    log_every: PositiveInt = 10
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: Threads = 0
    on_nonfinite: Literal["stop", "skip"] = "stop"  # stop (last good checkpoint kept) | skip (counted)
    # torch.compile mode of the image towers' transformer; slow first steps, faster after.
    # true / false (recipes written before it took a mode) read as default / off.
    compile: Annotated[Literal["off", "default", "reduce-overhead", "max-autotune"],
                       BooleanWords(((True, "default"), (False, "off")))] = "off"
    grad_checkpointing: bool = False  # recompute image-tower activations in backward: less memory, slower
    # which image-tower parameters train: full | last-K (its last K tensors, reference --last_num_ft) |
    # lora (adapters on the image tower, `lora:`) | first-K (patch embedding + first K blocks of a ViT tower)
    trainable: Annotated[str, Check(trainable_problem)] = "full"
    # watching a run (docs/watching.md): metrics.jsonl always; TensorBoard (RUN/tensorboard/) and W&B on request
    report_to: list[Literal["tensorboard", "wandb"]] = field(default_factory=list)
    # validation during training: every N optimiser steps, every epoch, or off (a bare YAML `off` reads as off)
    eval_every: Annotated[str, BooleanWords(((False, "off"),)), Check(eval_every_problem)] = "off"
    eval_set: str | None = None  # the dataset validated on; null: the training dataset (data.dataset, data_dir)
    eval_split: str | None = None  # null: its validation split, else its test split
    eval_images: PositiveInt = 1000  # a seeded subset (train.seed) of this many images, the same at every check
    # which validation number picks RUN/best.safetensors; val_harmonic: harmonic mean of clean and robust
    best_metric: Literal["val_robust", "val_clean", "val_harmonic"] = "val_harmonic"


@dataclass
class LoraConfig:
    """LoRA adapters (peft) on the image tower when train.trainable=lora; see models/lora.py."""

    rank: PositiveInt = 8
    alpha: Positive = 16.0
    dropout: Annotated[float, Bounds(ge=0, lt=1)] = 0.0
    target_modules: Annotated[list[str], Check(no_modules)] = field(default_factory=lambda: ["c_fc", "c_proj", "attn"])
    # the image tower's transformer blocks (0-based) that get adapters; null: every block. Checked against the
    # model's block count when the adapters are applied.
    layers: Annotated[list[NonNegativeInt], Check(lora_layers_problem)] | None = None


@dataclass
class EvalConfig:
    # a published evaluation protocol (protocols/; `tgazsr protocols`): its datasets, class names, templates,
    # preprocessing, selection and attack replace this section's, flags still override
    protocol: str | None = None
    as_published: bool = False  # the protocol's reference choices that inflate numbers (fp16 attack gradients...)
    datasets: list[str] = field(default_factory=lambda: ["tinyimagenet"])
    split: str = "test"
    data_dir: str | None = None
    attack: str = "pgd"
    eps: Eps = 1.0
    steps: NonNegativeInt = 100
    step_size: Positive = 1.0
    restarts: PositiveInt = 1  # restarts of every attack (suites set their own; `tgazsr attacks` says which use them)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    loss_reduction: Literal["sum", "mean"] = "sum"  # the attack's CE over a batch; mean underflows under fp16
    robust_counting: Literal["clean-and-robust", "all"] = "clean-and-robust"  # all: attack every image
    batch_size: PositiveInt = 256
    limit: PositiveInt | None = None
    seed: int = 0
    threads: Threads = 0
    # a test-time defence in front of the model (defences/registry.py; `tgazsr eval --defence`); with one, every
    # attack is reported twice: non-adaptive (crafted on the bare model) and adaptive (through the defence)
    defence: str = "none"
    defence_options: dict[str, Any] = field(default_factory=dict)  # checked against the defence's Options
    # EOT draws per gradient of the adaptive attack on a randomised defence (AutoAttack's rand version: 20)
    eot_samples: Annotated[int, Bounds(ge=1, le=1000)] = 20


@dataclass
class Recipe:
    method: str = "tga-zsr"
    description: str = ""
    # the method's own settings, checked against its Options dataclass where a run is planned
    method_options: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # settings of a 0.1-layout `loss:` section, kept until the method is known (config.legacy); never saved
    legacy_options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("legacy_options")
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def last_k(self) -> int:
        """How many of the image tower's last tensors train under `train.trainable: last-K`; 0 otherwise."""
        mode = self.train.trainable
        return int(mode.removeprefix("last-")) if mode.startswith("last-") else 0

    @property
    def first_k(self) -> int:
        """How many of the image tower's first blocks train under `train.trainable: first-K`; 0 otherwise."""
        mode = self.train.trainable
        return int(mode.removeprefix("first-")) if mode.startswith("first-") else 0
