"""``platform query``: read-only SQL against the platform's tables and views."""

from __future__ import annotations

import click

from matplat.cli import checks
from matplat.cli.context import AppContext, pass_app
from matplat.cli.output import FORMATS, write
from matplat.errors import InputError
from matplat.services.query import run_query


def _parse_params(values: tuple[str, ...]) -> dict[str, object]:
    params: dict[str, object] = {}
    for item in values:
        if "=" not in item:
            raise InputError(f"--param {item!r}: expected name=value")
        name, raw = item.split("=", 1)
        value: object = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        params[name.strip()] = value
    return params


@click.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    callback=checks.output_file,
    help="Write to FILE instead of stdout (checked before the query runs).",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Bind :NAME in the SQL (repeatable); numbers are passed as numbers.",
)
@pass_app
def query(app: AppContext, sql: str, fmt: str, output: str | None, params: tuple[str, ...]) -> None:
    """Run read-only SQL (SELECT/WITH) and print the rows.

    \b
    Example:
      platform query "SELECT formula, band_gap FROM material_properties WHERE band_gap > 1"
    """
    df = run_query(app.engine(), sql, _parse_params(params))
    write(df, fmt, output)
