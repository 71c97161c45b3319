"""Checked structure records → the OQMD loader's columnar chunks, and their writer.

File structures go through exactly the bulk writers of the OQMD ingest
(:class:`matplat.ingest.writers.ChunkWriter`: PostgreSQL binary COPY, multi-row INSERT on
MySQL/MariaDB, executemany on SQLite; added / updated / unchanged by content hash), so a
material from a file has the same rows as one from a dump. :class:`FileChunk` adds the
provenance (file, block or frame, file sha256, format) that :class:`FileChunkWriter`
writes into ``material_files`` next to the five tables.

Derived values as for the OQMD ``cgnn`` rule: volume = |det(lattice)|, volume per atom =
volume / natoms, volume deviation = 1 − atomic volume / volume per atom, formulas by
:class:`matplat.ingest.formulas.Formulas`; DFT values the files (or ``--properties``) do
not give are NULL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matplat.ingest.formulas import Formulas
from matplat.ingest.oqmd import MaterialChunk
from matplat.ingest.structures.canonical import content_hash
from matplat.ingest.structures.records import Parsed
from matplat.ingest.writers import ChunkWriter

__all__ = ["FILE_RULE", "FileChunk", "FileChunkWriter", "build_chunk"]

#: ``selection_rule`` of the DFT rows and ``rule`` of the ingest runs of structure files.
FILE_RULE = "structure-files"


@dataclass
class FileChunk(MaterialChunk):
    """A :class:`MaterialChunk` of file structures with their provenance, per material."""

    files: list[str] = field(default_factory=list)
    blocks: list[str | None] = field(default_factory=list)
    file_sha256: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)


def build_chunk(records: list[Parsed], shas: list[str], formulas: Formulas) -> FileChunk:
    """One chunk of accepted records (stored form already applied), in the given order."""
    n = len(records)
    natoms = np.array([len(r.numbers) for r in records], dtype=np.int64)  # type: ignore[arg-type]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(natoms, out=offsets[1:])
    lattice = (np.stack([r.lattice for r in records]) if n else np.zeros((0, 3, 3))).astype("<f8")
    frac = np.concatenate([r.frac for r in records]) if n else np.zeros((0, 3))  # type: ignore[misc]
    numbers = np.concatenate([r.numbers for r in records]) if n else np.zeros(0, np.int16)  # type: ignore[misc]
    volume = np.abs(np.linalg.det(lattice)) if n else np.zeros(0)
    forms, comps, v_atoms = [], [], np.empty(n)
    for i, r in enumerate(records):
        z, c = np.unique(r.numbers, return_counts=True)  # type: ignore[arg-type]
        f, comp, v = formulas.get(tuple(zip(z.tolist(), c.tolist(), strict=True)))
        forms.append(f)
        comps.append(comp)
        v_atoms[i] = v

    def prop(name: str) -> np.ndarray:
        return np.array([r.props.get(name, np.nan) for r in records], dtype=np.float64)

    vpa = volume / np.maximum(natoms, 1)
    mag = prop("magnetization")
    none = np.full(n, -1, dtype=np.int64)
    return FileChunk(
        source_id=np.array([r.name for r in records], dtype=object),
        entry_id=none,
        calculation_id=none,
        structure_id=none,
        formula=forms,
        composition=comps,
        natoms=natoms.astype(np.int32),
        spacegroup=np.array([r.spacegroup for r in records], dtype=np.int32),
        prototype=[None] * n,
        lattice=lattice,
        site_offsets=offsets,
        frac_coords=np.ascontiguousarray(frac, dtype="<f8"),
        atomic_numbers=np.ascontiguousarray(numbers, dtype="<i2"),
        volume=volume,
        formation_energy=prop("formation_energy"),
        band_gap=prop("band_gap"),
        magnetization=mag,
        total_magnetization=mag * natoms,
        volume_per_atom=vpa,
        volume_deviation=1.0 - v_atoms / vpa,
        content_hash=[
            content_hash(r.lattice, r.frac, r.numbers, r.props)  # type: ignore[arg-type]
            for r in records
        ],
        rule=FILE_RULE,
        files=[r.file for r in records],
        blocks=[r.block for r in records],
        file_sha256=shas,
        formats=[r.fmt for r in records],
    )


class FileChunkWriter(ChunkWriter):
    """The OQMD chunk writer for a named source, plus the ``material_files`` rows."""

    def __init__(self, conn: Any, rule: str, run_id: int | None, *, source: str) -> None:
        super().__init__(conn, rule, run_id, source=source)

    def _update_materials(self, chunk: Any, material_ids: np.ndarray, upd_idx: list[int],
                          hashes: list[str]) -> None:
        from sqlalchemy import bindparam, text

        ids = [int(material_ids[i]) for i in upd_idx]
        stmt = text("DELETE FROM material_files WHERE material_id IN :ids").bindparams(
            bindparam("ids", expanding=True))
        for i in range(0, len(ids), 2000):
            self.conn.execute(stmt, {"ids": ids[i : i + 2000]})
        super()._update_materials(chunk, material_ids, upd_idx, hashes)

    def _insert_structures(self, chunk: Any, mids: np.ndarray, write: np.ndarray) -> None:
        super()._insert_structures(chunk, mids, write)
        rows = write.tolist()
        self._put(
            "material_files",
            {
                "material_id": mids,
                "file": [chunk.files[i] for i in rows],
                "block": [chunk.blocks[i] for i in rows],
                "file_format": [chunk.formats[i] for i in rows],
                "file_sha256": np.array([chunk.file_sha256[i].encode() for i in rows],
                                        dtype="S64"),
            },
        )
