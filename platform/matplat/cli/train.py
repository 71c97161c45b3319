"""``platform train`` and ``platform predict``: the model lifecycle from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from matplat.errors import InputError

TARGETS = ("formation_energy", "band_gap", "magnetization", "volume_per_atom", "volume_deviation")


def _load_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"--config {path}: cannot read JSON ({e})") from e
    if not isinstance(cfg, dict) or set(cfg) - {"model", "training", "targets", "preset", "seed"}:
        raise InputError(
            f"--config {path}: expected an object with keys model, training, targets, preset, seed"
        )
    for key, kind in (("model", dict), ("training", dict), ("preset", str)):
        if key in cfg and not isinstance(cfg[key], kind):
            raise InputError(f"--config {path}: {key}: expected "
                             f"{'an object' if kind is dict else 'a string'}, got {cfg[key]!r}")
    if isinstance(cfg.get("targets"), str):
        cfg["targets"] = [t.strip() for t in cfg["targets"].split(",") if t.strip()]
    return cfg


@click.command()
@click.option("--model-tag", "tag", required=True, callback=checks.tag,
              help="Tag of the new model version (unique; letters, digits, . _ + -).")
@click.option(
    "--targets",
    default=None,
    metavar="T1,T2",
    help=f"Comma-separated targets [default: formation_energy,band_gap,magnetization,"
    f"volume_deviation]; any of {', '.join(TARGETS)}.",
)
@click.option(
    "--preset",
    type=click.Choice(["no-edgenet", "complete", "benchmark"]),
    default=None,
    help="Architecture preset [default: no-edgenet].",
)
@click.option(
    "--setup",
    type=click.Choice(["platform", "paper"]),
    default="platform",
    show_default=True,
    help="paper: one of the paper's four targets per model, linear output, raw targets, fp32, "
    "the reference's Adam/schedule/batch 512/300 epochs, preset complete (options still win).",
)
# Ranges are checked with the config file's values, in one place (workers.train_config).
@click.option("--epochs", type=int, help="Epochs (>= 1) [default 300, as the paper].")
@click.option("--batch-size", type=int, help="Batch size [default 512].")
@click.option("--lr", type=float, help="Learning rate (finite, > 0) [default 1e-3].")
@click.option("--patience", type=int, help="Early stopping patience (epochs).")
@click.option("--seed", type=int, default=None, help="Seed [default 12345].")
@click.option(
    "--ensemble",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train K members with seeds seed..seed+K-1 (mean and uncertainty).",
)
@click.option("--recipe", default="cgc", show_default=True, help="Graph recipe to train on.")
@click.option("--split", "split_name", help="Reuse (or create) the named data split.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="JSON file with 'model' and 'training' overrides.",
)
@click.option(
    "--slice-seconds",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Training time per task message; a member continues from its checkpoint in the next.",
)
@no_wait_option
@pass_app
def train(
    app: AppContext,
    tag: str,
    targets: str | None,
    preset: str | None,
    setup: str,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    patience: int | None,
    seed: int | None,
    ensemble: int,
    recipe: str,
    split_name: str | None,
    config_path: str | None,
    slice_seconds: float,
    no_wait: bool,
) -> None:
    """Train a CGNN on the stored graphs and register it as model version TAG.

    With a broker each ensemble member is a task on queue `gpu` (trained in slices of at most
    10 minutes per message, from checkpoints), and the last one registers the model.
    """
    from workers.train_config import check_request
    from workers.training import (
        DEFAULT_TARGETS,
        PAPER_PRESET,
        TrainRequest,
        paper_setup,
        submit_train,
    )

    cfg = _load_config(config_path)
    in_file = f"--config {config_path}"
    where = {"model": f"{in_file}: model", "tag": "--model-tag"}
    where.update({f"training.{k}": f"{in_file}: training.{k}" for k in cfg.get("training", {})})
    where["targets"] = "--targets" if targets else f"{in_file}: targets"
    where["preset"] = "--preset" if preset else f"{in_file}: preset"
    where["seed"] = "--seed" if seed is not None else f"{in_file}: seed"
    target_list = (
        [t.strip() for t in targets.split(",") if t.strip()]
        if targets
        else cfg.get("targets") or list(DEFAULT_TARGETS)
    )
    training = dict(cfg.get("training", {}))
    for key, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("lr", lr),
        ("patience", patience),
    ):
        if value is not None:
            training[key] = value
            where[f"training.{key}"] = f"--{key.replace('_', '-')}"
    model_overrides = dict(cfg.get("model", {}))
    default_preset = "no-edgenet"
    if setup == "paper":
        if len(target_list) != 1:
            raise InputError("--setup paper trains one target per model: give --targets T")
        paper_model, training = paper_setup(target_list[0], training)
        model_overrides = {**paper_model, **model_overrides}
        default_preset = PAPER_PRESET
    req = TrainRequest(
        tag=tag,
        targets=target_list,
        preset=preset or cfg.get("preset") or default_preset,
        recipe=recipe,
        split=split_name,
        seed=seed if seed is not None else cfg.get("seed", 12345),
        ensemble=ensemble,
        model_overrides=model_overrides,
        train_overrides=training,
        device=app.settings.device,
        setup=setup,
    )
    check_request(req, where)  # before any work: one validation for options and the file
    engine = app.engine()
    check_no_wait(app, no_wait)
    check_broker(app)
    job_id, prep = submit_train(
        engine, req, runner=runner_name(app), budget_seconds=slice_seconds
    )
    for note in prep.notes:
        click.echo(note)

    def postfix(ep: dict[str, Any]) -> str:
        val = ep.get("val_mae") or {}
        shown = " ".join(f"{k}={v:.4g}" for k, v in val.items() if v is not None)
        return (f"m{ep['member']} loss={ep.get('train_loss', float('nan')):.4g} "
                f"val_mae[{shown}] {ep.get('graphs_per_s', 0):.0f} graphs/s")

    job = run_job(app, job_id, desc=f"train {tag}", unit="epoch", no_wait=no_wait,
                  postfix=postfix)
    if job is None:
        return
    raise_if_failed(job)
    result = job.result or {}
    n_params = result.get("n_parameters")
    click.echo(
        f"registered model version {tag} "
        f"({f'{n_params:,}' if isinstance(n_params, int) else '?'} parameters, "
        f"{req.ensemble} member(s))"
    )
    test = (result.get("metrics") or {}).get("test") or {}
    for target, m in test.items():
        extra = " ".join(
            f"{k}={v:.4g}"
            for k, v in m.items()
            if k not in ("mae", "rmse", "n") and isinstance(v, float)
        )
        if m.get("mae") is None:
            click.echo(f"  test {target}: no DFT value in the test split (n = 0)")
            continue
        click.echo(f"  test {target}: MAE {m['mae']:.4g}  RMSE {m['rmse']:.4g}  {extra}".rstrip())
    if result.get("skipped"):
        click.echo(
            f"  skipped {result['skipped']} graphs with species outside the 89-species table",
            err=True,
        )


@click.command()
@click.option("--model-tag", "tag", callback=checks.tag, help="Model version to predict with.")
@click.option("--alias", callback=checks.alias,
              help="Use the model version an alias (e.g. production) points at.")
@click.option(
    "--where",
    help='SQL condition on materials m, e.g. "m.natoms <= 20" (selected read-only on the '
    "user-SQL connection, see `platform query`).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=2048, show_default=True)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=20000,
    show_default=True,
    help="Materials per task (one message on a broker) and per commit.",
)
@no_wait_option
@click.option(
    "--structures",
    "structures",
    multiple=True,
    metavar="PATH...",
    help="Structure files, folders or globs: ingest them, predict them, print one row each.",
)
@click.option("--source", help="With --structures: source name (default: folder or file name).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    callback=checks.output_file,
    help="With --structures: write the rows to FILE (.csv or .parquet) instead of printing.",
)
@click.argument("more_paths", nargs=-1, metavar="")
@pass_app
def predict(
    app: AppContext,
    tag: str | None,
    alias: str | None,
    where: str | None,
    batch_size: int,
    chunk_size: int,
    no_wait: bool,
    structures: tuple[str, ...],
    source: str | None,
    output: str | None,
    more_paths: tuple[str, ...],
) -> None:
    """Predict every selected material's properties and write them into `predictions`.

    With a broker the material ranges go to workers on queue `gpu`. With --structures PATH...
    the files are ingested (as `platform ingest`), predicted in this process and printed.
    """
    from workers.predict import PredictSummary, submit_predict

    if (tag is None) == (alias is None):
        raise click.UsageError("give exactly one of --model-tag or --alias")
    if structures or more_paths:
        if not structures:
            raise click.UsageError(f"unexpected argument {more_paths[0]!r} (use --structures)")
        if where or no_wait:
            raise click.UsageError("--where and --no-wait do not apply to --structures")
        from matplat.cli.predict_structures import run as run_structures

        run_structures(app, tag=tag, alias=alias, paths=structures + more_paths, source=source,
                       output=output, batch_size=batch_size)
        return
    if source or output:
        raise click.UsageError("--source and --output apply to --structures")
    engine = app.engine()
    check_no_wait(app, no_wait)
    check_broker(app)
    plan, job_id = submit_predict(engine, tag=tag, alias=alias, where=where,
                                  batch_size=batch_size, chunk_size=chunk_size,
                                  runner=runner_name(app),
                                  query_engine=app.query_engine() if where else None,
                                  timeout=app.settings.query_timeout)
    if job_id is None:
        click.echo(
            f"model {plan.tag}: all {len(plan.selected)} selected materials already have "
            "predictions; nothing to do"
        )
        return
    job = run_job(app, job_id, desc=f"predict {plan.tag}", unit="material", no_wait=no_wait)
    if job is None:
        return
    raise_if_failed(job)
    r = job.result or {}
    seconds = job.seconds
    s = PredictSummary(tag=plan.tag, targets=plan.targets, selected=len(plan.selected),
                       already=len(plan.selected) - len(plan.todo),
                       predicted=int(r.get("predicted", 0)),
                       rows_written=int(r.get("rows_written", 0)),
                       graphs_built=int(r.get("graphs_built", 0)),
                       graphs_failed=int(r.get("graphs_failed", 0)), seconds=seconds)
    if s.predicted == 0 and s.already == s.selected:
        click.echo(
            f"model {s.tag}: all {s.selected} selected materials already have predictions;"
            " nothing to do"
        )
        return
    click.echo(
        f"model {s.tag}: wrote {s.rows_written} predictions for {s.predicted} materials "
        f"({', '.join(s.targets)}) in {s.seconds:.1f} s ({s.per_second:.0f} rows/s); "
        f"{s.already} already had predictions"
    )
    if s.graphs_built or s.graphs_failed:
        click.echo(f"  built {s.graphs_built} missing graphs ({s.graphs_failed} failed)")
    missing = s.selected - s.already - s.predicted
    if missing:
        click.echo(
            f"  {missing} materials have no usable graph (see `platform graphs stats`)", err=True
        )
