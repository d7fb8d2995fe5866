from __future__ import annotations

import math

import pytest

from tgazsr_cli.training.schedule import learning_rate


def test_linear_warmup_then_half_cosine_to_zero() -> None:
    base, warmup, total = 1e-4, 1000, 7820
    assert learning_rate(0, base, warmup, total) == pytest.approx(base / 1000)
    assert learning_rate(499, base, warmup, total) == pytest.approx(base * 500 / 1000)
    assert learning_rate(1000, base, warmup, total) == pytest.approx(base)
    middle = 1000 + (total - 1000) // 2
    assert learning_rate(middle, base, warmup, total) == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * 0.5)),
                                                                       rel=1e-3)
    assert learning_rate(total, base, warmup, total) == pytest.approx(0.0, abs=1e-15)


def test_constant_schedule_after_warmup() -> None:
    assert learning_rate(5000, 0.1, 10, 100, "constant") == 0.1
