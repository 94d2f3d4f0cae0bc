"""What the testbed's command lines share (``dhvc`` here, ``netsim`` in ``netsim.cli``, ``make
figures`` in ``analysis.make_figures``).

* Errors for users are one line on stderr, ``error: MESSAGE``, exit code 2 (``fail``);
  Ctrl-C is one line, exit code 130, wherever it lands (``interrupted``, ``command``,
  ``run``); click's own errors (a bad option, a missing argument) are one line too
  (``OneLineErrors``, the Typer group of every app).
* One progress bar (``progress_bar``) for every long command.
* ``--device`` accepts the names of ``codec.model.checkpoint.DEVICES``, checked by its
  ``resolve_device`` (the one device check).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from typer.core import TyperGroup

from codec.cli.launch import EXIT_INTERRUPTED, INTERRUPTED_LINE
from codec.model.device import DEVICES

try:
    # Typer 0.2x carries its own copy of click under this private name and exports none of its
    # exception classes (typer.exceptions has only their base); there is no public path to the
    # classes it raises. tests/codec/test_cli_base.py fails if this stops matching them.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer uses click itself
    from click import exceptions as click_exceptions

EXIT_USER_ERROR = 2
"""Exit code of a user error: a bad option value, an unreadable or invalid input file."""

Device = StrEnum("Device", {name.upper(): name for name in DEVICES})
"""The choices of ``--device`` (``auto``, ``cpu``, ``cuda``)."""


def echo_line(text: str) -> None:
    """``text`` on stderr as one line (runs of white space, newlines too, become one space)."""
    typer.echo(" ".join(text.split()), err=True)


def fail(message: str) -> NoReturn:
    """Print ``error: MESSAGE`` as one line and exit with code 2."""
    echo_line(f"error: {message}")
    raise typer.Exit(EXIT_USER_ERROR)


def interrupted(line: str = INTERRUPTED_LINE) -> NoReturn:
    """Print the one line for Ctrl-C and exit with code 130."""
    echo_line(line)
    raise typer.Exit(EXIT_INTERRUPTED)


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the given typed errors into ``fail`` (their message, one line, exit code 2)."""
    try:
        yield
    except kinds as err:
        fail(str(err) or type(err).__name__)


class OneLineErrors(TyperGroup):
    """A Typer group whose command-line errors are one line, ``error: MESSAGE (see CMD
    --help)``, with exit code 2, and whose interrupts are one line with exit code 130.

    Only the standalone mode (the console script, ``CliRunner``) is changed; a caller that
    asks for ``standalone_mode=False`` gets click's exceptions as before.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click_exceptions.NoArgsIsHelpError as err:
            help_text = err.format_message()  # empty where Typer has already printed the help
            if help_text.strip():
                typer.echo(help_text, err=True)
            sys.exit(err.exit_code)
        except click_exceptions.UsageError as err:
            context = getattr(err, "ctx", None)
            hint = f" (see {context.command_path} --help)" if context is not None else ""
            echo_line(f"error: {err.format_message()}{hint}")
            sys.exit(err.exit_code)
        except click_exceptions.ClickException as err:
            echo_line(f"error: {err.format_message()}")
            sys.exit(err.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            echo_line(INTERRUPTED_LINE)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


def make_app(help_text: str) -> typer.Typer:
    """A Typer app with one-line errors (``OneLineErrors``), no completion commands and no
    rich tracebacks."""
    return typer.Typer(
        cls=OneLineErrors,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def command(app: typer.Typer, *args: Any, **kwargs: Any) -> Callable[[Callable], Callable]:
    """``app.command`` whose Ctrl-C is one line and exit code 130, wherever it lands in the
    command, its imports of torch included."""

    def register(func: Callable) -> Callable:
        @functools.wraps(func)
        def run_command(*a: Any, **kw: Any) -> Any:
            try:
                return func(*a, **kw)
            except KeyboardInterrupt:
                interrupted()

        return app.command(*args, **kwargs)(run_command)

    return register


def run(app: Callable[[], object]) -> None:
    """Run a console script's app, with a Ctrl-C outside a command (while the command line is
    parsed) also one line and exit code 130."""
    try:
        app()
    except KeyboardInterrupt:
        echo_line(INTERRUPTED_LINE)
        sys.exit(EXIT_INTERRUPTED)


def progress_bar(
    console: Console, *columns: ProgressColumn, transient: bool = False, disable: bool = False
) -> Progress:
    """The testbed's progress bar on ``console``: description, bar, done/total, elapsed, then
    ``columns``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *columns,
        console=console,
        transient=transient,
        disable=disable,
    )
