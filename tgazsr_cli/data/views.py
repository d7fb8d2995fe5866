"""How an evaluation protocol reads a dataset: preprocessing, sample selection and class-name overrides.

A dataset file says what a dataset is; a protocol (protocols/) says how one paper's code reads it. These
dataclasses carry the protocol's side into `load_image_dataset` without the data layer knowing protocols.
Sizes are written for a 224-pixel model, as the references are, and scaled to the model's input size.
Torch-free: `tgazsr protocols NAME --json` prints them without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tgazsr_cli.errors import UsageError

Interpolation = Literal["bilinear", "bicubic"]
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic")
SELECTION_MODES: tuple[str, ...] = ("all", "seeded", "stream", "subset")
REFERENCE_SIZE = 224  # the input size the references' numbers (resize 256, crop 224) are written for


@dataclass(frozen=True)
class Preprocessing:
    """PIL image -> [0, 1] tensor. `resize`: an int resizes the short side, [h, w] resizes to exactly that;
    `crop`: a centre crop (None: none). With `native_resolution` the image keeps its own size (the attack works
    on those pixels) and the model resizes it to its input size inside, with `interpolation` and `antialias`."""

    resize: int | tuple[int, int] = (224, 224)
    interpolation: Interpolation = "bilinear"
    crop: int | None = None
    native_resolution: bool = False
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise UsageError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got '{self.interpolation}'")
        sizes = self.resize if isinstance(self.resize, tuple) else (self.resize,)
        if len(sizes) not in (1, 2) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise UsageError(f"resize must be a positive size or [height, width], got {self.resize!r}")
        if self.crop is not None and (isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 1):
            raise UsageError(f"crop must be a positive size or null, got {self.crop!r}")

    @classmethod
    def of_resize_mode(cls, resize_mode: str) -> Preprocessing:
        """A dataset file's `resize_mode`: resize_crop = Resize(256) + CenterCrop(224), resize = Resize((224,
        224)); bilinear, torchvision's default (spec §3, §6)."""
        if resize_mode == "resize_crop":
            return cls(resize=256, crop=224)
        return cls(resize=(224, 224), crop=None)

    def scaled(self, image_size: int) -> Preprocessing:
        """The same steps for a model of `image_size` pixels (the sizes are written for 224)."""
        def scale(size: int) -> int:
            return max(1, round(size * image_size / REFERENCE_SIZE))

        resize = tuple(scale(s) for s in self.resize) if isinstance(self.resize, tuple) else scale(self.resize)
        return Preprocessing(resize=resize, interpolation=self.interpolation,  # type: ignore[arg-type]
                             crop=None if self.crop is None else scale(self.crop),
                             native_resolution=self.native_resolution, antialias=self.antialias)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["resize"] = list(self.resize) if isinstance(self.resize, tuple) else self.resize
        return data


@dataclass(frozen=True)
class Selection:
    """Which examples are scored: `all`; `seeded` (`count` of them, our seeded subset, sorted); `stream` (the first
    `count` of the reference's seeded shuffled order: data/selection.py); `subset` (a named shipped id list)."""

    mode: str = "all"
    count: int | None = None
    seed: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in SELECTION_MODES:
            raise UsageError(f"selection mode must be one of {', '.join(SELECTION_MODES)}, got '{self.mode}'")
        if self.mode in ("seeded", "stream") and (not isinstance(self.count, int) or self.count < 1):
            raise UsageError(f"a {self.mode} selection needs a positive count, got {self.count!r}")
        if self.mode == "subset" and not self.name:
            raise UsageError("a subset selection needs the subset's name")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise UsageError(f"selection seed must be an integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class DatasetView:
    """A protocol's reading of one registered dataset; every field left None keeps the dataset file's own."""

    classnames: tuple[str, ...] | None = None  # in the dataset file's label order, after merge_classes
    templates: tuple[str, ...] | None = None
    merge_classes: dict[str, str] = field(default_factory=dict)  # class -> the class it is folded into
    preprocessing: Preprocessing | None = None
    selection: Selection | None = None
    hub: str | None = None  # another hub copy than the dataset file's (e.g. VTAB's split of a set)
    hub_split: str | None = None
