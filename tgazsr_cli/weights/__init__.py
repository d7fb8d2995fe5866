"""Weights from elsewhere: files read without executing code, the OpenAI layout, published robust-CLIP layouts, hub
files.
"""
