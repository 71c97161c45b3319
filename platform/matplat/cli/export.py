"""``platform export``: data out of the platform (reference CGNN format, predictions)."""

from __future__ import annotations

from pathlib import Path

import click

from matplat.cli import checks
from matplat.cli.context import AppContext, pass_app
from matplat.errors import InputError
from matplat.outputs import writing
from matplat.services.query import run_query


@click.group()
def export() -> None:
    """Export graphs in the CGNN reference format, predictions as CSV/Parquet, or structures."""


@export.command("cgnn-dataset")
@click.argument("directory", type=click.Path(file_okay=False), callback=checks.output_dir)
@click.option("--recipe", help="Graph recipe to export [default: the only recipe with graphs; "
              "cgc when several have].")
@click.option(
    "--split",
    "split_name",
    help="Write this stored split to split.json "
    "(default: the reference's formula-grouped split, seed 12345).",
)
@pass_app
def cgnn_dataset(app: AppContext, directory: str, recipe: str | None, split_name: str | None) -> None:
    """Write graph_data.npz, config.json, targets.csv and split.json into DIRECTORY."""
    from workers.cgnn_dataset import export_dataset

    with writing(directory):
        s = export_dataset(app.engine(), Path(directory), recipe, split_name)
    click.echo(
        f"wrote {s.graphs} graphs of recipe {s.recipe} to {directory}"
        + (f" ({s.skipped} skipped: species outside the 89-species table)" if s.skipped else "")
    )


@export.command("predictions")
@click.option("--model-tag", "tag", required=True, callback=checks.tag)
@click.argument("file", type=click.Path(dir_okay=False), callback=checks.output_file)
@pass_app
def predictions(app: AppContext, tag: str, file: str) -> None:
    """Write the prediction_results rows of model TAG to FILE (.csv or .parquet)."""
    from matplat.db.session import session_factory
    from matplat.services import registry

    path = Path(file)
    if path.suffix not in (".csv", ".parquet"):
        raise InputError(f"{file}: expected a .csv or .parquet file name")
    engine = app.engine()
    with session_factory(engine)() as s:
        registry.get_version(s, tag)
    df = run_query(
        engine,
        "SELECT * FROM prediction_results WHERE model_tag = :t ORDER BY material_id, property",
        {"t": tag},
    )
    with writing(path):
        if path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
    click.echo(f"wrote {len(df)} predictions of {tag} to {file}")


@export.command("structures")
@click.argument("directory", type=click.Path(file_okay=False), callback=checks.output_dir)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cif", "poscar", "extxyz", "json"]),
    required=True,
    help="File format (one file per material).",
)
@click.option("--source", help="Only materials of this source (e.g. oqmd, or a folder's name).")
@click.option("--where", help='SQL condition on materials m, e.g. "m.natoms <= 20".')
@pass_app
def structures(
    app: AppContext, directory: str, fmt: str, source: str | None, where: str | None
) -> None:
    """Write structures as files through pymatgen/ASE (CIF and POSCAR get properties.csv
    with the DFT values: `platform ingest DIR --properties DIR/properties.csv` reads them
    back into the same materials)."""
    from matplat.services.structures import export_structures

    with writing(directory):
        s = export_structures(app.engine(), Path(directory), fmt, source=source, where=where,
                              query_engine=app.query_engine() if where else None)
    click.echo(f"wrote {s.written} structures as {fmt} to {directory}")
