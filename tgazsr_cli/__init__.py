"""tgazsr: text-guided attention for zero-shot adversarial robustness of CLIP models.

The stable Python API is what `__all__` lists; everything else may change between releases. Importing this
package imports neither torch nor open_clip: each name is loaded on first use.

    import tgazsr_cli as tz
    result = tz.evaluate(model="tgazsr-mini", pretrained="tgazsr:mini-world-clip", datasets=["digits"], eps=2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tgazsr_cli.runtime.lazy import lazy_exports

__version__ = "0.1.0"

_PUBLIC = {  # name -> module that defines it
    "load_model": "tgazsr_cli.api.public",
    "load_dataset": "tgazsr_cli.api.public",
    "load_recipe": "tgazsr_cli.api.public",
    "train": "tgazsr_cli.api.public",
    "evaluate": "tgazsr_cli.api.public",
    "attack": "tgazsr_cli.api.public",
    "attention_maps": "tgazsr_cli.api.public",
    "list_methods": "tgazsr_cli.api.public",
    "list_attacks": "tgazsr_cli.api.public",
    "list_datasets": "tgazsr_cli.api.public",
    "list_protocols": "tgazsr_cli.api.public",
    "load_protocol": "tgazsr_cli.api.public",
    "ThreatModel": "tgazsr_cli.attacks.threat",
    "TrainRequest": "tgazsr_cli.api.train",
    "EvalRequest": "tgazsr_cli.api.evaluate",
    "AttackRequest": "tgazsr_cli.api.attack",
    "VisualizeRequest": "tgazsr_cli.api.visualize",
    "TgazsrError": "tgazsr_cli.errors",
    "UsageError": "tgazsr_cli.errors",
    "RuntimeFailure": "tgazsr_cli.errors",
}

__all__ = [
    "AttackRequest",
    "EvalRequest",
    "RuntimeFailure",
    "TgazsrError",
    "ThreatModel",
    "TrainRequest",
    "UsageError",
    "VisualizeRequest",
    "__version__",
    "attack",
    "attention_maps",
    "evaluate",
    "list_attacks",
    "list_datasets",
    "list_methods",
    "list_protocols",
    "load_dataset",
    "load_model",
    "load_protocol",
    "load_recipe",
    "train",
]

if TYPE_CHECKING:
    from tgazsr_cli.api.attack import AttackRequest
    from tgazsr_cli.api.evaluate import EvalRequest
    from tgazsr_cli.api.public import (
        attack,
        attention_maps,
        evaluate,
        list_attacks,
        list_datasets,
        list_methods,
        list_protocols,
        load_dataset,
        load_model,
        load_protocol,
        load_recipe,
        train,
    )
    from tgazsr_cli.api.train import TrainRequest
    from tgazsr_cli.api.visualize import VisualizeRequest
    from tgazsr_cli.attacks.threat import ThreatModel
    from tgazsr_cli.errors import RuntimeFailure, TgazsrError, UsageError

__getattr__ = lazy_exports(__name__, _PUBLIC)


def __dir__() -> list[str]:
    return sorted(__all__)
