"""The one family of user-facing errors; the CLI maps each to an exit code and one line of text."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TgazsrError(Exception):
    """A failure the user can act on. `exit_code` follows the CLI convention (2 usage, 1 runtime)."""

    exit_code = 1


class UsageError(TgazsrError):
    """Bad input: unknown names, out-of-range values, malformed recipes or files."""

    exit_code = 2


class RuntimeFailure(TgazsrError):
    """Valid input that could not be carried out: missing data, non-finite loss, I/O failure."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix when a close match exists, else an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UsageError:
    """A UsageError for an unknown registry name, listing the choices and the closest one."""
    choices = sorted(choices)
    return UsageError(f"unknown {kind} '{name}'{did_you_mean(name, choices)}; choose from: {', '.join(choices)}")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line error reports."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
