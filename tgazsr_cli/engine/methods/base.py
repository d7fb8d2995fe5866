"""What every training method provides, and the registry that finds methods by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from tgazsr_cli.engine.attacks import ThreatModel
from tgazsr_cli.engine.errors import UsageError, unknown_name
from tgazsr_cli.engine.model import ClipClassifier
from tgazsr_cli.engine.recipe import Recipe, build_section


@dataclass
class NoOptions:
    """A method without options of its own."""


@dataclass
class LossOutput:
    """The scalar to minimise plus its named parts (detached 0-d tensors: read on the host only when logged)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainingMethod:
    """A method owns its trainable model, its frozen teacher (if any) and its loss terms."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions  # a dataclass of method-specific settings (recipe `method_options`)
    # Why the loss is not a mean of per-example terms, if it is not: then averaging per-rank gradients
    # (DDP) would not give the 1-process update, and torchrun refuses the method.
    not_shardable: ClassVar[str | None] = None

    def __init__(self, model: ClipClassifier, recipe: Recipe) -> None:
        self.model = model
        self.recipe = recipe
        self.options: Any = build_section(self.Options, recipe.method_options, "method_options.")
        self.teacher: ClipClassifier | None = None
        self.class_templates: list[list[str]] | None = None  # per-class prompts of a mixed dataset

    def describe_options(self) -> dict[str, Any]:
        return asdict(self.options)

    @property
    def train_threat(self) -> ThreatModel:
        attack = self.recipe.attack
        return ThreatModel(eps=attack.eps, steps=attack.steps, step_size=attack.step_size)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The image tower (or its last k tensors); the text tower and logit scale stay frozen (spec §3)."""
        return self.model.image_parameters(self.recipe.optim.last_num_ft)

    def setup(self) -> None:
        """Freeze everything but the trainable parameters; subclasses add their teacher."""
        self.model.freeze_all_but(self.trainable_parameters())

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        raise NotImplementedError


METHODS: dict[str, type[TrainingMethod]] = {}


def register_method(cls: type[TrainingMethod]) -> type[TrainingMethod]:
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[TrainingMethod]:
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return METHODS[name]


def build_method(
    model: ClipClassifier, recipe: Recipe, class_templates: list[list[str]] | None = None
) -> TrainingMethod:
    name = recipe.method
    if recipe.loss.attention == "visual":  # reference `--atten_methods visual`
        if name not in ("tga-zsr", "vision-tga"):
            raise UsageError(f"loss.attention=visual applies to tga-zsr only, not to '{name}'")
        name = "vision-tga"
    method = get_method(name)(model, recipe)
    method.class_templates = class_templates
    method.setup()
    return method


MethodFactory = Callable[[ClipClassifier, Recipe], TrainingMethod]
