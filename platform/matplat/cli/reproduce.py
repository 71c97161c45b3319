"""``platform reproduce cgnn``: the CGNN paper's four single-target models on a data-set folder."""

from __future__ import annotations

from pathlib import Path

import click

from matplat.cli.context import AppContext, pass_app
from matplat.cli.jobrun import check_broker, raise_if_failed, run_job, runner_name
from matplat.errors import InputError


@click.group()
def reproduce() -> None:
    """Reproduce published results on your data."""


@reproduce.command("cgnn")
@click.argument("dataset_dir", type=click.Path(file_okay=False))
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs [default 300, as the paper].")
@click.option("--tag-prefix", default="cgnn-paper-", show_default=True,
              help="Model versions are tagged PREFIX + target.")
@click.option("--seed", type=int, default=12345, show_default=True)
@pass_app
def cgnn(app: AppContext, dataset_dir: str, epochs: int | None, tag_prefix: str,
         seed: int) -> None:
    """Import the CGNN data-set folder DATASET_DIR (graph_data.npz, targets.csv, split.json,
    config.json), train the paper's four single-target models with `--setup paper` (as jobs:
    on GPU workers when a broker is configured) and print their test MAEs beside the
    published ones. Models already registered under their tag are reported, not retrained."""
    from sqlalchemy import select

    from matplat.db.models import GraphRecipe, ModelVersion
    from workers.cgnn_dataset import import_dataset
    from workers.training import (
        PAPER_PRESET,
        PAPER_TEST_MAE,
        TrainRequest,
        paper_setup,
        submit_train,
    )

    path = Path(dataset_dir)
    if not (path / "graph_data.npz").is_file():
        raise InputError(f"{dataset_dir}: not a CGNN data-set folder (no graph_data.npz)")
    engine = app.engine()
    check_broker(app)
    recipe = f"dataset:{path.name}"
    with engine.connect() as conn:
        imported = conn.execute(select(GraphRecipe.id).where(GraphRecipe.name == recipe)
                                ).scalar_one_or_none()
    if imported is None:
        d = import_dataset(engine, path)
        click.echo(f"imported {d.graphs} graphs from {dataset_dir} as recipe {d.recipe}")
    else:  # re-importing would replace the split that registered models refer to
        click.echo(f"{dataset_dir}: already imported as recipe {recipe}; using it")
    split = recipe if (path / "split.json").is_file() else None
    results: dict[str, dict] = {}
    for target in PAPER_TEST_MAE:
        tag = f"{tag_prefix}{target}"
        with engine.connect() as conn:
            metrics = conn.execute(select(ModelVersion.metrics).where(ModelVersion.tag == tag)
                                   ).scalar_one_or_none()
        if metrics is not None:
            click.echo(f"{tag}: already registered, not retrained")
            results[target] = (metrics.get("test") or {}).get(target) or {}
            continue
        model_overrides, training = paper_setup(
            target, {"epochs": epochs} if epochs is not None else {})
        req = TrainRequest(tag=tag, targets=[target], preset=PAPER_PRESET, recipe=recipe,
                           split=split, seed=seed, model_overrides=model_overrides,
                           train_overrides=training, device=app.settings.device, setup="paper")
        job_id, prep = submit_train(engine, req, runner=runner_name(app))
        for note in prep.notes:
            click.echo(f"{tag}: {note}")
        job = run_job(app, job_id, desc=f"train {tag}", unit="epoch", no_wait=False)
        if job is None:  # pragma: no cover - no_wait is False
            return
        raise_if_failed(job)
        results[target] = (((job.result or {}).get("metrics") or {}).get("test") or {}).get(
            target) or {}
    click.echo(f"\n{'target':<18} {'n test':>7} {'test MAE':>10} {'published':>10} {'ratio':>7}")
    for target, published in PAPER_TEST_MAE.items():
        m = results.get(target, {})
        mae = m.get("mae")
        shown = "-" if mae is None else f"{mae:.4g}"
        ratio = "-" if mae is None else f"{mae / published:.2f}"
        click.echo(f"{target:<18} {m.get('n', 0):>7} {shown:>10} {published:>10.4g} {ratio:>7}")
    click.echo("published: CGNN paper, OQMD v1.2 test set (formation energy: complete preset, "
               "single model); units eV/atom, eV, muB/atom, 1")
