"""``platform discover``: hypothetical compounds from known structures, ranked by stability."""

from __future__ import annotations

import click

from matplat.cli import checks
from matplat.cli.context import AppContext, pass_app
from matplat.cli.jobrun import (
    check_broker,
    check_no_wait,
    no_wait_option,
    raise_if_failed,
    run_job,
    runner_name,
)

SHOWN = ("rank", "formula", "parent_formula", "probability", "formation_energy",
         "e_above_hull", "decomposition")


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.command()
@click.option("--model-tag", "tag", callback=checks.tag,
              help="Model version that predicts the candidates.")
@click.option("--alias", callback=checks.alias,
              help="Use the model version an alias (e.g. production) points at.")
@click.option("--elements", help="Target chemical system, e.g. Li,Fe,P,O.")
@click.option("--compositions", help="Target compositions, e.g. LiFePO4,NaFePO4.")
@click.option("--max-atoms", type=int, default=40, show_default=True,
              help="Largest parent cell (atoms) to substitute into.")
@click.option("--min-probability", type=float, default=1e-3, show_default=True,
              help="Smallest substitution probability (product over the species map).")
@click.option("--limit", type=int, help="Keep only the N most probable new candidates.")
@click.option("--name", help="Run name (candidates become source candidates:NAME); default: "
              "the chemical system and model tag.")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="Print the N best-ranked candidates.")
@no_wait_option
@pass_app
def discover(app: AppContext, tag: str | None, alias: str | None, elements: str | None,
             compositions: str | None, max_atoms: int, min_probability: float,
             limit: int | None, name: str | None, show: int, no_wait: bool) -> None:
    """Substitute species into known structures, predict the candidates, rank by stability.

    Each candidate is stored as a material of source candidates:NAME with its lineage; the
    view candidate_ranking ranks a run by predicted hull distance. Rerunning adds nothing.
    """
    from workers.discover import DiscoverRequest, plan_discover, ranking

    if (tag is None) == (alias is None):
        raise click.UsageError("give exactly one of --model-tag or --alias")
    if (elements is None) == (compositions is None):
        raise click.UsageError("give exactly one of --elements or --compositions")
    engine = app.engine()
    check_no_wait(app, no_wait)
    check_broker(app)
    req = DiscoverRequest(tag=tag, alias=alias, elements=_split(elements),
                          compositions=_split(compositions), max_atoms=max_atoms,
                          min_probability=min_probability, limit=limit, name=name)
    plan, job_id = plan_discover(engine, req, runner=runner_name(app))
    click.echo(f"run {plan.run}: {plan.generated} candidates from {plan.parents} parents, "
               f"{plan.already} already in the database, {plan.planned} to make "
               f"with model {plan.tag}")
    if job_id is not None:
        job = run_job(app, job_id, desc=f"discover {plan.run}", unit="candidate",
                      no_wait=no_wait)
        if job is None:
            return
        raise_if_failed(job)
        r = job.result or {}
        click.echo(f"stored {r.get('stored', 0)} candidates ({r.get('failed', 0)} failed) in "
                   f"{job.seconds:.1f} s")
    if show:
        df = ranking(engine, plan.run, show)
        if len(df):
            click.echo(df[list(SHOWN)].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
