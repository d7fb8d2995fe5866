"""What every source lookup hands back: one `datasets.Dataset` split plus where it came from.

The hub, parquet files, save_to_disk folders and image folders all end here, so everything after the file
lookup (columns, labels, class names, subsets, decoding) is one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets


@dataclass
class LocalManifest:
    """Facts found beside local files: a `manifest.json` (built-in layout) or a `classnames.txt`."""

    path: Path
    name: str | None = None
    classnames: tuple[str, ...] | None = None
    templates: tuple[str, ...] | None = None
    resize_mode: str | None = None
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class OpenedSource:
    """One split of one source, opened through the `datasets` library."""

    table: datasets.Dataset
    description: str  # hub id or path, and the split actually read
    split: str  # the split's name at the source
    name: str  # default dataset name for records
    base_dir: Path | None = None  # relative image paths are resolved against it
    skipped: int = 0  # examples dropped while listing files (e.g. a listed image that is missing)
    manifest: LocalManifest | None = None
