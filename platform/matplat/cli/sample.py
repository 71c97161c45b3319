"""``platform sample``: synthetic data for demos, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import click

from matplat.cli import checks
from matplat.cli.progress import count_bar
from matplat.outputs import writing


@click.group()
def sample() -> None:
    """Generate synthetic inputs (clearly marked synthetic)."""


@sample.command("oqmd-dump")
@click.argument("out", type=click.Path(dir_okay=False), callback=checks.output_file)
@click.option("--entries", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--skip-extended-insert",
    is_flag=True,
    help="One row per INSERT, as MariaDB's --skip-extended-insert writes.",
)
def oqmd_dump(out: str, entries: int, seed: int, skip_extended_insert: bool) -> None:
    """Write a synthetic qmpy-schema mysqldump of N entries to OUT (.sql or .sql.gz)."""
    from matplat.ingest.sample import write_sample_dump

    with count_bar(entries, "entries", unit="entry") as bar:

        def progress(done: int) -> None:
            if done > bar.n:
                bar.update(done - bar.n)

        with writing(out) as path:
            write_sample_dump(
                path, entries, seed, extended_insert=not skip_extended_insert, progress=progress
            )
    click.echo(
        f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB, {entries} entries, "
        f"seed {seed}; synthetic data)"
    )
