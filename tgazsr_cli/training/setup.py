"""What a training run is built from: seeds, each epoch's batch order, the optimiser, the training data."""

from __future__ import annotations

import random

import torch

from tgazsr_cli.config import Recipe
from tgazsr_cli.data import ImageClassificationData, load_image_dataset
from tgazsr_cli.data.combined import is_combined, load_combined
from tgazsr_cli.training.step_stats import fused_supported


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional at run time
        pass
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def epoch_batches(num_examples: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled batches of one epoch, a pure function of (seed, epoch); the last partial batch is dropped."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_examples, generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, num_examples - batch_size + 1, batch_size)]


def make_optimizer(params: list[torch.nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    optim = recipe.optim

    def build(fused: bool | None) -> torch.optim.Optimizer:
        if optim.name == "sgd":
            return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
                                   fused=fused)
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay, fused=fused)

    if fused_supported(params):
        try:
            return build(True)  # fused kernels can skip a non-finite step without a sync (step_stats.py)
        except (RuntimeError, TypeError, ValueError):  # an older torch without fused kernels for this device
            pass
    return build(None)


def load_training_data(recipe: Recipe, image_size: int) -> ImageClassificationData:
    """The recipe's training split; `a+b+c` trains on several datasets at once."""
    settings = recipe.data
    kwargs = {"split": settings.split, "image_size": image_size, "data_dir": settings.data_dir,
              "limit": settings.limit, "seed": recipe.train.seed}
    if is_combined(settings.dataset):
        data = load_combined(settings.dataset, load_image_dataset, **kwargs)
    else:
        data = load_image_dataset(settings.dataset, **kwargs)
    data.classnames = training_classnames(recipe, data.classnames)
    return data


def training_classnames(recipe: Recipe, dataset_names: list[str]) -> list[str]:
    """The class names training prompts with: `data.classnames`, else those protocol `data.classnames_protocol`
    gives the dataset, else the dataset's own."""
    from tgazsr_cli.errors import UsageError, unknown_name

    chosen, protocol = recipe.data.classnames, recipe.data.classnames_protocol
    if chosen is not None and protocol is not None:
        raise UsageError("data.classnames and data.classnames_protocol both name the classes: keep one")
    if protocol is not None:
        from tgazsr_cli.protocols import load_protocol

        entries = load_protocol(protocol).datasets
        entry = next((e for e in entries.values() if e.dataset == recipe.data.dataset), None)
        if entry is None:
            raise unknown_name(f"dataset of protocol {protocol}", recipe.data.dataset, entries)
        chosen = list(entry.classnames)
    if chosen is None:
        return dataset_names
    if len(chosen) != len(dataset_names):
        raise UsageError(f"data.classnames has {len(chosen)} names; {recipe.data.dataset} has "
                         f"{len(dataset_names)} classes")
    return list(chosen)
