"""Click callbacks that check names and output paths while the command line is parsed.

They run before a command touches the database, so a bad tag or an unwritable path costs
nothing and leaves nothing behind; their errors are the project's one-line errors.
"""

from __future__ import annotations

from typing import Any

import click

from matplat import names, outputs


def tag(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A model tag (``--model-tag``, ``TAG``): see :mod:`matplat.names`."""
    if value is None:
        return None
    return names.check_tag(value, _label(param, "model tag"))


def alias(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """An alias name (``--alias``, ``NAME``)."""
    if value is None:
        return None
    return names.check_alias(value, _label(param, "alias"))


def output_file(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A file the command will write: it must be creatable now."""
    if value is None or value == "-":
        return value
    outputs.check_file(value, _label(param, "output file"))
    return value


def output_dir(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A directory the command will write files into: it must exist or be creatable now."""
    if value is None:
        return None
    outputs.check_dir(value, _label(param, "output directory"))
    return value


def _label(param: click.Parameter, default: str) -> str:
    opts = getattr(param, "opts", None) or []
    flags = [o for o in opts if o.startswith("--")]
    return flags[0] if flags else default
