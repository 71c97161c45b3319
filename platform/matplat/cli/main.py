"""Root command group: global options, nouns, and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import sys

import click
from sqlalchemy import exc as sa_exc

from matplat import __version__, interrupts
from matplat.cli.context import AppContext
from matplat.config import load_settings
from matplat.db.session import configure_timeouts
from matplat.errors import PlatformError
from matplat.outputs import describe_os_error

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class PlatformGroup(click.Group):
    """Turns domain errors into one line on stderr and exit 1 (usage errors exit 2)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            if getattr(ctx, "_matplat_listing", False):
                return _Summary(cmd_name, COMMANDS[cmd_name][2])
            self.add_command(_load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx._matplat_listing = True  # type: ignore[attr-defined]
        try:
            super().format_commands(ctx, formatter)
        finally:
            ctx._matplat_listing = False  # type: ignore[attr-defined]

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
        except OSError as e:
            if isinstance(e, BrokenPipeError):
                raise
            # A file system that refused a write or read (full, read-only, gone): one line.
            click.echo(f"error: {describe_os_error(e)}", err=True)
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


# name: (module, attribute, one-line summary). Commands are imported only when run, so that
# `platform --help` loads neither pandas nor alembic nor torch (tests/cli/test_cli_startup.py
# checks each summary against its command's own help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "db": ("matplat.cli.db", "db", "Database schema: upgrade, downgrade, current revision."),
    "status": ("matplat.cli.status", "status",
               "Row counts of every public table and the schema revision."),
    "query": ("matplat.cli.query", "query", "Run read-only SQL (SELECT/WITH) and print the rows."),
    "ingest": ("matplat.cli.ingest", "ingest",
               "Stream an OQMD mysqldump (PATH: .sql, .sql.gz, or - for stdin), or structure files, in."),
    "sample": ("matplat.cli.sample", "sample",
               "Generate synthetic inputs (clearly marked synthetic)."),
    "graphs": ("matplat.cli.graphs", "graphs",
               "Crystal graphs (CGNN crystal graph coordinator), stored per recipe."),
    "hull": ("matplat.cli.hull", "hull",
             "Thermodynamic stability: distance of every material to the convex hull of its system."),
    "models": ("matplat.cli.models", "models",
               "Registered model versions: list, show, alias, export, import, delete."),
    "train": ("matplat.cli.train", "train",
              "Train a CGNN on the stored graphs and register it as model version TAG."),
    "predict": ("matplat.cli.train", "predict",
                "Predict every selected material's properties and write them into `predictions`."),
    "reproduce": ("matplat.cli.reproduce", "reproduce", "Reproduce published results on your data."),
    "export": ("matplat.cli.export", "export",
               "Export graphs in the CGNN reference format, predictions as CSV/Parquet, or structures."),
    "jobs": ("matplat.cli.jobs", "jobs",
             "Long work (graph builds, training, predictions) and its progress, on any machine."),
    "worker": ("matplat.cli.jobs", "worker",
               "Start a Celery worker with the platform's settings (extra arguments go to Celery)."),
    "serve": ("matplat.cli.serve", "serve",
              "Serve OPTIMADE at /optimade/v1/ and the web pages at / (read-only)."),
    "discover": ("matplat.cli.discover", "discover",
                 "Substitute species into known structures, predict the candidates, rank by "
                 "stability."),
}


def _load(name: str) -> click.Command:
    module, attr, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), attr)


class _Summary(click.Command):
    """Stands in for a command in the help listing without importing it."""

    def __init__(self, name: str, summary: str) -> None:
        super().__init__(name, help=summary)


def main() -> None:
    interrupts.install()
    try:
        cli(prog_name="platform")
    except KeyboardInterrupt:  # a signal outside a command (while parsing, at exit)
        _say_interrupted()
        sys.exit(interrupts.exit_code())
