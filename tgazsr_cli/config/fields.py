"""Typed settings: one coercer for every recipe section and every method's Options.

A field's type says what it accepts and its constraints sit next to it, e.g.
`lr: Annotated[float, Bounds(gt=0)] = 1e-4` or `distance: Literal["l2", "cos", "l1"] = "l2"`, so a wrong value in
any section or method gets the same one-line error naming the key and what is allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from tgazsr_cli.errors import UsageError, did_you_mean


@dataclass(frozen=True)
class Bounds:
    """Numeric bounds of a field (`Annotated[float, Bounds(ge=0, lt=1)]`); `unit` names what the number counts."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    unit: str = ""

    def describe(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else None
        if low and high:
            text = f"in {low}, {high}"
        elif low:
            text = f"{'>=' if self.ge is not None else '>'} {low[1:]}"
        else:
            text = f"{'<=' if self.le is not None else '<'} {high[:-1] if high else ''}"
        return f"{text} (in units of {self.unit})" if self.unit else text

    def holds(self, value: float) -> bool:
        return not ((self.gt is not None and value <= self.gt) or (self.ge is not None and value < self.ge)
                    or (self.lt is not None and value >= self.lt) or (self.le is not None and value > self.le))


POSITIVE = Bounds(gt=0)
NON_NEGATIVE = Bounds(ge=0)
Positive = Annotated[float, POSITIVE]
NonNegative = Annotated[float, NON_NEGATIVE]
PositiveInt = Annotated[int, POSITIVE]
NonNegativeInt = Annotated[int, NON_NEGATIVE]


@dataclass(frozen=True)
class Check:
    """A custom check: `problem(value)` returns what is wrong (one phrase) or None."""

    problem: Callable[[Any], str | None]


@dataclass(frozen=True)
class BooleanWords:
    """What YAML booleans meant for a choice field (`compile: true` was written before it took a mode)."""

    words: tuple[tuple[bool, str], ...]


def _error(key: str, text: str, value: Any) -> UsageError:
    return UsageError(f"recipe key '{key}' {text}, got {value!r}")


def coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` checked against a field's type hint, converted only where that is lossless."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        if isinstance(value, bool):
            for extra in extras:
                if isinstance(extra, BooleanWords):
                    value = dict(extra.words).get(value, value)
        value = coerce(value, base, key)
        for extra in extras:
            if isinstance(extra, Bounds) and not extra.holds(value):
                raise _error(key, f"must be {extra.describe()}", value)
            if isinstance(extra, Check) and (problem := extra.problem(value)):
                raise _error(key, problem, value)
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(value, inner, key)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value is False and "off" in choices:
            value = "off"  # YAML reads a bare `off` as false
        if value not in choices:
            raise UsageError(f"recipe key '{key}' must be one of {', '.join(map(str, choices))}, got {value!r}"
                             f"{did_you_mean(str(value), map(str, choices))}")
        return value
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise _error(key, "must be a mapping", value)
    if origin is list:
        (inner,) = typing.get_args(hint)
        items = value if isinstance(value, list) else [value]
        if isinstance(value, str) and inner is str and "," in value:
            items = [part.strip() for part in value.split(",") if part.strip()]
        return [coerce(item, inner, key) for item in items]
    return _scalar(value, hint, key)


def _scalar(value: Any, hint: Any, key: str) -> Any:
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if hint is float and not isinstance(value, bool):
        number: float | None = float(value) if isinstance(value, int | float) else None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)  # YAML reads "1e-4" as a string
        if number is not None:
            if not math.isfinite(number):
                raise _error(key, "must be a finite number", value)
            return number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    raise _error(key, f"must be {getattr(hint, '__name__', str(hint))}", value)


def build_section(cls: type, data: Any, prefix: str) -> Any:
    """An instance of the dataclass `cls` from a mapping, every value coerced; unknown keys are errors."""
    if not isinstance(data, dict):
        raise UsageError(f"recipe section '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise UsageError(f"unknown recipe key '{full}'{did_you_mean(str(key), names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = build_section(hint, value or {}, f"{full}.")
        else:
            values[key] = coerce(value, hint, full)
    return cls(**values)


def choices_of(cls: type, name: str) -> tuple[str, ...]:
    """The allowed values of a Literal field (for help texts and listings)."""
    hint = typing.get_type_hints(cls, include_extras=True)[name]
    while typing.get_origin(hint) in (Annotated, typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return tuple(typing.get_args(hint))
