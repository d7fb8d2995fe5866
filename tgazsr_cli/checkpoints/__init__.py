"""tgazsr checkpoints: the typed metadata and its one reader (`metadata`), the safetensors container with optimiser
state (`checkpoint`) and RNG state (`rng`), run folders (`run_dir`), LoRA merging of checkpoints (`plain`), models
from checkpoints and pretrained names (`loading`), open_clip export (`export`).
"""
