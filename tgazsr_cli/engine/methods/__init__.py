"""Method registry: one module per training method, registered by name on import."""

from tgazsr_cli.engine.methods import (  # noqa: F401  (importing a module registers its methods)
    agft,
    comp_tga,
    fare,
    finetune,
    pmg_aft,
    pretrain,
    tga_zsr,
    ucat,
    vision_tga,
)
from tgazsr_cli.engine.methods.base import (
    METHODS,
    LossOutput,
    TrainingMethod,
    build_method,
    get_method,
    register_method,
    resolve_method_options,
)

__all__ = ["METHODS", "LossOutput", "TrainingMethod", "build_method", "get_method", "register_method",
           "resolve_method_options"]
