"""Writing one chunk of materials into the platform's tables, with each engine's fast path.

:class:`ChunkWriter` classifies a :class:`~matplat.ingest.oqmd.MaterialChunk` into added /
updated / unchanged materials and writes materials, structures, sites, material_elements
and dft_properties. Columns are built with numpy for the whole chunk (no Python object per
site). PostgreSQL gets binary COPY payloads built with numpy
(:func:`matplat.db.bulk.copy_binary`); MySQL/MariaDB and SQLite get
:func:`matplat.db.bulk.insert_columns` (multi-row INSERT, executemany).

First load into empty tables on PostgreSQL (the OQMD-scale case): every foreign key, unique
constraint and secondary index of the five tables, and the primary keys no foreign key
points at (sites, material_elements, dft_properties), is dropped inside the ingest transaction
and re-created after the last chunk, from the definitions read out of the catalog just
before (``pg_get_constraintdef``, ``pg_get_indexdef``), so the schema afterwards is exactly
the migrated one and re-adding a constraint validates every row. Per-row foreign-key
triggers (one index probe and row lock per site) and per-row index maintenance cost more
than the load itself; one index build and one validating join per constraint at the end
cost a fraction of that. The DDL is transactional: a failed or interrupted ingest rolls it
back with the rows. The tables are locked (ACCESS EXCLUSIVE) until the ingest commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, text

from matplat.db.bulk import binary_payload, copy_binary, copy_payload, insert_columns

__all__ = ["SOURCE", "TARGET_TABLES", "ChunkWriter", "element_symbols"]

SOURCE = "oqmd"
_SORT_MEMORY = 256 * 2**20  # maintenance_work_mem while indexes are re-created, at least
TARGET_TABLES = ("materials", "structures", "sites", "material_elements", "dft_properties")
_PROPERTIES = (
    "formation_energy",
    "volume_per_atom",
    "band_gap",
    "magnetization",
    "total_magnetization",
    "volume_deviation",
    "oqmd_stability",
)

#: Atomic number → element symbol (index 0 unused).
_SYMBOLS: list[str] | None = None


def element_symbols() -> list[str]:
    global _SYMBOLS
    if _SYMBOLS is None:
        from pymatgen.core.periodic_table import Element

        _SYMBOLS = [""] + [Element.from_Z(z).symbol for z in range(1, 119)]
    return _SYMBOLS


@dataclass
class Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    sites: int = 0


def _plain(col: Any) -> Any:
    """A column in the form :func:`insert_columns` takes (str for text, None for NULL)."""
    if isinstance(col, np.ma.MaskedArray):
        return [
            None if m else v
            for v, m in zip(col.data.tolist(), np.ma.getmaskarray(col).tolist(), strict=True)
        ]
    if isinstance(col, np.ndarray) and col.dtype.kind == "S":
        return [v.decode() for v in col.tolist()]
    if isinstance(col, np.ndarray) and col.dtype.kind == "V":
        return [bytes(v) for v in col]
    return col


class ChunkWriter:
    """Writes chunks on one connection inside the caller's transaction."""

    def __init__(
        self, conn: Connection, rule: str, run_id: int | None, *, source: str = SOURCE
    ) -> None:
        self.conn = conn
        self.rule = rule
        self.run_id = run_id
        self.source = source  # materials.source of every row (structure files: their name)
        self.pg = conn.dialect.name == "postgresql"
        self.counts = Counts()
        self.next_material_id = _next_id(conn, "materials")
        # With no material of this source yet, every material of the run is new: skip the
        # per-chunk lookup (the unique constraint still guards against duplicates).
        self.none_stored = (
            conn.execute(
                text("SELECT 1 FROM materials WHERE source = :s LIMIT 1"), {"s": source}
            ).first()
            is None
        )
        self._deferred: list[tuple[str, str]] = []
        self._sink: list[tuple[str, list[str], list[bytes]]] | None = None
        self._symbols = np.asarray([s.encode() for s in element_symbols()], dtype="S2")

    # -- PostgreSQL: constraints and indexes after the load ---------------------------
    def defer_constraints(self) -> bool:
        """With all five tables empty, set their indexes (and on PostgreSQL their FKs, unique
        constraints and unreferenced primary keys) aside until :meth:`restore_constraints`.
        Returns whether it did."""
        if self.conn.dialect.name not in ("postgresql", "sqlite"):
            return False
        for t in TARGET_TABLES:
            if self.conn.execute(text(f"SELECT 1 FROM {t} LIMIT 1")).first() is not None:
                return False
        if not self.pg:
            # SQLite: the explicit indexes (constraints live in the table definitions).
            names = ", ".join(f"'{t}'" for t in TARGET_TABLES)
            for name, definition in self.conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    f"AND sql IS NOT NULL AND tbl_name IN ({names}) ORDER BY name"
                )
            ).all():
                self.conn.execute(text(f'DROP INDEX "{name}"'))
                self._deferred.append(("", definition))
            return True
        tables = "ARRAY[" + ", ".join(f"'{t}'" for t in TARGET_TABLES) + "]::regclass[]"
        fks = self.conn.execute(
            text(
                "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid), contype "
                f"FROM pg_constraint c WHERE conrelid = ANY({tables}) AND (contype IN ('f', 'u') "
                "OR contype = 'p' AND NOT EXISTS (SELECT 1 FROM pg_constraint r "
                "WHERE r.contype = 'f' AND r.confrelid = c.conrelid)) "
                "ORDER BY contype, conrelid::regclass::text, conname"
            )
        ).all()
        indexes = self.conn.execute(
            text(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
                f"FROM pg_index i WHERE i.indrelid = ANY({tables}) AND NOT EXISTS ("
                "SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
                "AND c.conrelid = i.indrelid) ORDER BY 1"
            )
        ).all()
        # Drop foreign keys first, then unique constraints and indexes; re-create in reverse.
        for name, table, definition, _ in fks:
            self.conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
            self._deferred.append(
                (table, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            )
        for name, definition in indexes:
            self.conn.execute(text(f"DROP INDEX {name}"))
            self._deferred.append(("", definition))
        return True

    def restore_constraints(self) -> None:
        """Re-create what :meth:`defer_constraints` dropped (indexes first, FKs last)."""
        if self._deferred and self.pg:
            # Sort in memory, and let PostgreSQL build the large indexes with parallel
            # workers (it needs 32 MB per participant): the client is idle by now.
            mem = self.conn.execute(
                text(
                    "SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'"
                )
            ).scalar_one()
            if mem < _SORT_MEMORY:
                self.conn.execute(
                    text(f"SET LOCAL maintenance_work_mem = '{_SORT_MEMORY // 2**20}MB'")
                )
        while self._deferred:
            _, statement = self._deferred.pop()
            self.conn.execute(text(statement))

    # -- one chunk -------------------------------------------------------------------------
    def write(self, chunk: Any) -> None:
        n = len(chunk.source_id)
        if n == 0:
            return
        # OQMD ids are integers; structure files name their materials.
        source_ids = [s if isinstance(s, str) else str(int(s)) for s in chunk.source_id]
        hashes = list(chunk.content_hash)
        if self.none_stored:
            new_idx = list(range(n))
            upd_idx: list[int] = []
            existing: dict[str, tuple[int, str]] = {}
        else:
            existing = _existing(self.conn, source_ids, self.source)
            new_idx, upd_idx = [], []
            for i, sid in enumerate(source_ids):
                hit = existing.get(sid)
                if hit is None:
                    new_idx.append(i)
                elif hit[1] != hashes[i]:
                    upd_idx.append(i)
        c = self.counts
        c.unchanged += n - len(new_idx) - len(upd_idx)
        c.added += len(new_idx)
        c.updated += len(upd_idx)
        if not new_idx and not upd_idx:
            return

        material_ids = np.zeros(n, dtype=np.int64)
        start = self.next_material_id
        material_ids[new_idx] = np.arange(start, start + len(new_idx), dtype=np.int64)
        self.next_material_id = start + len(new_idx)
        for i in upd_idx:
            material_ids[i] = existing[source_ids[i]][0]
        if upd_idx:
            self._update_materials(chunk, material_ids, upd_idx, hashes)
        if new_idx:
            self._insert_materials(chunk, material_ids, new_idx, source_ids, hashes)
        write = np.sort(np.asarray(new_idx + upd_idx, dtype=np.int64))
        self._insert_structures(chunk, material_ids[write], write)

    @property
    def can_prepare(self) -> bool:
        """Whether chunks can be turned into COPY payloads without the database (PostgreSQL,
        no material of the source stored: no lookups, no updates), see :meth:`prepare`."""
        return self.pg and self.none_stored

    def prepare(self, chunk: Any) -> list[tuple[str, list[str], list[bytes]]]:
        """The chunk's rows as binary COPY payloads ``(table, columns, parts)``; no database
        access, so one thread can prepare the next chunk while another :meth:`send` s."""
        assert self.can_prepare
        self._sink = []
        try:
            self.write(chunk)
            return self._sink
        finally:
            self._sink = None

    def send(self, prepared: list[tuple[str, list[str], list[bytes]]]) -> None:
        for table, names, parts in prepared:
            copy_payload(self.conn, table, names, parts)

    def _put(self, table: str, columns: dict[str, Any]) -> None:
        if self.pg:
            if self._sink is not None:
                parts = binary_payload(columns)
                if parts:
                    self._sink.append((table, list(columns), parts))
            else:
                copy_binary(self.conn, table, columns)
        else:
            insert_columns(self.conn, table, {k: _plain(v) for k, v in columns.items()})

    def _update_materials(
        self, chunk: Any, material_ids: np.ndarray, upd_idx: list[int], hashes: list[str]
    ) -> None:
        _delete_materials_children(self.conn, [int(material_ids[i]) for i in upd_idx])
        stmt = text(
            "UPDATE materials SET formula = :formula, composition = :composition, "
            "natoms = :natoms, spacegroup = :spacegroup, prototype = :prototype, "
            "content_hash = :content_hash, ingest_run_id = :run, updated_at = CURRENT_TIMESTAMP "
            "WHERE id = :id"
        )
        self.conn.execute(
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
                    "run": self.run_id,
                }
                for i in upd_idx
            ],
        )

    def _insert_materials(
        self,
        chunk: Any,
        material_ids: np.ndarray,
        new_idx: list[int],
        source_ids: list[str],
        hashes: list[str],
    ) -> None:
        sel = np.asarray(new_idx, dtype=np.int64)
        m = len(sel)
        sg = np.asarray(chunk.spacegroup)[sel].astype(np.int16)
        run = np.full(m, self.run_id if self.run_id is not None else 0, dtype=np.int64)
        self._put(
            "materials",
            {
                "id": material_ids[sel],
                "source": np.full(m, self.source.encode(), dtype=f"S{len(self.source.encode())}"),
                "source_id": np.asarray([source_ids[i].encode() for i in new_idx], dtype="S"),
                "formula": [chunk.formula[i] for i in new_idx],
                "composition": [chunk.composition[i] for i in new_idx],
                "natoms": np.asarray(chunk.natoms)[sel].astype(np.int32),
                "spacegroup": np.ma.masked_array(sg, mask=sg < 0),
                "prototype": [chunk.prototype[i] for i in new_idx],
                "content_hash": np.asarray([hashes[i].encode() for i in new_idx], dtype="S64"),
                "ingest_run_id": np.ma.masked_array(run, mask=self.run_id is None),
            },
        )

    def _insert_structures(self, chunk: Any, mids: np.ndarray, write: np.ndarray) -> None:
        """Structures, sites, elements and DFT properties of the materials ``write``."""
        offsets = np.asarray(chunk.site_offsets, dtype=np.int64)
        lattice = np.ascontiguousarray(np.asarray(chunk.lattice, dtype="<f8")[write])
        frac = np.ascontiguousarray(chunk.frac_coords, dtype="<f8")
        numbers = np.ascontiguousarray(chunk.atomic_numbers, dtype="<i2")
        frac_b, z_b = frac.tobytes(), numbers.tobytes()
        lo, hi = offsets[write].tolist(), offsets[write + 1].tolist()
        # One structure per material; the structure id is the material id.
        self._put(
            "structures",
            {
                "id": mids,
                "material_id": mids,
                "source_structure_id": _nullable(chunk.structure_id, write),
                "natoms": np.asarray(chunk.natoms)[write].astype(np.int32),
                "volume": np.asarray(chunk.volume, dtype=np.float64)[write],
                "lattice": lattice.reshape(len(write), 9).view("V72").reshape(-1),
                "frac_coords": [frac_b[a * 24 : b * 24] for a, b in zip(lo, hi, strict=True)],
                "atomic_numbers": [z_b[a * 2 : b * 2] for a, b in zip(lo, hi, strict=True)],
            },
        )
        # Sites of the written materials, gathered with numpy.
        counts = offsets[write + 1] - offsets[write]
        site_struct = np.repeat(mids, counts)
        site_index = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        site_rows = np.repeat(offsets[write], counts) + site_index
        z = numbers[site_rows].astype(np.int64)
        xyz = frac[site_rows]
        self._put(
            "sites",
            {
                "structure_id": site_struct,
                "site_index": site_index.astype(np.int32),
                "element": self._symbols[z],
                "atomic_number": z.astype(np.int16),
                "x": np.ascontiguousarray(xyz[:, 0]),
                "y": np.ascontiguousarray(xyz[:, 1]),
                "z": np.ascontiguousarray(xyz[:, 2]),
            },
        )
        self.counts.sites += len(site_rows)
        # Elements per material (count per cell).
        keys, cnt = np.unique(site_struct * 256 + z, return_counts=True)
        self._put(
            "material_elements",
            {
                "material_id": keys >> 8,
                "element": self._symbols[keys & 255],
                "count": cnt.astype(np.int32),
            },
        )
        self._put(
            "dft_properties",
            {
                "material_id": mids,
                **{name: _floats(chunk, name, write) for name in _PROPERTIES},
                "source_calculation_id": _nullable(chunk.calculation_id, write),
                "selection_rule": np.full(
                    len(write), self.rule.encode(), dtype=f"S{len(self.rule)}"
                ),
            },
        )


def _floats(chunk: Any, name: str, rows: np.ndarray) -> np.ndarray:
    """A float property of the written rows; NaN (NULL) where the chunk has none."""
    v = getattr(chunk, name, None)
    if v is None:
        return np.full(len(rows), np.nan)
    return np.asarray(v, dtype=np.float64)[rows]


def _next_id(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()) + 1


def _nullable(ids: Any, rows: np.ndarray) -> np.ma.MaskedArray:
    """Source ids of the written rows; negative ids (none: structure files) are NULL."""
    v = np.asarray(ids, dtype=np.int64)[rows]
    return np.ma.masked_array(v, mask=v < 0)


def _existing(
    conn: Connection, source_ids: list[str], source: str = SOURCE
) -> dict[str, tuple[int, str]]:
    """(source_id → (material id, content hash)) for the chunk's materials already stored."""
    out: dict[str, tuple[int, str]] = {}
    stmt = text(
        "SELECT source_id, id, content_hash FROM materials "
        "WHERE source = :source AND source_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    for i in range(0, len(source_ids), 2000):
        part = source_ids[i : i + 2000]
        for sid, mid, h in conn.execute(stmt, {"source": source, "ids": part}):
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
