"""``platform predict --structures PATH…``: files in, one printed (or written) row each."""

from __future__ import annotations

from pathlib import Path

import click

from matplat.cli.context import AppContext
from matplat.cli.ingest_structures import check_output_path
from matplat.cli.output import render
from matplat.cli.progress import count_bar
from matplat.errors import InputError
from matplat.outputs import writing

__all__ = ["run"]


def run(app: AppContext, *, tag: str | None, alias: str | None, paths: tuple[str, ...],
        source: str | None, output: str | None, batch_size: int) -> None:
    from matplat.ingest.structures.files import collect
    from workers.structures_predict import predict_structures

    if output is not None and Path(output).suffix not in (".csv", ".parquet"):
        raise InputError(f"--output {output}: expected a .csv or .parquet file name")
    check_output_path(output, "--output")
    engine = app.engine()
    total = len(collect(list(paths))[0])
    with count_bar(total, "parse", unit="file") as bar:

        def progress(done: int, _total: int) -> None:
            if done > bar.n:
                bar.update(done - bar.n)

        r = predict_structures(engine, tag=tag, alias=alias, paths=paths, source=source,
                               device=app.settings.device, batch_size=batch_size,
                               progress=progress)
    df = r.table
    if output is None:
        click.echo(render(df, "table"))
    else:
        with writing(output, "--output"):
            if output.endswith(".parquet"):
                df.to_parquet(output, index=False)
            else:
                df.to_csv(output, index=False)
    s = r.seconds
    n_ok = int(df["rejected"].isna().sum())
    shares = ", ".join(f"{k} {s.get(k, 0.0):.2f}" for k in ("parse", "ingest", "graphs",
                                                             "predict", "write"))
    click.echo(
        f"model {r.tag}: {n_ok} of {len(df)} structures predicted"
        + (f", written to {output}" if output else "")
        + f" in {s['total']:.1f} s ({shares} s)",
        err=True,
    )
