"""Root command group: global options, nouns, and the one place errors become exit codes."""

from __future__ import annotations

import sys

import click
from sqlalchemy import exc as sa_exc

from matplat import __version__, interrupts
from matplat.cli.context import AppContext
from matplat.config import load_settings
from matplat.db.session import configure_timeouts
from matplat.errors import PlatformError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class PlatformGroup(click.Group):
    """Turns domain errors into one line on stderr and exit 1 (usage errors exit 2)."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            result = super().invoke(ctx)
        except PlatformError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except sa_exc.DBAPIError as e:
            reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            click.echo(f"error: database error: {reason}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            _say_interrupted()
            sys.exit(interrupts.exit_code())
        if isinstance(ctx.obj, AppContext):
            for line in ctx.obj.warnings:
                click.echo(line, err=True)
        return result


def _say_interrupted() -> None:
    """The one "interrupted" line; a closed stderr (``| head``) or a second signal while
    printing it must not turn into a traceback."""
    try:
        click.echo("interrupted: nothing was half-written; rerun to finish", err=True)
        sys.stderr.flush()
    except (BrokenPipeError, OSError, KeyboardInterrupt):
        pass


@click.group(cls=PlatformGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--db",
    "database_url",
    metavar="URL",
    help="Database URL [env PLATFORM_DATABASE_URL; default sqlite:///platform.db].",
)
@click.option(
    "--broker",
    "broker_url",
    metavar="URL",
    help="Celery broker (redis://… or amqp://…) [env PLATFORM_BROKER_URL; default: in-process].",
)
@click.option(
    "--query-db",
    "query_database_url",
    metavar="URL",
    help="Database URL for user SQL (`query`, `--where`), e.g. a read-only role "
    "[env PLATFORM_QUERY_DATABASE_URL; default: --db].",
)
@click.option(
    "--device",
    metavar="DEVICE",
    help="Torch device: auto, cpu, cuda, cuda:N [env PLATFORM_DEVICE; default auto].",
)
@click.version_option(__version__, prog_name="platform")
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str | None,
    broker_url: str | None,
    query_database_url: str | None,
    device: str | None,
) -> None:
    """matplat: OQMD ingest, CGNN crystal graphs, model training and predictions in SQL."""
    try:
        settings = load_settings(database_url=database_url, broker_url=broker_url,
                                 device=device, query_database_url=query_database_url)
    except PlatformError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    configure_timeouts(settings.connect_timeout, settings.read_timeout)
    ctx.obj = AppContext(settings=settings)


def _register() -> None:
    from matplat.cli import (
        db,
        export,
        graphs,
        ingest,
        jobs,
        models,
        query,
        sample,
        status,
        train,
    )

    cli.add_command(db.db)
    cli.add_command(status.status)
    cli.add_command(query.query)
    cli.add_command(ingest.ingest)
    cli.add_command(sample.sample)
    cli.add_command(graphs.graphs)
    cli.add_command(models.models)
    cli.add_command(train.train)
    cli.add_command(train.predict)
    cli.add_command(export.export)
    cli.add_command(jobs.jobs)
    cli.add_command(jobs.worker)


_register()


def main() -> None:
    interrupts.install()
    try:
        cli(prog_name="platform")
    except KeyboardInterrupt:  # a signal outside a command (while parsing, at exit)
        _say_interrupted()
        sys.exit(interrupts.exit_code())
