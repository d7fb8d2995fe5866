"""What a tgazsr checkpoint says about itself: the typed `CheckpointMetadata`, its schema versions, and the one
reader of the JSON document in a checkpoint's safetensors header.

The header key CHECKPOINT_KEY ("tgazsr") holds one JSON document: the fields of `CheckpointMetadata` plus the
container's own keys (LAYOUT_KEYS: format, format_version, the optimiser/RNG layout and the tensor digests
`checkpoint` writes).
`header_of` writes that document and `read_header_document` is its one reader: documents written by every earlier
release read back as the current schema (`CheckpointMetadata.from_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata as dist
from pathlib import Path
from typing import Any

from tgazsr_cli.errors import UsageError
from tgazsr_cli.runtime.atomic import check_json, read_header
from tgazsr_cli.weights.files import CHECKPOINT_KEY

FORMAT, FORMAT_VERSION = "tgazsr-checkpoint", 1  # the container (tensor layout and header document)
METADATA_KEY = CHECKPOINT_KEY  # the safetensors header key of the document
METADATA_SCHEMA = 2  # version of CheckpointMetadata's fields; a document without "schema" is version 1
KINDS = ("training", "model")
LAYOUT_KEYS = ("format", "format_version", "optimizer", "rng", "digests")  # the container's keys, not metadata


def library_versions() -> dict[str, str]:
    """Recorded so that a result can be traced to the code that produced it."""
    versions = {"python": platform.python_version()}
    for key, package in (("tgazsr", "tgazsr"), ("torch", "torch"), ("open_clip", "open_clip_torch"),
                         ("safetensors", "safetensors")):
        try:
            versions[key] = dist.version(package)
        except dist.PackageNotFoundError:
            versions[key] = "unknown"
    return versions


@dataclass
class CheckpointMetadata:
    """What a tgazsr checkpoint says about itself: enough to rebuild the model and to resume its run."""

    kind: str  # "training" (resumable: optimiser and RNG state inside) or "model"
    method: str  # the training method, or "converted" for `tgazsr convert`
    model_name: str
    model_cfg: dict[str, Any]
    pretrained: str | None = None
    preprocess_cfg: dict[str, Any] = field(default_factory=dict)
    logit_scale: float = 100.0
    recipe: dict[str, Any] = field(default_factory=dict)  # the resolved recipe (empty for converted files)
    classnames: list[str] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    total_steps: int = 0
    skipped_steps: int = 0
    skipped_images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form facts (e.g. the file a convert read)
    versions: dict[str, str] = field(default_factory=library_versions)  # of the writing process
    schema: int = METADATA_SCHEMA

    @property
    def activation(self) -> str:
        """The image and text towers' MLP activation: OpenAI's weights need QuickGELU."""
        return "quick_gelu" if self.model_cfg.get("quick_gelu") else "gelu"

    def check_kind(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"checkpoint kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "checkpoint") -> CheckpointMetadata:
        """Read any schema version this release knows; version 1 kept the skip counters under "extra".

        The container's LAYOUT_KEYS are ignored; keys this release does not know are kept under "extra"."""
        data = {k: v for k, v in data.items() if k not in LAYOUT_KEYS}
        schema = data.get("schema", 1)
        if not isinstance(schema, int) or schema > METADATA_SCHEMA:
            raise UsageError(f"{where} has metadata schema {schema!r}; this tgazsr reads up to {METADATA_SCHEMA} "
                             "(upgrade tgazsr)")
        if schema == 1:
            extra = dict(data.get("extra") or {})
            data.setdefault("skipped_steps", extra.pop("skipped_steps", 0))
            data.setdefault("skipped_images", extra.pop("skipped_images", 0))
            data.pop("scheduler", None)  # v1 repeated (schedule name, step): both are in the recipe and step
            data["extra"] = extra
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = [n for n in ("kind", "method", "model_name", "model_cfg") if n not in data]
        if missing:
            raise UsageError(f"{where} metadata lacks {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in names}
        known["extra"] = {**known.get("extra", {}), **{k: data[k] for k in unknown}}  # kept, not lost
        known["schema"] = METADATA_SCHEMA
        return cls(**known)


def header_of(metadata: CheckpointMetadata, layout: Mapping[str, Any]) -> dict[str, str]:
    """The safetensors header metadata of a checkpoint: one JSON document of `metadata` and the container
    `layout` (its optimiser/RNG entries); anything JSON cannot hold is a UsageError, before any write."""
    metadata.check_kind()
    document = {**metadata.to_dict(), **layout, "format": FORMAT, "format_version": FORMAT_VERSION}
    check_json(document, "metadata")
    return {METADATA_KEY: json.dumps(document, allow_nan=False)}


def read_header_document(path: Path | str) -> tuple[CheckpointMetadata, dict[str, Any]]:
    """(the typed metadata, the container layout) of a checkpoint, from its header alone (no tensor data).

    The one reader of checkpoint metadata: format and schema are checked here, and any earlier schema upgraded."""
    path = Path(path)
    raw = read_header(path).get(METADATA_KEY)
    if raw is None:
        raise UsageError(f"'{path}' is a safetensors file but not a tgazsr checkpoint "
                         f"(no '{METADATA_KEY}' metadata)")
    try:
        document = json.loads(raw)
    except ValueError:
        raise UsageError(f"'{path}' has corrupt tgazsr metadata (not JSON)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UsageError(f"'{path}' is not a tgazsr checkpoint (unexpected metadata format)")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UsageError(f"'{path}' has checkpoint format_version {version!r}; this tgazsr reads up to "
                         f"{FORMAT_VERSION} (upgrade tgazsr)")
    layout = {k: document[k] for k in LAYOUT_KEYS if k in document}
    return CheckpointMetadata.from_dict(document, f"'{path}'"), layout


def read_metadata(path: Path | str) -> CheckpointMetadata:
    """A checkpoint's typed metadata, from its header alone (no tensor data is read)."""
    return read_header_document(path)[0]
