"""What every training method provides, and the registry that finds methods by name.

Method modules import torch only inside the functions that compute, so that listing the methods, checking a
recipe's `method_options` and `--print-config` never pay for importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from tgazsr_cli.attacks.threat import ThreatModel
from tgazsr_cli.config import Recipe, build_section
from tgazsr_cli.errors import unknown_name
from tgazsr_cli.runtime.registry import import_plugins

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tgazsr_cli.models.classifier import ClipClassifier


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
    # a dataclass of the method's own settings (recipe `method_options`), typed like the recipe's sections:
    # Literal choices and Annotated bounds (config.fields) are checked by the one coercer
    Options: ClassVar[type] = NoOptions
    # Why the loss is not a mean of per-example terms, if it is not: then averaging per-rank gradients
    # (DDP) would not give the 1-process update, and torchrun refuses the method.
    not_shardable: ClassVar[str | None] = None

    def __init__(self, model: ClipClassifier, recipe: Recipe) -> None:
        self.model = model
        self.recipe = recipe
        self.options: Any = build_section(self.Options, recipe.method_options, "method_options.")
        self.teacher: ClipClassifier | None = None
        self.class_templates: list[list[str]] | None = None  # per-class prompts of a mixed dataset

    @property
    def train_threat(self) -> ThreatModel:
        attack = self.recipe.attack
        return ThreatModel(eps=attack.eps, steps=attack.steps, step_size=attack.step_size)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The image tower, its last k tensors (`last-K`) or its patch embedding and first K blocks (`first-K`);
        the text tower and logit scale stay frozen (spec §3)."""
        return self.model.image_parameters(self.recipe.last_k, first_blocks=self.recipe.first_k)

    def setup(self) -> None:
        """Freeze everything but the trainable parameters; subclasses add their teacher."""
        self.model.freeze_all_but(self.trainable_parameters())

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        raise NotImplementedError


METHODS: dict[str, type[TrainingMethod]] = {}


def register_method(cls: type[TrainingMethod]) -> type[TrainingMethod]:
    """Class decorator: add a method to the registry under its `name` (once)."""
    if cls.name in METHODS:
        raise ValueError(f"method '{cls.name}' is already registered (by {METHODS[cls.name].__module__})")
    METHODS[cls.name] = cls
    return cls


def all_methods() -> dict[str, type[TrainingMethod]]:
    """Every registered method by name, plugins included."""
    import_plugins()
    return METHODS


def get_method(name: str) -> type[TrainingMethod]:
    """The method registered as `name` (case-insensitive); UsageError with a did-you-mean otherwise."""
    import_plugins()
    found = METHODS.get(name) or METHODS.get(name.lower())
    if found is None:
        raise unknown_name("method", name, METHODS)
    return found


def resolve_method_options(recipe: Recipe) -> Recipe:
    """The recipe with its method's canonical name and every option of that method, checked, defaults filled in.

    Settings read from a 0.1-layout `loss:` section (`recipe.legacy_options`) are kept where the method declares
    them, which is what that release used (config.legacy)."""
    method = get_method(recipe.method)
    declared = {f.name for f in fields(method.Options)}
    given = {**{k: v for k, v in recipe.legacy_options.items() if k in declared}, **recipe.method_options}
    options = build_section(method.Options, given, "method_options.")
    return replace(recipe, method=method.name, method_options=asdict(options), legacy_options={})


def build_method(
    model: ClipClassifier, recipe: Recipe, class_templates: list[list[str]] | None = None
) -> TrainingMethod:
    method = get_method(recipe.method)(model, resolve_method_options(recipe))
    method.class_templates = class_templates
    method.setup()
    return method
