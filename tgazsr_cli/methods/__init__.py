"""Method registry: one module per training method, registered by name on import (every module of this
package is imported here, so a new method is one new module)."""

from tgazsr_cli.methods.base import (
    METHODS,
    LossOutput,
    TrainingMethod,
    build_method,
    get_method,
    register_method,
    resolve_method_options,
)
from tgazsr_cli.runtime.registry import import_members

__all__ = ["METHODS", "LossOutput", "TrainingMethod", "build_method", "get_method", "register_method",
           "resolve_method_options"]

MEMBER_MODULES = import_members(__name__, __path__)
