"""``platform serve``: the OPTIMADE API and the web UI (uvicorn), read-only.

Starlette and uvicorn are imported inside the command, so ``platform --help`` stays fast.
"""

from __future__ import annotations

import os

import click

from matplat.cli.context import AppContext, pass_app
from matplat.db.session import describe, get_engine

SERVE_URL_ENV = "PLATFORM_SERVE_DATABASE_URL"
TIMEOUT_ENV = "PLATFORM_SERVE_TIMEOUT"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (127.0.0.1: this machine only; 0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes.")
@click.option("--timeout", "timeout_s", default=5.0, show_default=True,
              type=click.FloatRange(0.1, 600), help="Seconds one request's SQL may run.")
@click.option("--serve-db", "serve_db", metavar="URL",
              help=f"Database URL to serve through, e.g. a read-only role [env {SERVE_URL_ENV}; "
                   "default: the platform's database URL].")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="First bring material_summaries up to date through the platform's database "
                   "URL (needs write access; skip it when serving through a read-only role only).")
@pass_app
def serve(app: AppContext, host: str, port: int, workers: int, timeout_s: float,
          serve_db: str | None, refresh: bool) -> None:
    """Serve OPTIMADE at /optimade/v1/ and the web pages at / (read-only).

    The server reads through PLATFORM_SERVE_DATABASE_URL when set (a read-only database
    role), else through the platform's database URL; every request is a read-only
    transaction with a statement timeout.
    """
    serve_url = serve_db or os.environ.get(SERVE_URL_ENV) or app.settings.database_url
    if refresh:
        from matplat.serve.summaries import refresh as refresh_summaries

        engine = app.engine()
        n = refresh_summaries(engine, progress=lambda done, total: click.echo(
            f"\rmaterial summaries: {done}/{total}", nl=False, err=True))
        if n:
            click.echo("", err=True)
    else:
        get_engine(serve_url)  # a malformed URL fails here, with the usual message
    import uvicorn

    from matplat.serve.app import create_app

    os.environ[SERVE_URL_ENV] = serve_url
    os.environ[TIMEOUT_ENV] = str(timeout_s)
    create_app(serve_url, timeout_s).state.db.dispose()  # a bad database fails here, not per worker
    click.echo(f"serving {describe(get_engine(serve_url))} read-only at http://{host}:{port}/ "
               f"(OPTIMADE: http://{host}:{port}/optimade/v1/)", err=True)
    uvicorn.run("matplat.serve.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False)
