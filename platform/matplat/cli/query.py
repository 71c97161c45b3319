"""``platform query``: read-only SQL against the platform's tables and views."""

from __future__ import annotations

import click

from matplat.cli import checks
from matplat.cli.context import AppContext, pass_app
from matplat.cli.output import FORMATS, write
from matplat.services.query import parse_params, run_query


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
    help="Bind :NAME in the SQL (repeatable). An integer or decimal VALUE is a number, any "
    "other text; NAME:text=VALUE forces text (also :int, :float). nan/inf are refused.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop the statement after this many seconds [env PLATFORM_QUERY_TIMEOUT; default 300].",
)
@pass_app
def query(app: AppContext, sql: str, fmt: str, output: str | None, params: tuple[str, ...],
          timeout: float | None) -> None:
    """Run read-only SQL (SELECT/WITH) and print the rows.

    The statement runs on PLATFORM_QUERY_DATABASE_URL (--query-db) when set, in a read-only
    transaction, under a statement timeout; see the README for a read-only role.

    \b
    Example:
      platform query "SELECT formula, band_gap FROM material_properties WHERE band_gap > 1"
    """
    values = parse_params(params)
    df = run_query(app.query_engine(), sql, values,
                   timeout=timeout or app.settings.query_timeout)
    write(df, fmt, output)
