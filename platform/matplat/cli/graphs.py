"""``platform graphs``: build and inspect CGNN crystal graphs."""

from __future__ import annotations

import os

import click
import pandas as pd

from matplat.cli.context import AppContext, pass_app
from matplat.cli.jobrun import (
    check_broker,
    check_no_wait,
    no_wait_option,
    raise_if_failed,
    run_job,
    runner_name,
)
from matplat.cli.output import write


@click.group()
def graphs() -> None:
    """Crystal graphs (CGNN crystal graph coordinator), stored per recipe."""


@graphs.command()
@click.option(
    "--recipe",
    default="cgc",
    show_default=True,
    help="cgc (exact image search) or cgc-reference27 (the reference's 27 images).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=lambda: min(os.cpu_count() or 1, 8),
    show_default="CPU count",
    help="Processes building graphs in parallel.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Build at most N graphs.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Structures per task (one message on a broker) and per commit.")
@no_wait_option
@pass_app
def build(app: AppContext, recipe: str, workers: int, limit: int | None, chunk_size: int,
          no_wait: bool) -> None:
    """Build graphs for every structure that lacks one for RECIPE (resumable, idempotent).

    With a broker the ranges go to workers on queue `cpu`; otherwise they run here, on
    --workers processes.
    """
    from workers.graphs import graph_failures, submit_build

    check_no_wait(app, no_wait)
    check_broker(app)
    engine = app.engine()
    job_id = submit_build(engine, recipe, limit=limit, chunk_size=chunk_size,
                          runner=runner_name(app))
    if job_id is None:
        click.echo(f"recipe {recipe}: every structure already has a graph; nothing to do")
        return
    if app.settings.broker_url or workers <= 1:
        job = run_job(app, job_id, desc=f"graphs {recipe}", unit="graph", no_wait=no_wait)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            job = run_job(app, job_id, desc=f"graphs {recipe}", unit="graph", pool=pool)
    if job is None:
        return
    raise_if_failed(job)
    r = job.result or {}
    seconds = job.seconds
    rate = (r.get("built", 0) + r.get("failed", 0)) / seconds if seconds else 0.0
    click.echo(
        f"recipe {r.get('recipe', recipe)}: built {r.get('built', 0)}, failed "
        f"{r.get('failed', 0)} in {seconds:.1f} s ({rate:.0f} structures/s)"
    )
    if r.get("failed"):
        for sid, err in graph_failures(engine, int(r["recipe_id"]), 5):
            click.echo(f"  structure {sid}: {err}", err=True)


@graphs.command()
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@pass_app
def stats(app: AppContext, fmt: str) -> None:
    """Graph counts, mean degree, isolated atoms and failures per recipe."""
    from workers.graphs import graph_stats

    rows = graph_stats(app.engine())
    write(
        pd.DataFrame(
            rows,
            columns=[
                "recipe",
                "recipe_id",
                "code_version",
                "graphs",
                "failed",
                "missing",
                "mean_degree",
                "isolated_atoms",
            ],
        ),
        fmt,
        None,
    )
