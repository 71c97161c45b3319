"""Structure files (or pymatgen/ASE objects) → materials of a named source, in one transaction.

:func:`ingest_structures` is the one implementation behind ``platform ingest FILES``,
``platform predict --structures`` and :meth:`matplat.Platform.ingest`:

1. parse: files are read in a process pool (pymatgen/ASE are pure Python and CPU-bound; a
   forked pool on Linux starts at once, nothing to import) in batches, in name order;
   each worker also brings the structure into its stored form
   (:mod:`~matplat.ingest.structures.canonical`) and finds its space group, so the main
   process only assembles chunks;
2. load: chunks go through :func:`matplat.ingest.loader.load_chunks`, the OQMD ingest's
   transaction, lock, per-engine bulk writers and added/updated/unchanged classification;
   a writer thread sends one chunk while the next is parsed.

Rejected structures are listed one by one (file, block/frame, name, reason) while the rest
go in; with ``strict`` any reject fails the whole ingest and nothing is written.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, bindparam, text

from matplat.errors import InputError
from matplat.ingest.loader import IngestSummary, load_chunks
from matplat.ingest.structures.chunks import FILE_RULE, FileChunkWriter, build_chunk
from matplat.ingest.structures.files import (
    InputFile,
    check_source,
    collect,
    default_source,
    file_sha256,
    stored_name,
)
from matplat.ingest.structures.properties import PropertyTable
from matplat.ingest.structures.records import Parsed

__all__ = ["FileIngestSummary", "Reject", "StrictRejectError", "ingest_structures"]

_CHUNK = 2000  # materials per chunk written
_BATCH = 32  # files per pool task
_POOL_MIN_FILES = 64  # fewer files: parse here (no pool start-up)


@dataclass(frozen=True)
class Reject:
    file: str
    block: str | None
    name: str
    reason: str


@dataclass
class FileIngestSummary:
    """What an ingest of structures did: the loader's counts plus files and rejects."""

    source: str
    load: IngestSummary | None = None
    files: int = 0
    skipped_files: int = 0
    structures: int = 0
    rejects: list[Reject] = field(default_factory=list)
    #: stored name → material id, for every accepted structure (added, updated or unchanged)
    material_ids: dict[str, int] = field(default_factory=dict)
    #: accepted structures' names in input order
    names: list[str] = field(default_factory=list)
    parse_seconds: float = 0.0
    seconds: float = 0.0

    def as_rows(self) -> list[tuple[str, Any]]:
        load = self.load
        rows: list[tuple[str, Any]] = [
            ("source", self.source),
            ("files read", self.files),
            ("structures", self.structures),
            ("materials added", load.added if load else 0),
            ("materials updated", load.updated if load else 0),
            ("materials unchanged", load.unchanged if load else 0),
            ("structures rejected", len(self.rejects)),
            ("sites written", load.sites if load else 0),
            ("seconds", round(self.seconds, 2)),
        ]
        if self.skipped_files:
            rows.insert(2, ("files skipped (not structures)", self.skipped_files))
        if load is not None and load.run_id is not None:
            rows.append(("ingest run", load.run_id))
        if load is not None and load.dry_run:
            rows.append(("dry run", "nothing was written"))
        return rows


class StrictRejectError(InputError):
    """``strict``: some structures were rejected, so nothing was written."""

    def __init__(self, rejects: list[Reject]) -> None:
        r = rejects[0]
        where = r.file + (f" (block {r.block})" if r.block is not None else "")
        more = f" and {len(rejects) - 1} more" if len(rejects) > 1 else ""
        super().__init__(
            f"{where}: {r.reason}{more}; --strict: nothing was written"
        )
        self.rejects = rejects


def _prepare(rec: Parsed) -> Parsed:
    """Stored form and space group of an accepted record (runs in the pool)."""
    if rec.ok:
        from matplat.ingest.structures.canonical import canonical_cell
        from matplat.ingest.structures.readers import spacegroup

        rec.lattice, rec.frac = canonical_cell(rec.lattice, rec.frac)  # type: ignore[arg-type]
        rec.spacegroup = spacegroup(rec.lattice, rec.frac, rec.numbers)  # type: ignore[arg-type]
    return rec


def _parse_batch(batch: list[InputFile]) -> list[tuple[list[Parsed], str]]:
    from matplat.ingest.structures.readers import parse_file

    out = []
    for f in batch:
        try:
            sha = file_sha256(f.path)
        except OSError as e:
            out.append(([Parsed(f.display, f.display, None, f.fmt or "?",
                                reject=f"unreadable: {e.strerror or e}")], ""))
            continue
        out.append(([_prepare(r) for r in parse_file(f.path, f.display, f.fmt)], sha))
    return out


def _worker_init() -> None:
    """Pool workers leave Ctrl-C to the main process, which rolls back and stops the pool
    (otherwise each worker prints its own KeyboardInterrupt traceback)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm() -> None:
    """Import the readers' libraries (seconds of pymatgen imports) before the pool forks, so
    that the workers do not each import them again on a machine with few cores."""
    import pymatgen.core  # noqa: F401
    import pymatgen.io.cif  # noqa: F401
    import pymatgen.io.vasp  # noqa: F401
    import spglib  # noqa: F401

    import matplat.ingest.structures.canonical  # noqa: F401
    import matplat.ingest.structures.readers  # noqa: F401

    with contextlib.suppress(ImportError):  # optional: CIFs go to pymatgen without it
        import gemmi  # noqa: F401


def _parsed_files(files: list[InputFile], workers: int,
                  progress: Callable[[int, int], None] | None) -> Iterator[tuple[list[Parsed], str]]:
    """Records of every file, in order; parsed in a process pool when it pays."""
    batches = [files[i : i + _BATCH] for i in range(0, len(files), _BATCH)]
    done = 0
    if workers <= 1 or len(files) < _POOL_MIN_FILES:
        for b in batches:
            yield from _parse_batch(b)
            done += len(b)
            if progress:
                progress(done, len(files))
        return
    fork = sys.platform == "linux"
    if fork:
        _warm()  # imported once here, inherited by every forked worker
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
    try:
        inflight: deque[tuple[Future[Any], int]] = deque()
        todo = iter(batches)
        for b in todo:
            inflight.append((pool.submit(_parse_batch, b), len(b)))
            if len(inflight) >= workers * 4:
                break
        while inflight:
            fut, n = inflight.popleft()
            yield from fut.result()
            done += n
            if progress:
                progress(done, len(files))
            nxt = next(todo, None)
            if nxt is not None:
                inflight.append((pool.submit(_parse_batch, nxt), len(nxt)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ingest_structures(
    engine: Engine,
    paths: Iterable[str] = (),
    *,
    objects: Iterable[tuple[str | None, Any]] = (),
    source: str | None = None,
    properties: str | PropertyTable | None = None,
    strict: bool = False,
    dry_run: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FileIngestSummary:
    """Ingest structure files (``paths``: files, folders, globs) and/or ``objects``
    (``(name or None, pymatgen Structure | ComputedStructureEntry | ase.Atoms)``; None: named
    by formula and content hash) as materials of
    ``source``; ``progress(files_done, files_total)``. Raises :class:`StrictRejectError`
    under ``strict`` when anything is rejected (the database is then unchanged)."""
    import os

    from matplat.ingest.formulas import Formulas
    from matplat.ingest.structures.readers import parse_object

    t0 = time.perf_counter()
    paths = [str(p) for p in paths]
    objects = list(objects)
    files, base, skipped = collect(paths) if paths else ([], None, 0)
    if source is None:
        source = default_source(paths, base) if paths else "objects"
    else:
        source = check_source(source)
    table = (PropertyTable.read(properties) if isinstance(properties, str | os.PathLike)
             else properties)
    summary = FileIngestSummary(source=source, files=len(files), skipped_files=skipped)
    if not files and not objects:
        raise InputError(f"{', '.join(paths) or 'no input'}: no structure files found")
    workers = workers or min(os.cpu_count() or 1, 8)
    formulas = Formulas()
    seen: dict[str, str] = {}

    def accepted(recs: Iterable[tuple[Parsed, str]]) -> Iterator[tuple[Parsed, str]]:
        for rec, sha in recs:
            summary.structures += 1
            rec.name = stored_name(rec.name)
            if rec.ok and rec.name in seen:
                rec.reject = f"duplicate name {rec.name!r} (also in {seen[rec.name]})"
            if not rec.ok:
                summary.rejects.append(Reject(rec.file, rec.block, rec.name, rec.reject or ""))
                continue
            seen[rec.name] = rec.file
            if table is not None:
                table.apply(rec)
            summary.names.append(rec.name)
            yield rec, sha

    def records() -> Iterator[tuple[Parsed, str]]:
        for name, obj in objects:
            rec = _prepare(parse_object(obj, "" if name is None else str(name)))
            if not rec.name:
                rec.name = _content_name(rec, formulas)
            yield rec, ""
        for recs, sha in _parsed_files(files, workers, progress):
            for r in recs:
                yield r, sha

    def chunks() -> Iterator[Any]:
        batch: list[tuple[Parsed, str]] = []
        for item in accepted(records()):
            batch.append(item)
            if len(batch) >= _CHUNK:
                yield build_chunk([r for r, _ in batch], [s for _, s in batch], formulas)
                batch = []
        if batch:
            yield build_chunk([r for r, _ in batch], [s for _, s in batch], formulas)
        summary.parse_seconds = time.perf_counter() - t0
        if strict and summary.rejects:
            raise StrictRejectError(summary.rejects)  # load_chunks rolls everything back

    label = ", ".join(paths) if paths else "<objects>"
    summary.load = load_chunks(
        engine,
        chunks(),
        rule=FILE_RULE,
        source_name=label[:1024],
        dry_run=dry_run,
        source_kind="structure-files",
        make_writer=lambda conn, rule, run_id: FileChunkWriter(conn, rule, run_id, source=source),
    )
    if not dry_run:
        summary.material_ids = material_ids(engine, source, summary.names)
    summary.seconds = time.perf_counter() - t0
    return summary


def _content_name(rec: Parsed, formulas: Any) -> str:
    """Name of an unnamed object: reduced formula and the start of its content hash, so the
    same structure always gets the same name (re-ingesting it changes nothing)."""
    import numpy as np

    from matplat.ingest.structures.canonical import content_hash

    if not rec.ok:
        return "<object>"
    z, c = np.unique(rec.numbers, return_counts=True)  # type: ignore[arg-type]
    formula = formulas.get(tuple(zip(z.tolist(), c.tolist(), strict=True)))[0]
    h = content_hash(rec.lattice, rec.frac, rec.numbers, rec.props)  # type: ignore[arg-type]
    return f"{formula}-{h[:12]}"


def material_ids(engine: Engine, source: str, names: list[str]) -> dict[str, int]:
    """Stored name → material id of ``names`` in ``source``."""
    out: dict[str, int] = {}
    stmt = text(
        "SELECT source_id, id FROM materials WHERE source = :s AND source_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    with engine.connect() as conn:
        for i in range(0, len(names), 2000):
            for sid, mid in conn.execute(stmt, {"s": source, "ids": names[i : i + 2000]}):
                out[str(sid)] = int(mid)
    return out
