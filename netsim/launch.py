"""The ``netsim`` console script: ``netsim.cli:main`` with Ctrl-C handled from the first
instruction (``codec.cli.launch``)."""

from __future__ import annotations

from codec.cli.launch import launch


def main() -> None:
    """Run ``netsim.cli:main``; a Ctrl-C while it loads is one line and exit code 130."""
    launch("netsim.cli:main")
