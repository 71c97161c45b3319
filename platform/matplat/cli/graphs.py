"""``platform graphs``: build and inspect CGNN crystal graphs."""

from __future__ import annotations

import os

import click
import pandas as pd

from matplat.cli.context import AppContext, pass_app
from matplat.cli.output import write
from matplat.cli.progress import count_bar


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
@click.option("--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True)
@pass_app
def build(app: AppContext, recipe: str, workers: int, limit: int | None, chunk_size: int) -> None:
    """Build graphs for every structure that lacks one for RECIPE (resumable, idempotent)."""
    from workers.graphs import build_graphs, graph_failures

    engine = app.engine()
    with count_bar(None, f"graphs {recipe}", unit="graph") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = build_graphs(
            engine, recipe, workers=workers, limit=limit, chunk_size=chunk_size, progress=progress
        )
    if summary.pending == 0:
        click.echo(f"recipe {summary.recipe}: every structure already has a graph; nothing to do")
        return
    click.echo(
        f"recipe {summary.recipe}: built {summary.built}, failed {summary.failed} "
        f"in {summary.seconds:.1f} s ({summary.per_second:.0f} structures/s)"
    )
    if summary.failed:
        for sid, err in graph_failures(engine, summary.recipe_id, 5):
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
