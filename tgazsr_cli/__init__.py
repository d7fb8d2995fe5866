"""tgazsr: text-guided attention for zero-shot adversarial robustness of CLIP models."""

__version__ = "0.1.0"
