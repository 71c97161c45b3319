"""Writing a discovery run's candidates: materials, structures, sites, elements, lineage and
predictions, with each engine's bulk path, in the caller's transaction.

Candidates are materials of source ``candidates:RUN`` whose ``source_id`` is their natural
key (reduced formula @ structure-type key), so a candidate stored once is skipped when a
resumed or repeated task offers it again, and two workers can never store it twice (the
unique constraint on ``(source, source_id)``). Material and structure ids are allocated under
the same lock as an ingest's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, bindparam, text

from matplat.db.bulk import insert_columns, write_predictions


@dataclass
class StoredCandidate:
    """One candidate ready to store (the scaled structure and everything the run decided)."""

    source_id: str
    formula: str
    composition: str
    spacegroup: int | None
    prototype: str | None
    lattice: np.ndarray
    frac_coords: np.ndarray
    atomic_numbers: np.ndarray
    parent_material_id: int
    species_map: str
    probability: float
    charge_checked: bool
    predictions: dict[str, tuple[float, float | None]]
    e_above_hull: float | None
    decomposition: str | None


def lock_ids(conn: Connection) -> None:
    """Serialise material id allocation with ingests (same lock as ``matplat.ingest``)."""
    backend = conn.dialect.name
    if backend == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))
    elif backend in ("mysql", "mariadb"):
        conn.execute(text("SELECT id FROM materials ORDER BY id DESC LIMIT 1 FOR UPDATE"))


def _next_id(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()) + 1


def stored_source_ids(conn: Connection, source: str, source_ids: Sequence[str]) -> set[str]:
    """Which of ``source_ids`` of ``source`` are stored already."""
    if not source_ids:
        return set()
    stmt = text("SELECT source_id FROM materials WHERE source = :s AND source_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True))
    found: set[str] = set()
    ids = list(source_ids)
    for i in range(0, len(ids), 2000):
        found.update(r[0] for r in conn.execute(stmt, {"s": source, "ids": ids[i:i + 2000]}))
    return found


def _content_hash(c: StoredCandidate) -> str:
    h = hashlib.sha256(c.source_id.encode())
    for arr in (c.lattice.astype("<f8"), c.frac_coords.astype("<f8"),
                c.atomic_numbers.astype("<i2")):
        h.update(arr.tobytes())
    return h.hexdigest()


def write_candidates(conn: Connection, source: str, run_id: int, model_version_id: int,
                     candidates: Sequence[StoredCandidate], symbols: Sequence[str]) -> int:
    """Store the candidates not stored yet; returns how many were written.

    ``symbols[z]`` is the element symbol of Z (``symbols[0]`` unused).
    """
    lock_ids(conn)
    have = stored_source_ids(conn, source, [c.source_id for c in candidates])
    todo = [c for c in candidates if c.source_id not in have]
    if not todo:
        return 0
    n = len(todo)
    mid0, sid0 = _next_id(conn, "materials"), _next_id(conn, "structures")
    mids = np.arange(mid0, mid0 + n, dtype=np.int64)
    sids = np.arange(sid0, sid0 + n, dtype=np.int64)
    natoms = np.array([len(c.atomic_numbers) for c in todo], dtype=np.int64)
    insert_columns(conn, "materials", {
        "id": mids, "source": [source] * n, "source_id": [c.source_id for c in todo],
        "formula": [c.formula for c in todo], "composition": [c.composition for c in todo],
        "natoms": natoms, "spacegroup": [c.spacegroup for c in todo],
        "prototype": [c.prototype for c in todo],
        "content_hash": [_content_hash(c) for c in todo],
    })
    insert_columns(conn, "structures", {
        "id": sids, "material_id": mids, "natoms": natoms,
        "volume": np.array([abs(float(np.linalg.det(c.lattice))) for c in todo]),
        "lattice": [c.lattice.astype("<f8").tobytes() for c in todo],
        "frac_coords": [c.frac_coords.astype("<f8").tobytes() for c in todo],
        "atomic_numbers": [c.atomic_numbers.astype("<i2").tobytes() for c in todo],
    })
    z = np.concatenate([c.atomic_numbers for c in todo]).astype(np.int64)
    frac = np.concatenate([c.frac_coords for c in todo])
    sym = np.asarray(symbols, dtype=object)
    insert_columns(conn, "sites", {
        "structure_id": np.repeat(sids, natoms),
        "site_index": np.concatenate([np.arange(k) for k in natoms]).astype(np.int64),
        "element": sym[z].tolist(), "atomic_number": z,
        "x": frac[:, 0], "y": frac[:, 1], "z": frac[:, 2],
    })
    el_mid, el_sym, el_count = [], [], []
    for m, c in zip(mids.tolist(), todo, strict=True):
        values, counts = np.unique(c.atomic_numbers, return_counts=True)
        el_mid += [m] * len(values)
        el_sym += sym[values].tolist()
        el_count += counts.tolist()
    insert_columns(conn, "material_elements", {
        "material_id": el_mid, "element": el_sym, "count": el_count})
    insert_columns(conn, "candidates", {
        "material_id": mids, "run_id": [run_id] * n,
        "parent_material_id": [c.parent_material_id for c in todo],
        "species_map": [c.species_map for c in todo],
        "probability": np.array([c.probability for c in todo]),
        "charge_checked": [bool(c.charge_checked) for c in todo],
        "model_version_id": [model_version_id] * n,
        "e_above_hull": np.array([np.nan if c.e_above_hull is None else c.e_above_hull
                                  for c in todo]),
        "decomposition": [c.decomposition for c in todo],
    })
    for prop in sorted({p for c in todo for p in c.predictions}):
        rows = [(m, c.predictions[prop]) for m, c in zip(mids.tolist(), todo, strict=True)
                if prop in c.predictions]
        unc = np.array([np.nan if u is None else u for _, (_, u) in rows])
        write_predictions(conn, model_version_id, np.array([m for m, _ in rows], np.int64), prop,
                          np.array([v for _, (v, _) in rows]),
                          None if np.isnan(unc).all() else unc)
    return n
