"""Readers of the places data comes from: the hub, and one module per on-disk layout, each registering itself.

Layouts: `builtin` (a shipped folder), `saved` (`save_to_disk`), `torchvision` (torchvision's download folders:
`cifar-10-batches-py`, `stl10_binary`, ...), `parquet`, `webdataset` (`.tar` shards), `sun397` (the SUN397
archive), `folders` (image folders, incl. the original Tiny-ImageNet download). `hub` is
the one source that is not a folder on disk, so it registers no reader. The registry lives in `base.py`.
"""

from __future__ import annotations

from tgazsr_cli.data.sources.base import (
    LocalManifest,
    OpenedSource,
    Reader,
    reader_for,
    readers,
    register_reader,
    unregister_reader,
)

__all__ = ["LocalManifest", "OpenedSource", "Reader", "reader_for", "readers", "register_reader",
           "unregister_reader"]
