"""Adversarial fine-tuning loop: epochs, schedule, precision, checkpoints and exact resume.

The data order of every epoch is a permutation drawn from (seed, epoch), so a resumed run skips
exactly the batches it had already taken and continues as if it had never stopped.

Under torchrun every rank takes its contiguous shard of each global batch and the loss runs through
DistributedDataParallel (see `distributed`); rank 0 alone writes the run directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tgazsr_cli.checkpoints import checkpoint as ckpt
from tgazsr_cli.checkpoints.loading import load_pretrained_classifier
from tgazsr_cli.checkpoints.metadata import CheckpointMetadata, read_metadata
from tgazsr_cli.checkpoints.rng import capture_rng_state, restore_rng_state
from tgazsr_cli.checkpoints.run_dir import (
    CHECKPOINT_DIR,
    FINAL_NAME,
    METRICS_FILE,
    RECIPE_FILE,
    checkpoint_name,
    hold_run_lock,
    latest_checkpoint,
    prepare_run_dir,
    rotate_checkpoints,
    trim_metrics,
)
from tgazsr_cli.config import Recipe
from tgazsr_cli.data import ImageClassificationData, collate_skip_broken
from tgazsr_cli.data.cached import apply_decoded_cache
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.methods import TrainingMethod, build_method
from tgazsr_cli.models.classifier import ClipClassifier
from tgazsr_cli.models.lora import merged_clip_state, select_trainable
from tgazsr_cli.runtime import distributed as dist
from tgazsr_cli.runtime.atomic import remove_stale_temp_files
from tgazsr_cli.runtime.device import pick_device
from tgazsr_cli.runtime.progress import Progress, SilentProgress
from tgazsr_cli.runtime.signals import StopRequest, stop_on_signals
from tgazsr_cli.training.outcomes import TrainingInterrupted, TrainingPreempted, TrainResult
from tgazsr_cli.training.reporting import Reporters, check_report_to, open_reporters
from tgazsr_cli.training.schedule import learning_rate
from tgazsr_cli.training.setup import epoch_batches, load_training_data, make_optimizer, seed_everything
from tgazsr_cli.training.step_stats import LOSS, Snapshot, StepStats, grads_finite, keep_fused, masked_step
from tgazsr_cli.training.validation import BEST_NAME, describe, validation_for
from tgazsr_cli.weights.state_dict import check_compatible


class Trainer:
    """Runs one recipe into one run directory."""

    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        *,
        progress: Progress | None = None,
        model: ClipClassifier | None = None,
        data: ImageClassificationData | None = None,
    ) -> None:
        check_report_to(recipe.train.report_to)  # a missing optional package fails before the model loads
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.device = dist.init_from_env(pick_device(recipe.train.device))
        # only rank 0 reports progress; the others would print the same bars again
        self.progress = (progress if dist.is_main_process() else None) or SilentProgress()
        self.rank_batch_size = dist.per_rank_batch_size(recipe.data.batch_size, dist.world_size())
        seed_everything(recipe.train.seed, recipe.train.deterministic)
        self.model = (model or load_pretrained_classifier(recipe.model.name, recipe.model.pretrained,
                                               logit_scale=recipe.model.logit_scale)).to(self.device)
        self.data = data or load_training_data(recipe, self.model.image_size)
        self.batch_transform = None  # with data.cache: uint8 batch -> model input, on the device
        if recipe.data.cache != "off":
            self.data, self.batch_transform = apply_decoded_cache(self.data, recipe, self.model.image_size,
                                                                  self.device, self.progress.log, dist.run_on_main)
        self.model.set_classes(self.data.classnames, recipe.data.templates)
        self.method: TrainingMethod = build_method(self.model, recipe, self.data.class_templates)
        if dist.is_distributed() and self.method.not_shardable:
            raise UsageError(f"method {recipe.method} cannot train on {dist.world_size()} processes yet: "
                             f"{self.method.not_shardable}; run it in one process")
        self.params = select_trainable(self.method)  # after setup: a LoRA run's teacher keeps the original weights
        self.apply_speed_options()
        # the loss goes through DDP under torchrun (gradient averaging); attacks and the teacher do not
        self.loss_module = dist.wrap_for_training(dist.LossModule(self.method), self.device)
        self.optimizer = make_optimizer(self.params, recipe)
        self.batches_per_epoch = len(self.data.dataset) // recipe.data.batch_size
        if self.batches_per_epoch == 0:
            raise UsageError(
                f"batch size {recipe.data.batch_size} is larger than the dataset ({len(self.data.dataset)} images)"
            )
        # train.eval_every: its seeded subset is read now, so that a wrong eval_set fails before any step
        self.validation = validation_for(recipe, self.model.image_size, self.batches_per_epoch)
        planned = self.batches_per_epoch * recipe.optim.epochs
        self.total_steps = min(planned, recipe.optim.max_steps) if recipe.optim.max_steps else planned
        self.step = 0
        self.skipped_steps = 0
        self.skipped_images = 0
        self.stats = self.new_stats()

    def apply_speed_options(self) -> None:
        """Gradient checkpointing and torch.compile (recipe train section); neither changes the maths.

        Both act on the image tower's transformer in place, so state-dict keys (and checkpoints) stay
        the same. The teacher was copied before this, so it is never checkpointed.
        """
        settings = self.recipe.train
        visual = self.model.visual
        if settings.grad_checkpointing:
            if not hasattr(visual, "set_grad_checkpointing"):
                raise UsageError(f"{type(visual).__name__} does not support train.grad_checkpointing")
            visual.set_grad_checkpointing(True)
        if settings.compile != "off":
            towers = [visual] + ([self.method.teacher.visual] if self.method.teacher is not None else [])
            mode = None if settings.compile == "default" else settings.compile
            for tower in towers:
                getattr(tower, "transformer", tower).compile(mode=mode)

    # -- checkpoints ------------------------------------------------------------------------------
    def metadata(self, kind: str) -> CheckpointMetadata:
        spec = self.model.spec
        return CheckpointMetadata(
            kind=kind, method=self.recipe.method, model_name=spec.name, model_cfg=spec.model_cfg,
            pretrained=spec.pretrained, preprocess_cfg=spec.preprocess_cfg, logit_scale=self.model.logit_scale,
            recipe=self.recipe.to_dict(), classnames=self.model.classnames, step=self.step,
            epoch=self.step // self.batches_per_epoch, total_steps=self.total_steps,
            skipped_steps=self.skipped_steps, skipped_images=self.skipped_images,
        )

    def save(self, sync: bool = True, rng_state: dict[str, Any] | None = None) -> Path:
        """Rank 0 writes a resumable checkpoint; with `sync` the other ranks wait until it is on disk."""
        directory = self.run_dir / CHECKPOINT_DIR
        path = directory / checkpoint_name(self.step)
        if dist.is_main_process():
            path = self.write_checkpoint(directory, rng_state)
        if sync:
            dist.barrier()
        return path

    def write_checkpoint(self, directory: Path, rng_state: dict[str, Any] | None = None) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = ckpt.save_checkpoint(
            directory / checkpoint_name(self.step),
            model_state=self.model.clip.state_dict(),
            metadata=self.metadata("training"),
            optimizer_state=self.optimizer.state_dict(),
            rng_state=rng_state if rng_state is not None else capture_rng_state(),
        )
        rotate_checkpoints(directory, keep_last=self.recipe.train.keep_last)
        return path

    def restore(self, path: Path) -> None:
        state = ckpt.load_checkpoint(path)
        check_compatible(state.model_state, self.model.clip.state_dict())
        self.model.clip.load_state_dict(state.model_state)
        if state.optimizer_state is not None:
            self.optimizer.load_state_dict(state.optimizer_state)
            if self.optimizer.defaults.get("fused"):  # the saved param_groups may say otherwise
                keep_fused(self.optimizer)
        if state.rng_state is not None:
            restore_rng_state(state.rng_state)
            cuda_states = state.rng_state.get("cuda", [])
            if dist.is_distributed() and self.device.type == "cuda" and cuda_states:
                # rank 0 recorded its own GPU first; all ranks' RNG states are equal (shared_noise_stream)
                torch.cuda.set_rng_state(cuda_states[0].cpu(), self.device)
        info = state.metadata
        self.step, self.skipped_steps, self.skipped_images = info.step, info.skipped_steps, info.skipped_images
        self.stats = self.new_stats()

    # -- the loop ---------------------------------------------------------------------------------
    def batches_from(self, start_step: int) -> Iterator[list[int]]:
        """This rank's shard of every global batch from `start_step` on (the whole batch in one process)."""
        recipe = self.recipe
        epoch, offset = divmod(start_step, self.batches_per_epoch)
        while True:
            for batch in epoch_batches(len(self.data.dataset), recipe.data.batch_size, recipe.train.seed,
                                       epoch)[offset:]:
                yield dist.shard_of_batch(batch)
            epoch, offset = epoch + 1, 0

    def loader(self, start_step: int) -> torch.utils.data.DataLoader:
        workers = self.recipe.data.num_workers
        return torch.utils.data.DataLoader(
            self.data.dataset,
            batch_sampler=self.batches_from(start_step),
            num_workers=workers,
            collate_fn=collate_skip_broken,
            pin_memory=self.device.type == "cuda",
            # its own generator: the loader must not draw from the global RNG that resume restores
            generator=torch.Generator().manual_seed(self.recipe.train.seed),
        )

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimiser step that never waits for the device: its loss parts (device tensors) for inspection.

        A non-finite loss or gradient masks the update on the device and is recorded in `self.stats`;
        `check_stats` (at each log and checkpoint) stops the run or counts the skip.
        """
        recipe = self.recipe
        lr = learning_rate(self.step, recipe.optim.lr, recipe.optim.warmup_steps, self.total_steps,
                           recipe.optim.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        dtype = torch.bfloat16 if recipe.train.precision == "bf16" else None
        with dist.shared_noise_stream(images), \
                torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            total, parts = self.loss_module(images, labels)
        total = total.float()
        # one flag for all ranks: a NaN on one rank reaches the others' gradients only through the all-reduce
        loss_ok = dist.all_ranks_true(torch.isfinite(total))
        total.backward()  # under DDP the gradients arrive averaged over ranks, identical everywhere
        grad_ok = grads_finite(self.params)
        masked_step(self.optimizer, self.stats.ok_to_update(loss_ok, grad_ok))
        self.stats.record(parts, total, loss_ok, grad_ok)
        return parts

    def current_lr(self) -> float:
        """The learning rate the last step used."""
        return float(self.optimizer.param_groups[0]["lr"])

    def new_stats(self) -> StepStats:
        self.skipped_at_start = self.skipped_steps
        return StepStats(self.device, self.step, stop_on_bad=self.recipe.train.on_nonfinite == "stop")

    def check_stats(self, across_ranks: bool = True) -> Snapshot:
        """The one host-device sync of a logging interval: read the stats, then stop or count bad steps."""
        snapshot = self.stats.read(dist.mean_over_ranks if across_ranks else None)
        if snapshot.first_bad_step is not None and self.recipe.train.on_nonfinite == "stop":
            what = (f"loss is {snapshot.first_bad_loss}" if snapshot.first_bad_kind == LOSS
                    else "gradient is not finite")
            latest = latest_checkpoint(self.run_dir / CHECKPOINT_DIR)
            kept = f"the last good checkpoint {latest} is intact" if latest else "no checkpoint had been written yet"
            raise RuntimeFailure(  # steps are numbered from 1 in every message, as the progress bar counts them
                f"step {snapshot.first_bad_step + 1}: {what}; stopped, {kept} "
                "(set train.on_nonfinite=skip to skip such steps)"
            )
        self.skipped_steps = self.skipped_at_start + snapshot.skipped_steps
        return snapshot

    def start_run_dir(self, resume: bool) -> Path | None:
        """Rank 0 only: check or create the run directory; the checkpoint to resume from."""
        prepare_run_dir(self.run_dir, resume)
        if not resume:
            (self.run_dir / RECIPE_FILE).write_text(self.recipe.to_yaml())
            return None
        # a save killed mid-write left its hidden temporary file; the lock says no other trainer writes here
        removed = [*remove_stale_temp_files(self.run_dir / CHECKPOINT_DIR), *remove_stale_temp_files(self.run_dir)]
        if removed:
            self.progress.log(f"removed {len(removed)} unfinished file(s) of a save that was killed: "
                              + ", ".join(path.name for path in removed))
        latest = latest_checkpoint(self.run_dir / CHECKPOINT_DIR)
        if latest is None:
            if not (self.run_dir / RECIPE_FILE).is_file():
                raise UsageError(f"nothing to resume: no valid checkpoint in {self.run_dir / CHECKPOINT_DIR}")
            # stopped before its first checkpoint (e.g. preempted while loading): the saved recipe is the run
            self.progress.log(f"no checkpoint in {self.run_dir} yet: starting its recipe from step 0")
        return latest

    def run(self, resume: bool = False) -> TrainResult:
        """Train into the run directory (resuming from its last checkpoint), holding its lock (rank 0)."""
        with hold_run_lock(self.run_dir, main=dist.is_main_process(), log=self.progress.log):
            return self.run_locked(resume)

    def run_locked(self, resume: bool) -> TrainResult:
        latest = dist.run_on_main(lambda: self.start_run_dir(resume))
        if latest is not None:
            # every rank reads the same file (the run directory must be on a shared filesystem)
            self.restore(latest)
            self.progress.log(f"resumed from {latest} at step {self.step}")
        if resume and dist.is_main_process():  # the steps after the checkpoint are trained and logged again
            dropped = trim_metrics(self.run_dir, self.step)
            if dropped:
                self.progress.log(f"{METRICS_FILE}: dropped {dropped} line(s) after step {self.step}, "
                                  "which this run logs again")
        started = time.monotonic()
        parts: dict[str, float] = {}
        if self.validation is not None:
            self.validation.resume_best(self.run_dir / METRICS_FILE, self.step)
        metrics = open_reporters(self.run_dir, self.run_dir / METRICS_FILE, self.recipe.train.report_to,
                                 config=self.recipe.to_dict(), resume_step=self.step if resume else None,
                                 main=dist.is_main_process())
        task = self.progress.task(f"train {self.recipe.method}", self.total_steps, completed=self.step)
        self.model.train()
        # the RNG as the last finished step left it: Ctrl-C lands mid-step, after the attack has drawn its noise
        self.rng_after_step = capture_rng_state()
        try:
            with stop_on_signals() as stop:
                parts = self.train_until_done_or_stopped(metrics, task, stop, parts)
        except KeyboardInterrupt:
            task.close()
            metrics.close()
            try:
                # a bad step since the last check stops the run as it would have (no collective: see below)
                if self.stats.pending:
                    self.check_stats(across_ranks=False)
                # no barrier: the other ranks may be interrupted too, or stuck in a collective
                saved = self.save(sync=False, rng_state=self.rng_after_step)
            except KeyboardInterrupt:  # a second Ctrl-C: the atomic save leaves the previous checkpoint whole
                kept = latest_checkpoint(self.run_dir / CHECKPOINT_DIR)
                step = read_metadata(kept).step if kept is not None else None
                raise TrainingInterrupted(kept, step=step, saved=False) from None
            raise TrainingInterrupted(saved, step=self.step) from None
        task.close()
        metrics.close()
        if self.stats.pending:  # steps after the last log (e.g. the run ended early): check them too
            self.check_stats()
        self.save()
        final = self.write_final()
        return TrainResult(self.run_dir, final, self.step, parts, self.skipped_steps, self.skipped_images,
                           time.monotonic() - started)

    def train_until_done_or_stopped(self, metrics: Reporters, task: Any, stop: StopRequest,
                                    parts: dict[str, float]) -> dict[str, float]:
        """The steps from `self.step` to the last, or to a stop signal (SIGTERM, SIGUSR1): then the step in flight
        is finished, every rank stops at the same step and a resumable checkpoint is written. The last loss parts."""
        since, since_step = time.monotonic(), self.step  # images/s over each logging interval
        for images, labels, dropped in self.loader(self.step):
            if self.step >= self.total_steps:
                break
            # global counts, and one decision for all ranks (the identity in one process)
            dropped, empty = dist.all_reduce_sum([dropped, int(labels.numel() == 0)])
            self.skipped_images += dropped
            if dropped and self.recipe.data.on_broken == "fail":
                raise RuntimeFailure(f"{dropped} training image(s) could not be decoded (step {self.step + 1}); "
                                     "checkpoints so far are intact; data.on_broken=skip skips and counts them")
            if empty:
                continue
            non_blocking = self.device.type == "cuda"  # pinned batches: the copy does not wait either
            images = images.to(self.device, non_blocking=non_blocking)
            if self.batch_transform is not None:
                images = self.batch_transform(images)
            self.train_step(images, labels.to(self.device, non_blocking=non_blocking))
            self.step += 1
            self.rng_after_step = capture_rng_state()
            logging = self.step % self.recipe.train.log_every == 0 or self.step == self.total_steps
            saving = self.step % self.recipe.train.save_every == 0 and self.step < self.total_steps
            if logging or saving:  # the interval's one sync; a bad step stops the run here, before any save
                snapshot = self.check_stats()
                parts = {**(snapshot.parts or parts), "lr": self.current_lr()}
            if logging:
                now = time.monotonic()
                speed = (self.step - since_step) * self.recipe.data.batch_size / max(now - since, 1e-9)
                metrics.log(self.step, {**parts, "images_per_s": speed})
                since, since_step = now, self.step
            task.advance(1, **{k: v for k, v in parts.items() if k in ("total", "ce", "lr")})
            if self.validation is not None and self.validation.due(self.step):
                self.validate(metrics)
                since = time.monotonic()  # the validation's time is not training speed
            checkpoint = self.save() if saving else None
            if self.step < self.total_steps and self.stop_agreed(stop, logging or saving):
                task.close()
                metrics.close()
                if self.stats.pending:
                    self.check_stats()
                checkpoint = checkpoint or self.save()
                raise TrainingPreempted(checkpoint, step=self.step, signal_name=stop.signal_name or "SIGTERM")
        return parts

    def stop_agreed(self, stop: StopRequest, at_sync: bool) -> bool:
        """Whether to stop after this step. One process decides at once; under torchrun the ranks agree at the
        interval's sync (the same steps on every rank), so that all of them stop at one step."""
        if not dist.is_distributed():
            return stop.requested
        return at_sync and dist.all_reduce_sum([int(stop.requested)])[0] > 0

    def validate(self, metrics: Reporters) -> None:
        """Validate on every rank (each its shard, see validation.py), log the numbers and keep the best model."""
        assert self.validation is not None
        values = self.validation.run(self.model)  # the same numbers on every rank
        metrics.log(self.step, values)
        self.progress.log(f"step {self.step}: {describe(values)}")
        if self.validation.improved(values):
            self.write_model(BEST_NAME)

    def write_final(self) -> Path:
        """A model-only checkpoint (no optimiser state) for eval, attack and export (rank 0 writes it)."""
        return self.write_model(FINAL_NAME)

    def write_model(self, name: str) -> Path:
        """RUN/`name`: the model only (LoRA merged), written atomically by rank 0 while the others wait."""
        path = self.run_dir / name
        if dist.is_main_process():
            path = ckpt.save_checkpoint(path, model_state=merged_clip_state(self.model),  # LoRA: merged
                                        metadata=self.metadata("model"))
        dist.barrier()
        return path
