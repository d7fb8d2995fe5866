"""The computing half of tgazsr: no terminal, no Typer, no Rich.

Section references such as "spec §2" point at `docs/method-spec.md`.
"""
