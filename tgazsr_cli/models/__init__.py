"""The zero-shot classifier over any open_clip model: building it, attention maps, the text-feature cache, LoRA,
shipped configs and weights.
"""
