"""Which examples a reference evaluates, in its order: a seeded shuffled stream, or a named shipped id list.

`stream_indices` reproduces how chs20/RobustVLM picks the 1,000 images it attacks per CLIP_benchmark dataset
(chs20/RobustVLM@7de10ee209f169d415c07aa0abaae4806c402b14; paths below are in that repository):

- ``CLIP_benchmark/bash/run_benchmark_adv.sh:8,11-15`` runs ``clip_benchmark.cli eval`` on the ``wds/...`` hub
  copies with ``--n_samples 1000 --batch_size 50`` and the default ``--seed 0`` / ``--num_workers 4``
  (``CLIP_benchmark/clip_benchmark/cli.py:33,39-40``);
- ``cli.py:257-258``: ``dataset.shuffle(10000, initial=10000, rng=random.Random(args.seed))`` - Python's
  ``random.Random``, not torch's RNG - on the WebDataset pipeline, whose shards ``split_by_worker`` deals to the
  DataLoader workers round-robin (webdataset 0.2.48, the version ``requirements.txt`` pins:
  ``webdataset/compat.py:135-137``, ``webdataset/shardlists.py:135-142``, at webdataset/webdataset@
  352089f0da674088166a7034ec01341826016c05); every worker holds its own copy of the generator, in the state
  ``Random(seed)`` left it;
- the shuffle (``webdataset/filters.py:183-218`` there): a buffer that takes the stream two samples at a time
  while it holds fewer than ``bufsize``; from ``initial`` samples on, each sample read is followed by one
  sample out, ``buf[k]`` with ``k = rng.randint(0, len(buf) - 1)``, whose slot the last buffered sample fills;
  when the stream ends, the buffer is emptied the same way;
- ``cli.py:273-279``: ``dataset.batched(50)`` (a worker's last batch may be short) read by
  ``DataLoader(batch_size=None, shuffle=False, num_workers=4)``, which takes one batch from each worker in turn,
  skipping workers whose stream has ended (torch's iterable-dataset DataLoader);
- ``clip_benchmark/metrics/zeroshot_classification.py:138-147``: batches are gathered until batch number
  ``n_samples // bs + 2``, then the first ``n_samples`` images are kept.

Positions are those of the hub copy's examples in key order (``s0000000``, ``s0000001``, ...: the order
``clip_benchmark/webdataset_builder.py:175-193`` wrote them, shard after shard). The shard layout matters when a
worker gets more than one shard or several workers get one: pass the copy's per-shard sample counts as `shards`
(its ``test/nshards.txt`` and tar members); the default is one shard.

`subset_keys` / `match_subset` serve named id lists shipped in `data/subsets/`, e.g. RobustBench's 5,000
ImageNet validation images (``robustbench-imagenet-5000``), matched to a copy by validation image number.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

from tgazsr_cli.errors import RuntimeFailure, UsageError, unknown_name

# RobustVLM's CLIP_benchmark run (see the module docstring for the lines)
STREAM_BUFFER = 10_000
STREAM_WORKERS = 4
STREAM_BATCH = 50

SUBSETS_DIR = Path(__file__).resolve().parent / "subsets"
SUBSETS: dict[str, Path] = {
    "robustbench-imagenet-5000": SUBSETS_DIR / "robustbench-imagenet-5000.txt",
}
_VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d+)")


def _buffer_shuffled(stream: Iterator[int], rng: random.Random, bufsize: int, initial: int) -> Iterator[int]:
    """`stream` through webdataset 0.2.48's shuffle buffer (module docstring), drawing from `rng`."""
    initial = min(initial, bufsize)
    held: list[int] = []

    def take() -> int:
        slot = rng.randint(0, len(held) - 1)
        chosen, held[slot] = held[slot], held[-1]
        held.pop()
        return chosen

    for item in stream:
        held.append(item)
        if len(held) < bufsize:
            extra = next(stream, None)
            if extra is not None:
                held.append(extra)
        if len(held) >= initial:
            yield take()
    while held:
        yield take()


def _batches(items: Iterator[int], size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def stream_indices(size: int, count: int, seed: int, *, shards: Sequence[int] | None = None,
                   workers: int = STREAM_WORKERS, buffer: int = STREAM_BUFFER, batch: int = STREAM_BATCH) -> list[int]:
    """The dataset positions RobustVLM's CLIP_benchmark run attacks, in its order: the first `count` of the
    seeded shuffled stream of a `size`-example copy held in shards of `shards` examples (default: one shard)."""
    for label, value, least in (("size", size, 0), ("count", count, 0), ("workers", workers, 1),
                                ("buffer", buffer, 1), ("batch", batch, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"stream selection: {label} must be a whole number of at least {least}, got {value!r}")
    layout = [size] if shards is None else [int(n) for n in shards]
    if any(n < 0 for n in layout) or sum(layout) != size:
        raise UsageError(f"stream selection: shard sizes {layout} do not add up to the {size} examples")
    starts = [sum(layout[:i]) for i in range(len(layout))]
    streams = []
    for worker in range(workers):
        own = [range(starts[s], starts[s] + layout[s]) for s in range(worker, len(layout), workers)]
        items = (position for block in own for position in block)
        streams.append(_batches(_buffer_shuffled(items, random.Random(seed), buffer, buffer), batch))
    picked: list[int] = []
    last_batch = count // batch + 2  # zeroshot_classification.py:141: stop once batch number i reaches this
    number = 0
    active = list(streams)
    while active and number <= last_batch:
        for stream in list(active):
            if number > last_batch:
                break
            got = next(stream, None)
            if got is None:
                active.remove(stream)
                continue
            picked.extend(got)
            number += 1
    return picked[:count]


@cache
def _read_subset(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def subset_keys(name: str) -> list[str]:
    """The keys of shipped subset `name` (robustbench-imagenet-5000: ``<wnid>/ILSVRC2012_val_<n>.JPEG``, in the
    reference's order); UsageError with a did-you-mean for an unknown name."""
    if name not in SUBSETS:
        raise unknown_name("subset", name, SUBSETS)
    return list(_read_subset(SUBSETS[name]))


def _val_number(text: str) -> int | None:
    found = _VAL_NUMBER.search(text)
    return int(found.group(1)) if found else None


def match_subset(paths: list[str | None], keys: list[str]) -> list[int]:
    """Positions in `paths` (the file names a copy keeps: ``n01440764/ILSVRC2012_val_00000293.JPEG``,
    ``ILSVRC2012_val_00000293_n01440764.JPEG``, ...) of the subset's images, matched by validation image number,
    in the order of `keys`. RuntimeFailure naming how many and the first few when some are not in the copy."""
    where: dict[int, int] = {}
    for position, path in enumerate(paths):
        number = None if path is None else _val_number(path)
        if number is not None:
            where.setdefault(number, position)
    picked: list[int] = []
    missing: list[str] = []
    for key in keys:
        number = _val_number(key)
        if number is None:
            raise UsageError(f"subset key {key!r} names no ILSVRC2012_val_<number> image")
        if number in where:
            picked.append(where[number])
        else:
            missing.append(key)
    if missing:
        hint = "" if where else " (the copy keeps no ILSVRC2012_val_* file names)"
        raise RuntimeFailure(f"{len(missing)} of the subset's {len(keys)} images are not in this copy{hint}: "
                             f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
    return picked
