"""Method registry: one module per training method, registered by name on import."""

from tgazsr_cli.engine.methods import tga_zsr as _tga_zsr  # noqa: F401  (registers tga-zsr, tecoa)
from tgazsr_cli.engine.methods.base import (
    METHODS,
    LossOutput,
    TrainingMethod,
    build_method,
    get_method,
    register_method,
)

__all__ = ["METHODS", "LossOutput", "TrainingMethod", "build_method", "get_method", "register_method"]
