"""What checking a checkpoint's tensor digests costs: loading a model from a tgazsr checkpoint with and without
the check, side by side in one run (ViT-B-32 by default: 605 MB of fp32 weights).

    python bench/checkpoint_verify.py --model ViT-B-32 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tgazsr_cli.checkpoints.checkpoint import save_checkpoint
from tgazsr_cli.checkpoints.loading import load_tgazsr_checkpoint
from tgazsr_cli.checkpoints.metadata import CheckpointMetadata
from tgazsr_cli.models.building import build_clip, resolve_model_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = resolve_model_spec(args.model, None)
    clip = build_clip(spec, load_weights=False)
    state = {k: v.contiguous() for k, v in clip.state_dict().items()}
    size = sum(v.numel() * v.element_size() for v in state.values())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_checkpoint(path, model_state=state, metadata=CheckpointMetadata(
            kind="model", method="bench", model_name=spec.name, model_cfg=spec.model_cfg,
            preprocess_cfg=spec.preprocess_cfg))
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for verify in (False, True):  # interleaved, so drift in the machine's load hits both alike
                start = time.perf_counter()
                load_tgazsr_checkpoint(path, verify=verify)
                times[verify].append(time.perf_counter() - start)
    plain, checked = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.model}: {size / 1e6:.0f} MB of weights, median of {args.repeats} loads, {args.threads} thread(s)")
    print(f"  load without the check {plain:.3f} s, with it {checked:.3f} s: +{checked - plain:.3f} s "
          f"({100 * (checked - plain) / plain:.1f}% of the load)")


if __name__ == "__main__":
    main()
