"""Recipes: the typed schema, loading from YAML and `--set`, the 0.1 reader. Imports neither torch nor methods."""
