"""Console-script launchers: import a Typer app's ``main`` with Ctrl-C handled from the start.

A console script imports its target before calling it, and the CLIs' imports (typer, rich,
numpy, torch) take a few tenths of a second; a Ctrl-C in that window used to print a
``KeyboardInterrupt`` traceback. These launchers import only the standard library before the
``try``, so an interrupt at any moment prints one line and exits with code 130.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as a shell reports a process SIGINT ended; defined
here, with its line, because a launcher imports nothing but the standard library
(``codec.cli.base`` uses both)."""

INTERRUPTED_LINE = "interrupted"
"""What every command line prints after Ctrl-C."""


def launch(target: str) -> None:
    """Import ``module:attribute`` and call it; a Ctrl-C during either is one line, exit 130."""
    module, _, attribute = target.partition(":")
    try:
        entry: Callable[[], object] = getattr(importlib.import_module(module), attribute)
        entry()
    except KeyboardInterrupt:
        print(INTERRUPTED_LINE, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def dhvc() -> None:
    """The ``dhvc`` console script: ``codec.cli.dhvc:main``."""
    launch("codec.cli.dhvc:main")
