"""The ``platform`` command."""

from matplat.cli.main import cli, main

__all__ = ["cli", "main"]
