"""``platform status``: where the data is, which schema, how many rows."""

from __future__ import annotations

import click
import pandas as pd
from sqlalchemy import func, select, table

from matplat.cli.context import AppContext, pass_app
from matplat.cli.output import write
from matplat.db import migrate
from matplat.db.models import PUBLIC_TABLES
from matplat.db.session import describe


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@pass_app
def status(app: AppContext, fmt: str) -> None:
    """Row counts of every public table and the schema revision."""
    engine = app.engine()
    with engine.connect() as conn:
        counts = [
            (name, conn.execute(select(func.count()).select_from(table(name))).scalar_one())
            for name in PUBLIC_TABLES
        ]
    if fmt == "table":
        click.echo(f"database: {describe(engine)}")
        click.echo(f"schema:   {migrate.current_revision(engine)} (head)")
        click.echo(f"broker:   {app.settings.broker_url or 'none (tasks run in-process)'}")
    write(pd.DataFrame(counts, columns=["table", "rows"]), fmt, None)
