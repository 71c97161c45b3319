"""``platform ingest FILES…``: crystal structure files as materials (the CLI side).

:func:`is_structure_input` decides which ingest a command line asks for, keeping what
``platform ingest`` did before: one dump file (``.sql``, ``.sql.gz``, ``-``), one server
URL or one CGNN data-set folder go to the OQMD/data-set ingest; anything else (several
paths, folders of structure files, globs, files whose name or content is a structure
format) to :func:`matplat.ingest.structures.ingest.ingest_structures`.
"""

from __future__ import annotations

import csv
import glob
import os
from pathlib import Path

import click
import pandas as pd

from matplat.cli.context import AppContext
from matplat.cli.output import render
from matplat.cli.progress import count_bar
from matplat.outputs import check_file, writing

__all__ = ["check_output_path", "is_structure_input", "run", "write_rejects"]

_DUMP_SUFFIXES = (".sql", ".sql.gz", ".gz")


def is_structure_input(paths: tuple[str, ...]) -> bool:
    """Whether the paths are structure files (see the module docstring)."""
    if len(paths) != 1:
        return True
    p = paths[0]
    if p == "-" or "://" in p or p.lower().endswith(_DUMP_SUFFIXES):
        return False
    if not os.path.exists(p):
        return glob.has_magic(p)
    path = Path(p)
    if path.is_dir():
        return not (path / "graph_data.npz").exists()
    from matplat.ingest.structures.readers import detect_format

    return detect_format(path) is not None


def check_output_path(path: str | None, option: str) -> None:
    """An output file must be writable (checked before any work, so a typo does not cost the
    ingest): the one check of :func:`matplat.outputs.check_file`."""
    if path is None:
        return
    check_file(path, option)


def write_rejects(path: str, rejects: list) -> None:  # type: ignore[type-arg]
    """CSV: file, block, name, reason (one row per rejected structure)."""
    with writing(path, "--rejects"), open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "block", "name", "reason"])
        for r in rejects:
            w.writerow([r.file, r.block if r.block is not None else "", r.name, r.reason])


def ingest_files(app: AppContext, paths: tuple[str, ...], *, source: str | None,
                 properties: str | None, strict: bool, dry_run: bool, rejects_path: str | None,
                 workers: int | None = None, quiet: bool = False):  # type: ignore[no-untyped-def]
    """Ingest with a progress bar; writes ``--rejects`` (also when ``--strict`` fails)."""
    from matplat.ingest.structures.files import collect
    from matplat.ingest.structures.ingest import StrictRejectError, ingest_structures

    check_output_path(rejects_path, "--rejects")
    engine = app.engine()
    total = len(collect(list(paths))[0])
    with count_bar(total, "parse", unit="file") as bar:

        def progress(done: int, _total: int) -> None:
            if done > bar.n:
                bar.update(done - bar.n)

        try:
            summary = ingest_structures(engine, paths, source=source, properties=properties,
                                        strict=strict, dry_run=dry_run, workers=workers,
                                        progress=progress)
        except StrictRejectError as e:
            if rejects_path:
                write_rejects(rejects_path, e.rejects)
            raise
    if rejects_path:
        write_rejects(rejects_path, summary.rejects)
    if not quiet:
        click.echo(render(pd.DataFrame(summary.as_rows(), columns=["", "value"]), "table"))
    if summary.rejects and not rejects_path:
        for r in summary.rejects[:10]:
            where = r.file + (f" (block {r.block})" if r.block is not None else "")
            click.echo(f"rejected: {where}: {r.reason}", err=True)
        if len(summary.rejects) > 10:
            click.echo(f"... and {len(summary.rejects) - 10} more; list them all with "
                       "--rejects FILE", err=True)
    return summary


def run(app: AppContext, paths: tuple[str, ...], *, source: str | None, properties: str | None,
        strict: bool, dry_run: bool, rejects_path: str | None) -> None:
    summary = ingest_files(app, paths, source=source, properties=properties, strict=strict,
                           dry_run=dry_run, rejects_path=rejects_path)
    load = summary.load
    if load is not None and not dry_run and load.added == 0 and load.updated == 0:
        click.echo("nothing changed: every material is already up to date")
