"""A local Hugging Face hub cache filled from a folder, in the layout `huggingface_hub` itself writes.

<cache>/models--ORG--NAME/blobs/<hash>           the file contents (sha256 for weights, git blob sha1 otherwise)
<cache>/models--ORG--NAME/snapshots/<commit>/F   a relative symlink to ../../blobs/<hash>
<cache>/models--ORG--NAME/refs/main              the commit the `main` revision points at
With HF_HUB_OFFLINE=1, `hf_hub_download` resolves `main` through refs/ and returns the snapshot path.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def _blob_name(data: bytes, name: str) -> str:
    if name.endswith((".safetensors", ".bin", ".pth")):  # LFS files are stored under their sha256
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # the git object id of a regular file


def fill_hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Put every file of `folder` into `cache` as the `main` revision of model repository `repo_id`."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    commit = hashlib.sha1(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in files:
        data = path.read_bytes()
        blob = repo / "blobs" / _blob_name(data, path.name)
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / path.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def use_offline_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point this process (and any child process) at `cache`, offline: what HF_HUB_CACHE + HF_HUB_OFFLINE=1 do.

    huggingface_hub reads both variables once at import, so the module constants are patched too.
    """
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
