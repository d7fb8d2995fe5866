"""tgazsr checkpoints: the safetensors format and its typed metadata, run folders, models from checkpoints, open_clip
export.
"""
