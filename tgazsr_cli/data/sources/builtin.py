"""Datasets shipped inside the package: `builtin/<name>/` with a `manifest.json` beside its split parquet files.

The manifest = {name, description, classnames, templates, resize_mode, license, provenance, num_<split>} is the
folder's dataset file: every such folder becomes a registered dataset (`register_shipped`, called when
`tgazsr_cli.data` is imported), read through the same parquet code as a downloaded copy.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tgazsr_cli.data.sources.base import MANIFEST, OpenedSource, Reader, read_manifest, register_reader
from tgazsr_cli.data.sources.parquet import SUFFIX, open_parquet, parquet_splits
from tgazsr_cli.data.specs import DEFAULT_TEMPLATES, DatasetSpec, SplitSpec, is_registered, register_dataset
from tgazsr_cli.data.splits import canonical_split
from tgazsr_cli.errors import TgazsrError, UsageError

BUILTIN_ROOT = Path(__file__).parents[1] / "builtin"


def spec_from_folder(folder: Path) -> DatasetSpec:
    """The spec of one shipped folder; UsageError when its manifest is missing or incomplete."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.path.name != MANIFEST:
        raise UsageError(f"{folder} has no {MANIFEST}")
    if manifest.classnames is None:
        raise UsageError(f"{manifest.path}: 'classnames' is required")
    splits = {}
    for file in sorted(folder.glob(f"*{SUFFIX}")):
        canonical = canonical_split(file.stem)
        if canonical is not None:
            splits[canonical] = SplitSpec(canonical, manifest.sizes.get(file.stem))
    if not splits:
        raise UsageError(f"{folder} has no train.parquet / test.parquet")
    return DatasetSpec(
        name=manifest.name or folder.name,
        classnames=manifest.classnames,
        templates=manifest.templates or DEFAULT_TEMPLATES,
        resize_mode=manifest.resize_mode or "resize_crop",
        hub_id=None,
        splits=splits,
        description=manifest.description,
        local_path=str(folder),
        layout_hint=f"train.parquet / test.parquet beside a {MANIFEST}",
        extra=manifest.extra,
        defined_in=str(manifest.path),
    )


def discover_shipped(root: Path = BUILTIN_ROOT) -> list[DatasetSpec]:
    """Specs of every `root/<name>/manifest.json` folder, sorted by folder name."""
    if not root.is_dir():
        return []
    return [spec_from_folder(folder) for folder in sorted(root.iterdir()) if (folder / MANIFEST).is_file()]


def register_shipped(root: Path = BUILTIN_ROOT, *, strict: bool = False) -> list[str]:
    """Register the shipped datasets under `root`; a broken folder is a warning (an error when `strict`)."""
    names = []
    folders = sorted(root.iterdir()) if root.is_dir() else []
    for folder in folders:
        if not (folder / MANIFEST).is_file():
            continue
        try:
            spec = spec_from_folder(folder)
            if is_registered(spec.name) and not strict:
                continue
            register_dataset(spec)
        except TgazsrError as error:
            if strict:
                raise
            warnings.warn(f"skipping shipped dataset {folder.name}: {error}", stacklevel=2)
            continue
        names.append(spec.name)
    return names


def is_shipped_folder(path: Path) -> bool:
    """A folder with a manifest.json and split parquet files directly inside (the shipped layout)."""
    return path.is_dir() and (path / MANIFEST).is_file() and next(path.glob(f"*{SUFFIX}"), None) is not None


def open_shipped(path: Path, split: str) -> OpenedSource:
    """One split of a shipped folder: its parquet files, described by its manifest."""
    return open_parquet(path, split)


register_reader(Reader("builtin", is_shipped_folder, open_shipped, parquet_splits, priority=5,
                       description=f"train.parquet / test.parquet beside a {MANIFEST} (the shipped layout)"))
