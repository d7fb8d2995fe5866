"""`tgazsr`: the application object, its commands, and the mapping of errors to exit codes.

Exit codes: 0 ok, 2 usage or configuration error, 1 runtime error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
import traceback
import warnings
from typing import Annotated

import click
import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from tgazsr_cli import __version__
from tgazsr_cli.cli import attack, convert, evaluate, export, listing, protocols, train, visualize
from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import console


class NoTypeOnHelp:
    """`--help` takes no value either: no `<bool>` beside it in help screens (see options.flag)."""

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class Group(NoTypeOnHelp, TyperGroup):
    pass


class Command(NoTypeOnHelp, TyperCommand):
    pass


app = typer.Typer(
    name="tgazsr",
    cls=Group,
    help="Make CLIP models robust to adversarial images without losing zero-shot ability (TGA-ZSR and baselines).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.command("train", cls=Command)(train.train)
app.command("eval", cls=Command)(evaluate.evaluate)
app.command("attack", cls=Command)(attack.attack)
app.command("visualize-attention", cls=Command)(visualize.visualize_attention)
app.command("export", cls=Command)(export.export)
app.command("convert", cls=Command)(convert.convert)
app.command("methods", cls=Command)(listing.methods)
app.command("attacks", cls=Command)(listing.attacks)
app.command("datasets", cls=Command)(listing.datasets)
app.command("models", cls=Command)(listing.models)
app.command("recipes", cls=Command)(listing.recipes)
app.command("protocols", cls=Command)(protocols.protocols)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tgazsr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[bool, opt.flag("--verbose", "-v", help="Show full tracebacks on errors.")] = False,
    version: Annotated[bool, opt.flag("--version", callback=_version, is_eager=True, help="Print the version.")
                       ] = False,
) -> None:
    """Train, attack, evaluate and visualise adversarially robust CLIP models."""


# Typer may vendor its own copy of click: catch the exception classes its commands actually raise.
CLICK_ERRORS = tuple({next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
                      click.ClickException})
EXITS = tuple({typer.Exit, click.exceptions.Exit})
ABORTS = tuple({typer.Abort, click.exceptions.Abort, KeyboardInterrupt})


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     line: str | None = None) -> str:
    """Warnings as one 'warning:' line on stderr, like errors (Python's default adds the source line)."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; every failure is one line on stderr unless -v is given."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    from tgazsr_cli.errors import TgazsrError

    try:
        result = app(args=args, prog_name="tgazsr", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except EXITS as exc:
        return exc.exit_code
    except CLICK_ERRORS as exc:
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        console.print(f"[red]error:[/red] {escape(exc.format_message())}{hint}")
        return exc.exit_code
    except ABORTS:
        console.print("[red]interrupted[/red]")
        return 130
    except TgazsrError as exc:
        if verbose:
            traceback.print_exc()
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return exc.exit_code
    except Exception as exc:  # the last line of defence: never a bare traceback for users
        if verbose:
            traceback.print_exc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        console.print(f"[red]error:[/red] {type(exc).__name__}: {escape(message)} (run with -v for the traceback)")
        return 1


def run() -> None:
    """The console script: warnings print as one line unless -v (only the format: recorders still get them)."""
    if "-v" not in sys.argv and "--verbose" not in sys.argv:
        warnings.formatwarning = one_line_warning
    sys.exit(main())
