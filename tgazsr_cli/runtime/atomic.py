"""Durable file writes and safe safetensors reads shared by checkpoints, exports and adversarial examples.

Writes are atomic (temporary sibling, fsync, rename, fsync of the folder), so a kill mid-save never leaves a
partial file under the final name, and files get the usual umask-derived mode (group-readable on clusters).
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from tgazsr_cli.errors import RuntimeFailure, UsageError, first_line

if TYPE_CHECKING:
    import torch


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


FILE_MODE = 0o666 & ~_umask()


def check_json(value: Any, where: str) -> None:
    """Reject what JSON cannot hold or would corrupt (objects, NaN, non-string keys), naming where it is.

    Tuples are allowed and come back as lists (torch accepts list `betas` in param_groups).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"checkpoint {where} is {value}, which JSON cannot hold")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"checkpoint {where} has a non-string key {key!r} (JSON keys are strings)")
            check_json(item, f"{where}[{key!r}]")
        return
    raise UsageError(f"checkpoint {where} is a {type(value).__name__}, which is not JSON-serialisable")


def owned_tensors(tensors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, one storage each: safetensors refuses shared storage (tied weights) and strides."""
    import torch

    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise UsageError(f"cannot save '{key}': a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen or not tensor.is_contiguous():
            tensor = tensor.contiguous().clone()
            pointer = tensor.untyped_storage().data_ptr()
        seen.add(pointer)
        out[key] = tensor
    return out


def fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some filesystems cannot open folders, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# `.{name}.{pid}.{8 hex}.tmp`: the pid says whose write it is, so a resume can tell a killed save's leftover from
# a file another live process is still writing
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temp_sibling(path: Path) -> Path:
    """The hidden name `atomic_write` writes `path` under before renaming it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (a zombie or another user's process counts as alive)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate it on Windows: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temp_files(directory: Path) -> list[Path]:
    """Temporary files of `atomic_write` in `directory` whose writer is no longer running (a kill mid-save)."""
    if not directory.is_dir():
        return []
    stale = []
    for path in sorted(directory.iterdir()):
        match = TEMP_NAME.match(path.name)
        if match and path.is_file():
            pid = int(match["pid"])
            if pid != os.getpid() and not pid_alive(pid):
                stale.append(path)
    return stale


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete `stale_temp_files(directory)`; returns what was removed."""
    removed = []
    for path in stale_temp_files(directory):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RuntimeFailure(f"cannot remove the unfinished file {path}: {exc.strerror or exc}") from exc
        removed.append(path)
    return removed


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` for a hidden sibling, fsync it, rename it over `path`: never a partial file under `path`.

    Errors and Ctrl-C remove the sibling; a kill leaves it, for `remove_stale_temp_files` to clear later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # writers may create 0600 files; results are shared like any other file
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_save_tensors(path: Path | str, tensors: Mapping[str, Any], metadata: dict[str, str]) -> Path:
    """safetensors file written atomically; RuntimeFailure when the disk says no."""
    from safetensors.torch import save_file

    try:
        return atomic_write(Path(path), lambda tmp: save_file(owned_tensors(tensors), str(tmp), metadata=metadata))
    except (OSError, SafetensorError) as exc:
        raise RuntimeFailure(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def read_header(path: Path) -> dict[str, str]:
    """The safetensors header metadata; truncation shows here because the header fixes the file size."""
    if not path.exists():
        raise UsageError(f"checkpoint '{path}' does not exist")
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' is not a file")
    try:
        with safe_open(str(path), framework="numpy") as handle:  # the header only: no torch needed
            return handle.metadata() or {}
    except SafetensorError as exc:
        reason = first_line(exc)
        raise UsageError(f"'{path}' is not a valid safetensors file, or is truncated ({reason})") from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot read '{path}': {exc.strerror or exc}") from exc


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a mapping
    except (SafetensorError, RuntimeError) as exc:
        raise UsageError(f"'{path}' is corrupt: {first_line(exc)}") from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot read '{path}': {exc.strerror or exc}") from exc
