"""``platform models``: the registry of trained model versions."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from matplat import names
from matplat.cli import checks
from matplat.cli.context import AppContext, pass_app
from matplat.cli.output import json_text, write
from matplat.errors import InputError
from matplat.outputs import writing
from matplat.services import registry


@click.group()
def models() -> None:
    """Registered model versions: list, show, alias, export, import, delete."""


@models.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@pass_app
def list_(app: AppContext, fmt: str) -> None:
    """Every model version with its targets, test MAE, predictions and aliases."""
    rows = registry.list_versions(app.engine())
    cols = [
        "tag",
        "preset",
        "targets",
        "ensemble",
        "parameters",
        "test_mae",
        "predictions",
        "aliases",
        "created_at",
    ]
    write(pd.DataFrame(rows, columns=cols), fmt, None)


def _print_show(info: dict) -> None:
    hp = info.get("hyperparameters") or {}
    lines = [
        f"tag:               {info['tag']}",
        f"name / preset:     {info['name']} / {info['preset']}",
        f"targets:           {', '.join(info['targets'])}",
        f"parameters:        {info['n_parameters']:,}"
        if info.get("n_parameters")
        else "parameters:        ?",
        f"ensemble members:  {info['ensemble_size']}",
        f"graph recipe:      {(info.get('graph_recipe') or {}).get('name')} "
        f"({((info.get('graph_recipe') or {}).get('params_hash') or '')[:12]})",
        f"split:             {(info.get('split') or {}).get('name')} "
        f"{(info.get('split') or {}).get('counts') or ''}",
        f"data snapshot:     {info['data_snapshot_hash']}",
        f"code version:      {info['code_version']}",
        f"seed:              {info['seed']}",
        f"weights:           {info['artifact_bytes']:,} bytes, sha256 {info['artifact_sha256']}",
        f"created:           {info['created_at']}",
        f"aliases:           {', '.join(info['aliases']) or '-'}",
        f"predictions:       {info['predictions']:,}",
    ]
    click.echo("\n".join(lines))
    click.echo("hyperparameters:   " + json.dumps(hp, sort_keys=True))
    test = (info.get("metrics") or {}).get("test") or {}
    if test:
        rows = []
        for target, m in test.items():
            if isinstance(m, dict):
                rows.append({"target": target, **m})
        click.echo("\ntest metrics:")
        click.echo(pd.DataFrame(rows).to_string(index=False))
    for run in info.get("training_runs") or []:
        hist = run.get("history") or []
        click.echo(
            f"\nmember {run['member']} (seed {run['seed']}, {run['device']}): "
            f"{len(hist)} epochs, best epoch {run['best_epoch']}, {run['seconds'] or 0:.1f} s"
        )


@models.command()
@click.argument("tag", callback=checks.tag)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(file_okay=False),
    callback=checks.output_dir,
    help="Write parity plots (test set) and learning curves as PNG into DIR.",
)
@pass_app
def show(app: AppContext, tag: str, fmt: str, plot_dir: str | None) -> None:
    """Everything recorded about model version TAG."""
    engine = app.engine()
    info = registry.show_version(engine, tag)
    if fmt == "json":
        click.echo(json_text(info, indent=2))
    else:
        _print_show(info)
    if plot_dir:
        from workers.plots import write_plots

        with writing(plot_dir, "--plot"):
            files = write_plots(engine, tag, Path(plot_dir), device=app.settings.device)
        for f in files:
            click.echo(f"wrote {f}", err=True)


@models.command()
@click.argument("tag", callback=checks.tag)
@click.argument("name", callback=checks.alias)
@pass_app
def alias(app: AppContext, tag: str, name: str) -> None:
    """Point alias NAME (e.g. production) at TAG; the previous assignment stays in history."""
    previous = registry.set_alias(app.engine(), tag, name)
    if previous == tag:
        click.echo(f"alias {name} already points at {tag}")
    elif previous:
        click.echo(f"alias {name}: {previous} -> {tag}")
    else:
        click.echo(f"alias {name} -> {tag}")


@models.command()
@click.argument("tag", callback=checks.tag)
@click.option("--stability-threshold", "thresholds", type=float, multiple=True, metavar="EV",
              help="Also compute discovery metrics at this hull distance (eV/atom; repeatable; "
              "0 and 0.1 always, and every threshold requested before).")
@pass_app
def refresh(app: AppContext, tag: str, thresholds: tuple[float, ...]) -> None:
    """Recompute TAG's leaderboard rows and summaries from its stored predictions (after an
    ingest or a hull build changed DFT values; predict does this itself), including its
    predicted hull distances and discovery metrics."""
    from matplat.db.session import session_factory
    from workers.leaderboard import refresh_metrics

    engine = app.engine()
    with session_factory(engine)() as s:
        mv_id = registry.get_version(s, tag).id
    n = refresh_metrics(engine, mv_id, thresholds)
    click.echo(f"model {tag}: refreshed {n} leaderboard rows")


@models.command()
@click.argument("tag", callback=checks.tag)
@click.argument("file", type=click.Path(dir_okay=False), callback=checks.output_file)
@pass_app
def export(app: AppContext, tag: str, file: str) -> None:
    """Write model version TAG (metadata + weights) to FILE (zip)."""
    with writing(file) as path:
        n = registry.export_version(app.engine(), tag, path)
    click.echo(f"exported {tag} to {file} ({n:,} bytes of weights)")


@models.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--tag", callback=checks.tag,
              help="Register under this tag instead of the exported one.")
@pass_app
def import_(app: AppContext, file: str, tag: str | None) -> None:
    """Register a model exported with `platform models export` (its weights are loaded and
    checked first: a file whose weights are not a model is refused)."""
    from workers.training import check_artifact

    new = registry.import_version(app.engine(), Path(file), tag, check=check_artifact)
    click.echo(f"imported {file} as {new}")


def _valid(tag: str) -> bool:
    try:
        names.check_tag(tag)
    except InputError:
        return False
    return True


@models.command()
@click.argument("tag")  # any stored tag, also one registered before tags were checked
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted.")
@pass_app
def delete(app: AppContext, tag: str, yes: bool, dry_run: bool) -> None:
    """Delete model version TAG with its predictions and aliases."""
    engine = app.engine()
    info = registry.show_version(engine, tag)
    shown = tag if _valid(tag) else repr(tag)
    what = f"model {shown} and its {info['predictions']:,} predictions"
    if dry_run:
        click.echo(f"would delete {what}")
        return
    if not yes:
        click.confirm(f"Delete {what}?", abort=True)
    registry.delete_version(engine, tag)
    click.echo(f"deleted {what}")
