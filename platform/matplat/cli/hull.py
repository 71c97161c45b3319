"""``platform hull``: convex hulls of formation energy, hull distances and decompositions."""

from __future__ import annotations

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
def hull() -> None:
    """Thermodynamic stability: distance of every material to the convex hull of its system."""


@hull.command()
@click.option("--source", help="Only the materials of this source (default: every source, "
              "each judged against its own data).")
@click.option("--full", is_flag=True, help="Recompute every system, changed or not.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Materials per task (one message on a broker).")
@no_wait_option
@pass_app
def build(app: AppContext, source: str | None, full: bool, chunk_size: int,
          no_wait: bool) -> None:
    """Hulls of every chemical system whose materials changed since the last build.

    A material of system S is judged against every material whose elements are a subset of
    S, with each element at 0 eV/atom. With a broker the systems go to workers on queue `cpu`.
    """
    from workers.hull import submit_build

    check_no_wait(app, no_wait)
    check_broker(app)
    engine = app.engine()
    plan, job_id = submit_build(engine, source=source, full=full, chunk_size=chunk_size,
                                runner=runner_name(app))
    if job_id is None:
        click.echo(f"hull build {plan.build_id}: {plan.systems_total} chemical systems, none "
                   "changed since the last build; nothing to do")
        return
    job = run_job(app, job_id, desc="hulls", unit="material", no_wait=no_wait)
    if job is None:
        return
    raise_if_failed(job)
    r = job.result or {}
    left = ", ".join(f"{v} {k}" for k, v in sorted((r.get("left_out") or {}).items()))
    click.echo(
        f"hull build {r.get('build_id')}: {r.get('systems', 0)} of {r.get('systems_total', 0)} "
        f"chemical systems recomputed ({r.get('hulls', 0)} hulls), {r.get('materials', 0)} "
        f"materials, {r.get('stable', 0)} on the hull, in {job.seconds:.1f} s"
        + (f"; left out: {left}" if left else ""))


@hull.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@pass_app
def list_builds(app: AppContext, limit: int, fmt: str) -> None:
    """Hull builds, newest first: snapshot (ingest run), systems recomputed, left out."""
    from sqlalchemy import select

    from matplat.db.models import HullBuild

    t = HullBuild.__table__
    with app.engine().connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.source, t.c.ingest_run_id, t.c.job_id, t.c.status,
                                   t.c.systems_total, t.c.systems_recomputed, t.c.materials,
                                   t.c.left_out, t.c.created_at)
                            .order_by(t.c.id.desc()).limit(limit)).all()
    write(pd.DataFrame([tuple(r) for r in rows],
                       columns=["build", "source", "ingest_run", "job", "status", "systems",
                                "recomputed", "materials", "left_out", "created_at"]), fmt, None)
