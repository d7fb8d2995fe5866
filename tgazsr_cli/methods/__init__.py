"""Training methods: one module per method, registered by name on import (every module of this package is
imported here, so a new method is one new module; modules in $TGAZSR_PLUGIN_PATH add more on first lookup). The modules
import torch only where they compute, so the registry, each method's Options and their checks are torch-free."""

from tgazsr_cli.methods.base import (
    METHODS,
    LossOutput,
    TrainingMethod,
    all_methods,
    build_method,
    get_method,
    register_method,
    resolve_method_options,
)
from tgazsr_cli.runtime.registry import import_members

__all__ = [
    "METHODS",
    "LossOutput",
    "TrainingMethod",
    "all_methods",
    "build_method",
    "get_method",
    "register_method",
    "resolve_method_options",
]

MEMBER_MODULES = import_members(__name__, __path__)
