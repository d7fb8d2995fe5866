"""Run directories: `recipe.yaml`, `metrics.jsonl`, `checkpoints/step-*.safetensors` and `final.safetensors`.

An existing, non-empty run directory is only ever continued (`--resume`), never overwritten; a finished run
(its final checkpoint at the planned last step) is left as it is. While a process trains in a run directory it
holds `RUN/.lock` (its pid and host), so a second process cannot write the same checkpoints and metrics.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tgazsr_cli.checkpoints.metadata import read_metadata
from tgazsr_cli.config import Recipe, recipe_from_dict
from tgazsr_cli.config.loading import safe_load_unique
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.runtime.atomic import atomic_write, pid_alive

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
FINAL_NAME = "final.safetensors"  # a run's model-only checkpoint, for eval, attack and export
CHECKPOINT_DIR = "checkpoints"  # a run's resumable checkpoints
DEFAULT_PATTERN = "step-*.safetensors"
LOCK_NAME = ".lock"  # held while a process trains in the run directory


def default_run_dir(recipe: Recipe, root: Path = Path("runs")) -> Path:
    """runs/METHOD-DATASET-TIME."""
    dataset = Path(recipe.data.dataset).name or "data"
    return root / f"{recipe.method}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """The checks of `prepare_run_dir` without creating anything: before a model is loaded."""
    if run_dir.is_dir():
        check_unlocked(run_dir)  # a run another process trains in is refused as such, before anything else
    if resume:
        if not run_dir.is_dir():
            raise UsageError(f"cannot resume: run directory {run_dir} does not exist")
        if finished_step(run_dir) is None:  # a finished run is left as it is: nothing need be writable
            check_resumable_writable(run_dir)
        return
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name != LOCK_NAME for p in run_dir.iterdir())):
        raise UsageError(f"run directory {run_dir} already exists; pass --resume to continue it or choose another")
    existing = next(parent for parent in [run_dir, *run_dir.parents] if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"cannot write to run directory {run_dir}: {existing} is not a writable folder")


def check_resumable_writable(run_dir: Path) -> None:
    """A resume writes checkpoints, metrics and the final model: refuse one that could not, before any work."""
    for path in (run_dir, run_dir / CHECKPOINT_DIR, run_dir / METRICS_FILE):
        if path.exists() and not os.access(path, os.W_OK):
            raise UsageError(f"cannot resume {run_dir}: {path} is not writable")


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Create the run directory; an existing, non-empty one is only ever continued, never overwritten."""
    check_run_dir(run_dir, resume)
    if resume:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to run directory {run_dir}: {exc.strerror}") from exc


# -- the run lock ---------------------------------------------------------------------------------------------
# fcntl.flock where the filesystem has it: the kernel frees a killed holder's lock at once, so the pid and host
# in the file only name the holder. Without flock (some network filesystems) the pid alone decides.
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def this_process() -> LockHolder:
    return LockHolder(os.getpid(), socket.gethostname())


def _read_holder(fd: int) -> LockHolder | None:
    """Who the lock file names; None when it is empty or unreadable (a holder still writing it)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"null")
        return LockHolder(int(data["pid"]), str(data["host"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _flock(fd: int, exclusive: bool) -> bool | None:
    """True: this process now holds the lock; False: another holds it; None: no flock here."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in NO_FLOCK:
            return None
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _refusal(run_dir: Path, holder: LockHolder | None, others_hold: bool | None) -> str | None:
    """Why `run_dir` cannot be trained in now; None when its lock is free or stale (to be taken over).
    `others_hold`: what flock says (None: no flock)."""
    path = run_dir / LOCK_NAME
    in_use = f"run directory {run_dir} is in use by {{}} (lock file {path}); wait for it to finish or stop it"
    if others_hold:
        return in_use.format(holder or "another process")
    if holder is None or holder == this_process():
        return None
    if holder.host != socket.gethostname():  # its pid means nothing here, and flock may not reach across hosts
        return (f"run directory {run_dir} is locked by {holder} (lock file {path}), which cannot be checked from "
                f"{socket.gethostname()}; delete the lock file if that process has stopped")
    if others_hold is None and pid_alive(holder.pid):
        return in_use.format(holder)
    return None


_HELD: dict[str, RunLock] = {}  # run directories this process holds, by real path: holding is re-entrant


class RunLock:
    """This process's lock on one run directory; `release` drops it and deletes the lock file."""

    def __init__(self, run_dir: Path, fd: int, created: list[Path]) -> None:
        self.run_dir, self.path, self.fd, self.created = run_dir, run_dir / LOCK_NAME, fd, created
        self.key = os.path.realpath(run_dir)
        self.count = 1

    def release(self) -> None:
        self.count -= 1
        if self.count > 0 or self.fd is None:
            return
        fd, self.fd = self.fd, None
        _HELD.pop(self.key, None)
        try:
            if _same_file(fd, self.path):  # never delete a file someone else created after removing ours
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)  # frees the flock
        _remove_empty(self.created)


def _remove_empty(folders: list[Path]) -> None:
    """Folders a lock created, innermost first, while nothing else was written to them."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def check_unlocked(run_dir: Path) -> None:
    """Refuse a run directory that another live process holds (one line naming it); a stale lock passes."""
    path = run_dir / LOCK_NAME
    if not path.is_file() or os.path.realpath(run_dir) in _HELD:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # the lock attempt itself reports what is wrong
    try:
        free = _flock(fd, exclusive=False)  # a shared probe, dropped at once by the close
        refusal = _refusal(run_dir, _read_holder(fd), None if free is None else not free)
    finally:
        os.close(fd)
    if refusal:
        raise UsageError(refusal)


def lock_run_dir(run_dir: Path, log: Callable[[str], None] | None = None) -> RunLock:
    """Take the run directory's lock (creating the directory), or raise UsageError naming its holder; a stale
    lock of a dead process on this host is taken over, with a line to `log` saying so."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} already exists and is not a folder")
    created = [folder for folder in [run_dir, *run_dir.parents] if not folder.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write to run directory {run_dir}: {exc.strerror or exc}") from None
    held = _HELD.get(os.path.realpath(run_dir))
    if held is not None:
        held.count += 1
        return held
    try:
        lock = RunLock(run_dir, _take_lock_file(run_dir, log), created)
    except BaseException:
        _remove_empty(created)
        raise
    _HELD[lock.key] = lock
    return lock


def _take_lock_file(run_dir: Path, log: Callable[[str], None] | None) -> int:
    path = run_dir / LOCK_NAME
    for _ in range(20):  # only a holder releasing the lock as this opens it needs another try
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UsageError(f"cannot lock run directory {run_dir}: {exc.strerror or exc}") from None
        try:
            got = _flock(fd, exclusive=True)
            if got and not _same_file(fd, path):  # its holder deleted this file while releasing: lock the new one
                os.close(fd)
                continue
            holder = _read_holder(fd)
            refusal = _refusal(run_dir, holder, None if got is None else not got)
            if refusal:
                raise UsageError(refusal)
            if holder is not None and holder != this_process() and log is not None:
                state = "still runs but no longer holds it" if pid_alive(holder.pid) else "is no longer running"
                log(f"taking over the stale lock of {run_dir} from {holder}, which {state}")
            record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(record) + "\n").encode())
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise RuntimeFailure(f"cannot lock run directory {run_dir}: its lock file {path} keeps being replaced")


@contextlib.contextmanager
def hold_run_lock(run_dir: Path, *, main: bool | None = None,
                  log: Callable[[str], None] | None = None) -> Iterator[RunLock | None]:
    """Hold `run_dir`'s lock for the block, released however it ends. Under torchrun only rank 0 takes it
    (`main`; by default from $RANK, so the CLI can lock before torch is imported)."""
    if main is None:
        main = int(os.environ.get("RANK", "0")) == 0
    if not main:
        yield None
        return
    lock = lock_run_dir(run_dir, log)
    try:
        yield lock
    finally:
        lock.release()


def trim_metrics(run_dir: Path, step: int) -> int:
    """Drop the metrics.jsonl lines of steps after `step`, which a resume from there logs again; how many.

    Lines that do not parse are kept, except a last line a kill cut short.
    """
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            logged = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            if line.endswith("\n"):
                kept.append(line)
            continue
        if isinstance(logged, int) and logged > step:
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    if kept == lines:
        return 0
    try:
        atomic_write(path, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))
    except OSError as exc:
        raise RuntimeFailure(f"cannot rewrite {path}: {exc.strerror or exc}") from exc
    return len(lines) - len(kept)


def recipe_of_run(run_dir: Path) -> Recipe:
    """The resolved recipe a run was started with (for --resume)."""

    path = Path(run_dir) / RECIPE_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a tgazsr run directory (no {RECIPE_FILE})")
    return recipe_from_dict(safe_load_unique(path.read_text()) or {})


def finished_step(run_dir: Path) -> int | None:
    """The step of a finished run's final checkpoint, or None when the run is not finished."""
    final = Path(run_dir) / FINAL_NAME
    if not final.is_file():
        return None
    info = read_metadata(final)
    return info.step if info.total_steps and info.step >= info.total_steps else None


def checkpoint_in(path: Path) -> Path:
    """A run directory resolves to its final checkpoint, else its newest valid training checkpoint."""
    if path.is_dir():
        final = path / FINAL_NAME
        if final.is_file():
            return final
        latest = latest_checkpoint(path / CHECKPOINT_DIR)
        if latest is None:
            raise UsageError(f"no checkpoint in {path} (expected {FINAL_NAME} or {CHECKPOINT_DIR}/step-*.safetensors)")
        return latest
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' does not exist")
    if path.suffix != ".safetensors":
        raise UsageError(f"'{path}' is not a tgazsr checkpoint; evaluate published weights with --model ViT-B-32 "
                         f"--pretrained openai+{path}, or convert them once with `tgazsr convert`")
    return path


def checkpoint_name(step: int) -> str:
    """Zero-padded so that names sort in step order in any file browser."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return f"step-{step:08d}.safetensors"


def _step_of(path: Path) -> int | None:
    """The last number in the file name; names without one are not step checkpoints."""
    numbers = re.findall(r"\d+", path.name.removesuffix(".safetensors"))
    return int(numbers[-1]) if numbers else None


def step_checkpoints(directory: Path | str, pattern: str = DEFAULT_PATTERN) -> list[Path]:
    """Files matching `pattern` that carry a step number, oldest step first (temporary files excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(pattern)
             if p.is_file() and not p.name.startswith(".") and _step_of(p) is not None]
    return sorted(found, key=lambda p: (_step_of(p), p.name))


def _is_valid(path: Path) -> bool:
    try:
        read_metadata(path)
    except (UsageError, RuntimeFailure):
        return False
    return True


def latest_checkpoint(directory: Path | str, pattern: str = DEFAULT_PATTERN) -> Path | None:
    """The newest checkpoint whose header reads back; a corrupt newest file falls back to the one before."""
    return next((p for p in reversed(step_checkpoints(directory, pattern)) if _is_valid(p)), None)


def rotate_checkpoints(
    directory: Path | str, pattern: str = DEFAULT_PATTERN, keep_last: int = 3
) -> list[Path]:
    """Keep the newest `keep_last` valid checkpoints and delete older files; returns the kept ones.

    Only valid files count towards `keep_last`, so a corrupt newest file can never cost the last good one;
    corrupt files newer than the kept ones are left for inspection.
    """
    if keep_last < 1:
        raise UsageError(f"keep_last must be at least 1, got {keep_last}")
    found = step_checkpoints(directory, pattern)
    kept = [p for p in found if _is_valid(p)][-keep_last:]
    if not kept:
        return []
    for path in found[: found.index(kept[0])]:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot delete old checkpoint {path}: {exc.strerror or exc}") from exc
    return kept
