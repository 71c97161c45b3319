"""``platform db``: schema migrations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from matplat.cli.context import AppContext, pass_app
from matplat.db import migrate
from matplat.db.session import describe
from matplat.errors import InputError


@contextlib.contextmanager
def _revision_errors(revision: str) -> Iterator[None]:
    """Alembic's refusals (unknown revision, a downgrade target above the current one) as the
    project's one-line error."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as e:
        raise InputError(f"revision {revision!r}: {e}") from None


@click.group()
def db() -> None:
    """Database schema: upgrade, downgrade, current revision."""


@db.command()
@click.argument("revision", default="head")
@pass_app
def upgrade(app: AppContext, revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    engine = app.engine(require_schema=False)
    before = migrate.current_revision(engine)
    with _revision_errors(revision):
        migrate.upgrade(engine, revision)
    after = migrate.current_revision(engine)
    if before == after:
        click.echo(f"{describe(engine)}: already at {after}")
    else:
        click.echo(f"{describe(engine)}: upgraded {before or 'base'} -> {after}")


@db.command()
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def downgrade(app: AppContext, revision: str, yes: bool) -> None:
    """Migrate the database down to REVISION (`base` drops every table)."""
    engine = app.engine(require_schema=False)
    if not yes:
        click.confirm(
            f"Downgrade {describe(engine)} to {revision}? Data in dropped tables is lost",
            abort=True,
        )
    before = migrate.current_revision(engine)
    with _revision_errors(revision):
        migrate.downgrade(engine, revision)
    click.echo(
        f"{describe(engine)}: downgraded {before} -> {migrate.current_revision(engine) or 'base'}"
    )


@db.command()
@pass_app
def current(app: AppContext) -> None:
    """Print the database's schema revision and the head revision."""
    engine = app.engine(require_schema=False)
    cur = migrate.current_revision(engine)
    head = migrate.head_revision()
    state = "at head" if cur == head else "NOT at head: run `platform db upgrade`"
    click.echo(f"current: {cur or 'base (empty)'}\nhead:    {head}\n{state}")
