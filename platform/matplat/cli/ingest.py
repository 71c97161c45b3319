"""``platform ingest``: an OQMD dump (.sql, .sql.gz, -), a live qmdb server, a CGNN data-set
folder or crystal structure files (:mod:`matplat.cli.ingest_structures`) into our tables."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import click
import pandas as pd

from matplat.cli import checks
from matplat.cli.context import AppContext, pass_app
from matplat.cli.output import render
from matplat.cli.progress import byte_bar
from matplat.errors import InputError
from matplat.outputs import OutputError, describe_os_error, writing

_CHILD_MIN_BYTES = 1 << 25


def _is_db_url(path: str) -> bool:
    return "://" in path and path.split("://", 1)[0].split("+")[0] in ("mysql", "mariadb")


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--rule",
    type=click.Choice(["cgnn", "oqmd-api"]),
    default="cgnn",
    show_default=True,
    help="Selection rule: cgnn reproduces the CGNN data set; oqmd-api as the OQMD API.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Ingest at most N materials.")
@click.option("--dry-run", is_flag=True, help="Parse and classify everything, write nothing.")
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False),
    callback=checks.output_file,
    help="Write the skipped entries and the reasons to FILE (dump: TSV; structures: CSV).",
)
@click.option("--force", is_flag=True, help="Re-read a file even if it was ingested before.")
@click.option(
    "--source",
    help="Structure files: source name of their materials (default: the folder or file name).",
)
@click.option(
    "--properties",
    type=click.Path(dir_okay=False),
    help="Structure files: CSV/parquet with a name column and DFT values to attach.",
)
@click.option(
    "--strict", is_flag=True, help="Structure files: any rejected structure fails the ingest."
)
@pass_app
def ingest(
    app: AppContext,
    paths: tuple[str, ...],
    rule: str,
    limit: int | None,
    dry_run: bool,
    rejects_path: str | None,
    force: bool,
    source: str | None,
    properties: str | None,
    strict: bool,
) -> None:
    """Stream an OQMD mysqldump (PATH: .sql, .sql.gz, or - for stdin), or structure files, in.

    PATH may also be a live qmdb server (mysql+pymysql://user@host/qmdb), or a folder in the
    CGNN reference format (graph_data.npz, config.json, targets.csv, split.json), whose graphs
    are stored under the recipe dataset:<folder name>. Rerunning on the same
    dump changes nothing; a newer dump adds new entries and updates changed ones.

    PATHs may also be crystal structure files, folders of them or globs: CIF (every block),
    POSCAR/CONTCAR/*.vasp, extended XYZ (every frame), pymatgen Structure or
    ComputedStructureEntry JSON (.json, .jsonl) and ASE databases (.db). Each structure
    becomes a material of --source; rejected ones are listed with the reason.
    """
    from matplat.cli import ingest_structures

    if ingest_structures.is_structure_input(paths):
        ingest_structures.run(app, paths, source=source, properties=properties, strict=strict,
                              dry_run=dry_run, rejects_path=rejects_path)
        return
    if source or properties or strict:
        raise click.UsageError("--source, --properties and --strict apply to structure files")
    path = paths[0]
    from matplat.ingest import loader
    from matplat.ingest.oqmd import RULES, extract, extract_dump

    loader.ensure_known_rule(rule, RULES)
    engine = app.engine()
    file_size = sha = None
    hasher = None
    if _is_db_url(path):
        from matplat.ingest.live import iter_server_tables
        from matplat.ingest.oqmd import NEEDED_TABLES

        source_kind, name = "qmdb-server", path.split("@")[-1]
        with tempfile.TemporaryDirectory(prefix="matplat-ingest-") as work:
            batches = iter_server_tables(path, NEEDED_TABLES)
            chunks = extract(batches, rule, workdir=Path(work), limit=limit)
            summary = loader.load_chunks(
                engine,
                chunks,
                rule=rule,
                source_name=name,
                dry_run=dry_run,
                source_kind=source_kind,
            )
    else:
        if path != "-":
            p = Path(path)
            if p.is_dir():
                from workers.cgnn_dataset import import_dataset

                try:
                    d = import_dataset(engine, p)
                except (ValueError, TypeError, KeyError, IndexError) as e:
                    # garbled content past the file-level checks; the import rolled back
                    reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    raise InputError(f"{path}: malformed CGNN data set ({type(e).__name__}"
                                     f"{': ' + reason[:200] if reason else ''})") from None
                click.echo(
                    f"imported {d.graphs} graphs from {path} as recipe {d.recipe} "
                    f"({d.materials_created} new graph-only materials, "
                    f"{d.materials_matched} matched existing ones, {d.skipped} skipped)"
                )
                return
            if not p.is_file():
                raise InputError(f"{path}: no such file")
            file_size = p.stat().st_size
            # A file can only be one ingested before if an earlier run read as many bytes;
            # then hash it first to say so without ingesting. Otherwise hash it while
            # the database re-creates its indexes (see load_chunks).
            if not force and limit is None and loader.sized_like(engine, file_size, rule):
                with byte_bar(file_size, "checksum") as update:
                    done = 0

                    def on_bytes(n: int) -> None:
                        nonlocal done
                        done += n
                        update(done)

                    sha = loader.file_sha256(p, on_bytes)
                prior = loader.previous_run(engine, sha, rule)
                if prior is not None:
                    click.echo(
                        f"{path}: already ingested by run {prior} (same sha256, rule "
                        f"{rule}); nothing to do. Use --force to re-read it."
                    )
                    return
            else:
                hasher = loader.BackgroundSha256(p)
        try:
            with tempfile.TemporaryDirectory(prefix="matplat-ingest-") as work:
                # A large dump is extracted in a child process (two cores: extraction there,
                # writes here), started before the progress bar's thread exists so that it
                # can be forked; a small dump here (no process start-up).
                bar: list[Callable[[int], None]] = []
                extractor = extract_dump
                if file_size is not None and file_size >= _CHILD_MIN_BYTES:
                    from matplat.ingest.extract_process import extract_dump_in_process

                    extractor = extract_dump_in_process
                chunks = extractor(
                    path,
                    rule,
                    workdir=Path(work),
                    limit=limit,
                    progress=lambda position: bar[0](position) if bar else None,
                )
                with byte_bar(file_size, "ingest") as update:
                    bar.append(update)
                    summary = loader.load_chunks(
                        engine,
                        chunks,
                        rule=rule,
                        source_name=Path(path).name if path != "-" else "<stdin>",
                        file_size=file_size,
                        sha256=hasher if hasher is not None else sha,
                        dry_run=dry_run,
                    )
        except OSError as e:
            scratch = tempfile.gettempdir()
            if isinstance(e, BrokenPipeError) or (
                e.filename is not None and not str(e.filename).startswith(scratch)
            ):
                raise
            raise OutputError(
                f"temporary directory {scratch}: {describe_os_error(e)}; nothing was "
                "ingested (free space there, or set TMPDIR to a larger directory)"
            ) from None
        finally:
            if hasher is not None:
                hasher.cancel()
    if rejects_path:
        try:
            with writing(rejects_path, "--rejects") as rejects_file:
                loader.write_rejects(rejects_file, summary.rejects)
        except OutputError as e:
            raise OutputError(
                f"{e}; the ingest itself is complete: list the rejects again with "
                f"`platform ingest {path} --dry-run --force --rejects FILE`"
            ) from None
    click.echo(render(pd.DataFrame(summary.as_rows(), columns=["", "value"]), "table"))
    if summary.rejects and not rejects_path:
        shown = ", ".join(f"{sid} ({reason})" for sid, reason in summary.rejects[:5])
        more = f" and {len(summary.rejects) - 5} more" if len(summary.rejects) > 5 else ""
        click.echo(f"rejected entries: {shown}{more}; list them all with --rejects FILE", err=True)
    if not dry_run and summary.added == 0 and summary.updated == 0:
        click.echo("nothing changed: every material is already up to date")
