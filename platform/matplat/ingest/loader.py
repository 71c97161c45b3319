"""Load extracted OQMD materials into the platform's tables, atomically and idempotently.

One ingest is one transaction: materials are classified per chunk as added (new
``(source, source_id)``), updated (content hash changed) or unchanged, and written with the
engine's bulk path (:mod:`matplat.ingest.writers`). Any error or Ctrl-C rolls everything back,
so the database is exactly as before; rerunning finishes the work without duplicates.

Chunks are written by a writer thread while the caller's thread computes the next ones
(:func:`_pipelined`): the database server (another process) and the COPY transfers (psycopg
releases the GIL while it waits) then run beside the extraction on a second core.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from matplat.db.models import IngestRun
from matplat.errors import DatabaseError, InputError
from matplat.ingest.writers import SOURCE, TARGET_TABLES, ChunkWriter, element_symbols

__all__ = [
    "SOURCE",
    "BackgroundSha256",
    "IngestSummary",
    "element_symbols",
    "file_sha256",
    "load_chunks",
    "previous_run",
    "sized_like",
    "write_rejects",
]


@dataclass
class IngestSummary:
    """What an ingest did (or would do, under ``--dry-run``)."""

    source: str
    rule: str
    file_size: int | None = None
    sha256: str | None = None
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    sites: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    already_ingested_run: int | None = None
    run_id: int | None = None
    rejects: list[tuple[str, str]] = field(default_factory=list)

    @property
    def materials(self) -> int:
        return self.added + self.updated + self.unchanged

    def as_rows(self) -> list[tuple[str, Any]]:
        rate = self.file_size / self.seconds / 1e6 if self.file_size and self.seconds else None
        rows: list[tuple[str, Any]] = [
            ("source", self.source),
            ("rule", self.rule),
            ("materials added", self.added),
            ("materials updated", self.updated),
            ("materials unchanged", self.unchanged),
            ("entries rejected", self.rejected),
            ("sites written", self.sites),
            ("seconds", round(self.seconds, 2)),
        ]
        if rate:
            rows.append(("MB/s", round(rate, 1)))
        if self.run_id is not None:
            rows.append(("ingest run", self.run_id))
        if self.dry_run:
            rows.append(("dry run", "nothing was written"))
        return rows


def file_sha256(
    path: Path,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            if progress:
                progress(len(chunk))
            if stop is not None and stop.is_set():
                break
    return h.hexdigest()


class BackgroundSha256:
    """sha256 of a file computed in a thread (hashlib and file reads release the GIL).

    :func:`load_chunks` calls :meth:`start` once every chunk is written: while PostgreSQL
    re-creates indexes the client's core is idle, so the hash costs no time there.
    :meth:`result` starts it if needed and waits; :meth:`cancel` stops early.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="matplat-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._digest = file_sha256(self._path, stop=self._stop)
        except BaseException as exc:  # re-raised by result()
            self._error = exc

    def result(self) -> str:
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.05)
        if self._error is not None:
            raise self._error
        assert self._digest is not None and not self._stop.is_set()
        return self._digest

    def cancel(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _lock(conn: Any) -> None:
    """Serialise ingests: one writer allocates material ids at a time."""
    backend = conn.dialect.name
    if backend == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))
        # Tables grow inside this one transaction without statistics; psycopg prepares the
        # per-chunk "source_id IN (...)" lookup after 5 runs and a generic plan then scans all
        # materials loaded so far (quadratic). Custom plans keep it an index lookup.
        conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    elif backend in ("mysql", "mariadb"):
        # Row lock on the highest material id row blocks a concurrent ingest's allocation.
        conn.execute(text("SELECT id FROM materials ORDER BY id DESC LIMIT 1 FOR UPDATE"))


def _next_id(conn: Any, table: str) -> int:
    return int(conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()) + 1


_DONE = object()


def _pipelined(items: Iterable[Any], consume: Callable[[Any], None], depth: int = 2) -> None:
    """``consume(item)`` for every item, in order, in a worker thread.

    The caller's thread iterates ``items`` (the extraction) while the worker consumes the
    previous ones (the writes). An exception on either side (or Ctrl-C, which Python
    delivers to the main thread) stops both: the worker finishes the item it is writing,
    then the exception propagates to the caller, who rolls back.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            while True:
                item = q.get()
                if item is _DONE or stop.is_set():
                    return
                consume(item)
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)
            stop.set()

    def put(item: Any) -> None:
        while True:
            if failed:
                raise failed[0]
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=work, name="matplat-ingest-writer", daemon=True)
    worker.start()
    try:
        for item in items:
            put(item)
        put(_DONE)
        while worker.is_alive():
            worker.join(0.05)
        if failed:
            raise failed[0]
    except BaseException:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting on the queue, then wait for it
            with contextlib.suppress(queue.Full):
                q.put_nowait(_DONE)
            worker.join(0.05)
        raise


def load_chunks(
    engine: Engine,
    chunks: Iterable[Any],
    *,
    rule: str,
    source_name: str,
    file_size: int | None = None,
    sha256: str | BackgroundSha256 | None = None,
    dry_run: bool = False,
    source_kind: str = "oqmd-dump",
    make_writer: Callable[[Any, str, int | None], ChunkWriter] = ChunkWriter,
) -> IngestSummary:
    """Write every chunk in ONE transaction and record the ingest run; roll back on error.

    ``sha256`` is the file's digest, or a :class:`BackgroundSha256` started once the
    chunks are written (the CLI then hashes the file beside the index builds).
    ``make_writer(conn, rule, run_id)`` makes the chunk writer (structure files: one that
    also writes their provenance).
    """
    summary = IngestSummary(
        source=source_name,
        rule=rule,
        file_size=file_size,
        sha256=sha256 if isinstance(sha256, str) else None,
        dry_run=dry_run,
    )
    t0 = time.perf_counter()
    with engine.connect() as conn:
        checks_off = _sqlite_foreign_keys_off(conn)
        trans = conn.begin()
        try:
            _lock(conn)
            run_id = None if dry_run else _next_id(conn, "ingest_runs")
            if run_id is not None:
                conn.execute(
                    IngestRun.__table__.insert().values(
                        id=run_id,
                        source=source_kind,
                        file_name=source_name,
                        file_size=file_size,
                        sha256=summary.sha256,
                        rule=rule,
                        status="running",
                        n_added=0,
                        n_updated=0,
                        n_unchanged=0,
                        n_rejected=0,
                    )
                )
            writer = make_writer(conn, rule, run_id)
            if not writer.defer_constraints() and isinstance(sha256, BackgroundSha256):
                sha256.start()  # no index builds at the end to hide it behind

            def extracted() -> Iterable[Any]:
                for chunk in chunks:
                    summary.rejects.extend((str(sid), reason) for sid, reason in chunk.rejects)
                    yield chunk

            if writer.can_prepare:
                # COPY payloads built here, sent by the worker thread while the next are built.
                _pipelined((writer.prepare(c) for c in extracted()), writer.send)
            else:
                _pipelined(extracted(), writer.write)
            if isinstance(sha256, BackgroundSha256):
                sha256.start()
            writer.restore_constraints()
            if checks_off:
                _sqlite_check_foreign_keys(conn)
            c = writer.counts
            summary.added, summary.updated, summary.unchanged = c.added, c.updated, c.unchanged
            summary.sites = c.sites
            summary.rejected = len(summary.rejects)
            if isinstance(sha256, BackgroundSha256):
                summary.sha256 = sha256.result()
            summary.seconds = time.perf_counter() - t0
            if run_id is not None:
                conn.execute(
                    IngestRun.__table__.update()
                    .where(IngestRun.id == run_id)
                    .values(
                        status="succeeded",
                        sha256=summary.sha256,
                        n_added=summary.added,
                        n_updated=summary.updated,
                        n_unchanged=summary.unchanged,
                        n_rejected=summary.rejected,
                        counts={"sites": summary.sites, "materials": summary.materials},
                        seconds=summary.seconds,
                        finished_at=text("CURRENT_TIMESTAMP"),
                    )
                )
                summary.run_id = run_id
            if dry_run:
                trans.rollback()
            else:
                trans.commit()
        except BaseException:
            trans.rollback()
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # stop the extraction (a child process, its temporary files) now
            raise
        finally:
            if checks_off:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    return summary


def _sqlite_foreign_keys_off(conn: Any) -> bool:
    """SQLite, first load: no foreign-key check per row (one check of every table at the end).

    Only when the ingest's tables are empty: then no row is deleted or updated, so no
    ON DELETE CASCADE is needed. The pragma works only outside a transaction, i.e. now.
    """
    if conn.dialect.name != "sqlite":
        return False
    raw = conn.connection.driver_connection
    if raw.in_transaction:
        return False
    for table in TARGET_TABLES:
        if raw.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
            return False
    raw.execute("PRAGMA foreign_keys=OFF")
    return raw.execute("PRAGMA foreign_keys").fetchone()[0] == 0


def _sqlite_check_foreign_keys(conn: Any) -> None:
    """Every foreign key of the database holds, or DatabaseError (the caller rolls back)."""
    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchmany(5)
    if bad:
        shown = ", ".join(f"{t} row {r} -> {p}" for t, r, p, _ in bad)
        raise DatabaseError(f"foreign key check failed after the load: {shown}")


def previous_run(engine: Engine, sha256: str, rule: str) -> int | None:
    """The id of a succeeded ingest of the same file bytes under the same rule, if any."""
    with engine.connect() as conn:
        return (
            conn.execute(
                select(IngestRun.id)
                .where(
                    IngestRun.sha256 == sha256,
                    IngestRun.rule == rule,
                    IngestRun.status == "succeeded",
                )
                .order_by(IngestRun.id.desc())
            )
            .scalars()
            .first()
        )


def sized_like(engine: Engine, file_size: int, rule: str) -> bool:
    """Whether a succeeded ingest under ``rule`` read a file of exactly ``file_size`` bytes.

    Only then can a file's sha256 match an earlier run's, so only then must the CLI hash the
    file before ingesting it; otherwise it hashes while ingesting.
    """
    with engine.connect() as conn:
        hit = conn.execute(
            select(IngestRun.id).where(
                IngestRun.file_size == file_size,
                IngestRun.rule == rule,
                IngestRun.status == "succeeded",
            )
        ).first()
    return hit is not None


def write_rejects(path: Path, rejects: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("source_id\treason\n")
        for sid, reason in rejects:
            f.write(f"{sid}\t{reason}\n")


def ensure_known_rule(rule: str, rules: Iterable[str]) -> None:
    if rule not in rules:
        raise InputError(f"unknown selection rule {rule!r}: expected one of {', '.join(rules)}")
