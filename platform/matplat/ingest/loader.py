"""Load extracted OQMD materials into the platform's tables, atomically and idempotently.

One ingest is one transaction: materials are classified per chunk as added (new
``(source, source_id)``), updated (content hash changed) or unchanged, and written with the
engine's bulk path (:mod:`matplat.ingest.writers`). Any error or Ctrl-C rolls everything back,
so the database is exactly as before; rerunning finishes the work without duplicates.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, select, text

from matplat.db.bulk import copy_fixed_width, insert_columns
from matplat.db.models import IngestRun
from matplat.errors import InputError

SOURCE = "oqmd"

#: Atomic number → element symbol (index 0 unused).
_SYMBOLS: list[str] | None = None


def element_symbols() -> list[str]:
    global _SYMBOLS
    if _SYMBOLS is None:
        from pymatgen.core.periodic_table import Element

        _SYMBOLS = [""] + [Element.from_Z(z).symbol for z in range(1, 119)]
    return _SYMBOLS


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


def file_sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def _lock(conn: Connection) -> None:
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


def _next_id(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()) + 1


def _existing(conn: Connection, source_ids: list[str]) -> dict[str, tuple[int, str]]:
    """(source_id → (material id, content hash)) for the chunk's materials already stored."""
    out: dict[str, tuple[int, str]] = {}
    stmt = text(
        "SELECT source_id, id, content_hash FROM materials "
        "WHERE source = :source AND source_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    for i in range(0, len(source_ids), 2000):
        part = source_ids[i : i + 2000]
        for sid, mid, h in conn.execute(stmt, {"source": SOURCE, "ids": part}):
            out[sid] = (int(mid), h)
    return out


def _delete_materials_children(conn: Connection, ids: list[int]) -> None:
    """Remove the structure-level rows of updated materials (graphs cascade with structures)."""
    for table, key in (
        ("material_elements", "material_id"),
        ("dft_properties", "material_id"),
        ("structures", "material_id"),
    ):
        stmt = text(f"DELETE FROM {table} WHERE {key} IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        for i in range(0, len(ids), 2000):
            conn.execute(stmt, {"ids": ids[i : i + 2000]})


def _write_chunk(
    conn: Connection,
    chunk: Any,
    rule: str,
    run_id: int | None,
    summary: IngestSummary,
    id_state: dict[str, int],
) -> None:
    n = len(chunk.source_id)
    if n == 0:
        return
    source_ids = [str(int(s)) for s in chunk.source_id]
    existing = _existing(conn, source_ids)
    hashes = list(chunk.content_hash)
    new_idx: list[int] = []
    upd_idx: list[int] = []
    for i, sid in enumerate(source_ids):
        hit = existing.get(sid)
        if hit is None:
            new_idx.append(i)
        elif hit[1] != hashes[i]:
            upd_idx.append(i)
    summary.unchanged += n - len(new_idx) - len(upd_idx)
    summary.added += len(new_idx)
    summary.updated += len(upd_idx)
    if not new_idx and not upd_idx:
        return

    material_ids = np.zeros(n, dtype=np.int64)
    start = id_state["material"]
    material_ids[new_idx] = np.arange(start, start + len(new_idx), dtype=np.int64)
    id_state["material"] = start + len(new_idx)
    for i in upd_idx:
        material_ids[i] = existing[source_ids[i]][0]

    if upd_idx:
        upd_ids = [int(material_ids[i]) for i in upd_idx]
        _delete_materials_children(conn, upd_ids)
        stmt = text(
            "UPDATE materials SET formula = :formula, composition = :composition, "
            "natoms = :natoms, spacegroup = :spacegroup, prototype = :prototype, "
            "content_hash = :content_hash, ingest_run_id = :run, updated_at = CURRENT_TIMESTAMP "
            "WHERE id = :id"
        )
        conn.execute(
            stmt,
            [
                {
                    "id": int(material_ids[i]),
                    "formula": chunk.formula[i],
                    "composition": chunk.composition[i],
                    "natoms": int(chunk.natoms[i]),
                    "spacegroup": int(chunk.spacegroup[i]) if chunk.spacegroup[i] >= 0 else None,
                    "prototype": chunk.prototype[i],
                    "content_hash": hashes[i],
                    "run": run_id,
                }
                for i in upd_idx
            ],
        )
    if new_idx:
        sel = np.asarray(new_idx)
        sg = np.asarray(chunk.spacegroup)[sel]
        insert_columns(
            conn,
            "materials",
            {
                "id": material_ids[sel],
                "source": [SOURCE] * len(sel),
                "source_id": [source_ids[i] for i in new_idx],
                "formula": [chunk.formula[i] for i in new_idx],
                "composition": [chunk.composition[i] for i in new_idx],
                "natoms": np.asarray(chunk.natoms)[sel],
                "spacegroup": [int(v) if v >= 0 else None for v in sg],
                "prototype": [chunk.prototype[i] for i in new_idx],
                "content_hash": [hashes[i] for i in new_idx],
                "ingest_run_id": [run_id] * len(sel),
            },
        )

    write = np.sort(np.asarray(new_idx + upd_idx, dtype=np.int64))
    mids = material_ids[write]
    # One structure per material; the structure id is the material id.
    offsets = np.asarray(chunk.site_offsets, dtype=np.int64)
    lattice = np.asarray(chunk.lattice, dtype="<f8")
    frac = np.asarray(chunk.frac_coords, dtype="<f8")
    numbers = np.asarray(chunk.atomic_numbers, dtype="<i2")
    insert_columns(
        conn,
        "structures",
        {
            "id": mids,
            "material_id": mids,
            "source_structure_id": np.asarray(chunk.structure_id, dtype=np.int64)[write],
            "natoms": np.asarray(chunk.natoms, dtype=np.int64)[write],
            "volume": np.asarray(chunk.volume, dtype=np.float64)[write],
            "lattice": [lattice[i].tobytes() for i in write],
            "frac_coords": [frac[offsets[i] : offsets[i + 1]].tobytes() for i in write],
            "atomic_numbers": [numbers[offsets[i] : offsets[i + 1]].tobytes() for i in write],
        },
    )
    # Sites: gather the rows of written materials, vectorised.
    counts = offsets[write + 1] - offsets[write]
    site_struct = np.repeat(mids, counts)
    site_index = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    site_rows = np.repeat(offsets[write], counts) + site_index
    z = numbers[site_rows].astype(np.int64)
    symbols = np.asarray(element_symbols(), dtype=object)
    sym = symbols[z]
    site_cols = {
        "structure_id": site_struct,
        "site_index": site_index.astype(np.int32),
        "atomic_number": z.astype(np.int16),
        "x": frac[site_rows, 0].copy(),
        "y": frac[site_rows, 1].copy(),
        "z": frac[site_rows, 2].copy(),
    }
    if conn.dialect.name == "postgresql":
        # Fixed-width binary COPY needs one symbol length per part: 1- and 2-letter elements.
        symbol_bytes = np.asarray([s.encode() for s in element_symbols()], dtype=object)
        lengths = np.asarray([len(b) for b in symbol_bytes])[z]
        for length in np.unique(lengths):
            part = lengths == length
            copy_fixed_width(conn, "sites", {
                **{k: v[part] for k, v in site_cols.items()},
                "element": symbol_bytes[z[part]].astype(f"S{length}"),
            })
    else:
        site_cols["element"] = sym.tolist()
        insert_columns(conn, "sites", site_cols)
    summary.sites += len(site_rows)

    # Elements per material (count per cell).
    pairs = np.stack([site_struct, z], axis=1)
    uniq, cnt = np.unique(pairs, axis=0, return_counts=True)
    insert_columns(
        conn,
        "material_elements",
        {
            "material_id": uniq[:, 0],
            "element": symbols[uniq[:, 1]].tolist(),
            "count": cnt.astype(np.int64),
        },
    )
    prop = {
        name: np.asarray(getattr(chunk, name), dtype=np.float64)[write]
        for name in (
            "formation_energy",
            "volume_per_atom",
            "band_gap",
            "magnetization",
            "total_magnetization",
            "volume_deviation",
        )
    }
    insert_columns(
        conn,
        "dft_properties",
        {
            "material_id": mids,
            **prop,
            "source_calculation_id": np.asarray(chunk.calculation_id, dtype=np.int64)[write],
            "selection_rule": [rule] * len(write),
        },
    )


def load_chunks(
    engine: Engine,
    chunks: Iterable[Any],
    *,
    rule: str,
    source_name: str,
    file_size: int | None = None,
    sha256: str | None = None,
    dry_run: bool = False,
    source_kind: str = "oqmd-dump",
) -> IngestSummary:
    """Write every chunk in ONE transaction and record the ingest run; roll back on error."""
    summary = IngestSummary(
        source=source_name, rule=rule, file_size=file_size, sha256=sha256, dry_run=dry_run
    )
    t0 = time.perf_counter()
    with engine.connect() as conn:
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
                        sha256=sha256,
                        rule=rule,
                        status="running",
                        n_added=0,
                        n_updated=0,
                        n_unchanged=0,
                        n_rejected=0,
                    )
                )
            id_state = {"material": _next_id(conn, "materials")}
            for chunk in chunks:
                for sid, reason in chunk.rejects:
                    summary.rejects.append((str(sid), reason))
                summary.rejected = len(summary.rejects)
                _write_chunk(conn, chunk, rule, run_id, summary, id_state)
            summary.seconds = time.perf_counter() - t0
            if run_id is not None:
                conn.execute(
                    IngestRun.__table__.update()
                    .where(IngestRun.id == run_id)
                    .values(
                        status="succeeded",
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
            raise
    return summary


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


def write_rejects(path: Path, rejects: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("source_id\treason\n")
        for sid, reason in rejects:
            f.write(f"{sid}\t{reason}\n")


def ensure_known_rule(rule: str, rules: Iterable[str]) -> None:
    if rule not in rules:
        raise InputError(f"unknown selection rule {rule!r}: expected one of {', '.join(rules)}")
