"""The official AutoAttack (Croce & Hein, ICML 2020; fra31/auto-attack, on PyPI as `pyautoattack`), one attack at a
time, as members of the `autoattack-official*` suites (attacks/registry.py).

The official `run_standard_evaluation` runs each attack of its list on the points still robust and keeps what broke
them; `run_suite_detailed` does the same with these members, so an official suite gets the records of ours (a robust
mask per member, robust counts after each, members skipped when the model has too few classes). Each member does
what that loop does for its attack (pyautoattack 0.2.0, autoattack.py:176-212): set the loss or the targeted flag
and the seed, then `perturb` the points. Its settings are those `AutoAttack(version=...)` gives (autoattack.py:46-58,
297-333), with the suite's `steps` as n_iter (n_queries for Square) and `restarts` as n_restarts.

Our model takes [0, 1] images and normalises inside, as AutoAttack expects. eps = threat.eps / 255 and seed =
threat.seed; the official code runs in fp32 on the model's device, seeds torch's global RNG (restored afterwards)
and its results depend on the batch (one RNG stream per call). Its prints go to stderr, never to stdout (where
`--json` goes); its warnings go to the 'auto-attack' logger.
"""

from __future__ import annotations

import contextlib
import sys
from functools import partial
from typing import Any

import torch
from torch import nn

from tgazsr_cli.attacks.base import eval_mode
from tgazsr_cli.attacks.threat import ThreatModel
from tgazsr_cli.errors import UsageError

INSTALL = 'pip install "tgazsr[autoattack]"'
TARGETS = 9  # the official n_target_classes of APGD-T and FAB-T (autoattack.py:305,313)


def load_autoattack() -> Any:
    """The official AutoAttack class, or a one-line usage error naming the extra that installs it."""
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise UsageError(f"the official AutoAttack suites need the 'pyautoattack' package: {INSTALL}") from None
    return AutoAttack


def model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return fallback


def _set_iterations(apgd: Any, steps: int) -> None:
    """n_iter and the checkpoint lengths the official constructor derives from it (autopgd_base.py:143,153-155)."""
    apgd.n_iter = apgd.n_iter_orig = steps
    apgd.n_iter_2 = max(int(0.22 * steps), 1)
    apgd.n_iter_min = max(int(0.06 * steps), 1)
    apgd.size_decr = max(int(0.03 * steps), 1)


def _configured(adversary: Any, attack: str, threat: ThreatModel, num_classes: int) -> Any:
    """The official attack object for `attack`, set up as run_standard_evaluation sets it, budget from `threat`."""
    targets = min(TARGETS, num_classes - 1)  # the official code indexes past the classes beyond this
    if attack in ("apgd-ce", "apgd-dlr"):
        member = adversary.apgd
        member.loss = attack.removeprefix("apgd-")
        _set_iterations(member, threat.steps)
        member.n_restarts = threat.restarts
    elif attack == "apgd-t":
        member = adversary.apgd_targeted
        _set_iterations(member, threat.steps)
        member.n_restarts, member.n_target_classes = threat.restarts, targets
    elif attack == "fab-t":
        member = adversary.fab
        member.targeted, member.n_restarts = True, 1  # as autoattack.py:207: FAB-T always runs one restart
        member.n_iter, member.n_target_classes = threat.steps, targets
    elif attack == "square":
        member = adversary.square
        member.n_queries, member.n_restarts = threat.steps, threat.restarts
    else:
        raise ValueError(f"no official attack '{attack}'")
    member.seed = threat.seed
    return member


def official_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    *,
    attack: str,
    version: str = "standard",
) -> torch.Tensor:
    """Adversarial images of the official `attack` of AutoAttack `version` (clean images where it finds none).
    `sample_ids` are not used: the official code draws one RNG stream per call."""
    images = images.detach()
    if threat.eps == 0 or threat.steps == 0 or len(images) == 0:
        return images.clone()
    if threat.precision != "fp32":
        raise UsageError(f"the official AutoAttack runs in fp32, not {threat.precision}: drop the attack "
                         "precision or use the 'autoattack' suite")
    auto_attack = load_autoattack()
    device = model_device(model, images.device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with eval_mode(model), torch.random.fork_rng(devices=cuda), contextlib.redirect_stdout(sys.stderr):
        adversary = auto_attack(model, norm="Linf", eps=threat.eps_pixels, seed=threat.seed, version=version,
                                device=device)
        adversary.verbose = False
        with torch.no_grad():
            num_classes = int(model(images[:1].to(device)).shape[1])
        member = _configured(adversary, attack, threat, num_classes)
        adversarial = member.perturb(images.to(device).float(), labels.to(device))
    return adversarial.detach().to(images)


official_apgd_ce = partial(official_attack, attack="apgd-ce")  # registered as "official-apgd-ce"
official_apgd_dlr = partial(official_attack, attack="apgd-dlr")
official_apgd_t = partial(official_attack, attack="apgd-t")
official_fab_t = partial(official_attack, attack="fab-t")
official_square = partial(official_attack, attack="square")
official_apgd_ce_rand = partial(official_attack, attack="apgd-ce", version="rand")  # eot_iter 20
official_apgd_dlr_rand = partial(official_attack, attack="apgd-dlr", version="rand")
