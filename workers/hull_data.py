"""Reading hull inputs from the database: every material of a source as CSR compositions.

One query per table (materials with their formation energy; material_elements in material
order), turned into :class:`ml.stability.systems.Entries` with numpy, cached per process and
data snapshot so that the tasks of one build (in this process, or many on one worker) read
the database once. A chemical system's *signature* is an order-free 64-bit hash of its
materials' ids, compositions and formation energies: equal signatures mean the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, text

from ml.graphs.elements import SYMBOLS
from ml.stability.systems import Entries, SystemIndex, system_name

Z_OF = {s: i + 1 for i, s in enumerate(SYMBOLS)}


@dataclass
class SourceData:
    """A source's materials: ``entries`` (labels are material ids), formulas, their systems."""

    source: str
    entries: Entries
    formulas: np.ndarray  # (n,) object
    index: SystemIndex
    names: list[str]  # chemical system name of index.systems[i]
    signatures: np.ndarray  # (n_systems,) int64

    def system_ids(self, names: list[str]) -> list[int]:
        pos = {n: i for i, n in enumerate(self.names)}
        return [pos[n] for n in names if n in pos]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def signatures(entries: Entries, index: SystemIndex) -> np.ndarray:
    """(n_systems,) int64: Σ over a system's materials of a hash of (id, composition, energy)."""
    with np.errstate(over="ignore"):
        e = entries.energies.copy()
        e[np.isnan(e)] = np.nan  # one NaN bit pattern
        per_nnz = _mix(entries.z.astype(np.uint64) * np.uint64(1_000_003)
                       ^ entries.amount.astype(np.float64).view(np.uint64))
        comp = np.zeros(len(entries.labels), dtype=np.uint64)
        rows = np.repeat(np.arange(len(entries.labels)), np.diff(entries.indptr))
        np.add.at(comp, rows, per_nnz)
        h = _mix(entries.labels.astype(np.uint64) ^ _mix(e.view(np.uint64)) ^ _mix(comp))
        out = np.zeros(len(index.systems), dtype=np.uint64)
        np.add.at(out, index.system_of, h)
    return out.view(np.int64)


def load_source(engine: Engine, source: str) -> SourceData:
    """Every material of ``source`` with its composition and DFT formation energy (NaN when
    missing); materials without elements get an empty composition (left out)."""
    with engine.connect() as conn:
        return read_source(conn, source)


def read_source(conn: Connection, source: str) -> SourceData:
    """:func:`load_source` on an open connection (inside the caller's transaction)."""
    mats = conn.execute(text(
        "SELECT m.id, m.formula, d.formation_energy FROM materials m "
        "LEFT JOIN dft_properties d ON d.material_id = m.id WHERE m.source = :s "
        "ORDER BY m.id"), {"s": source}).all()
    els = conn.execute(text(
        "SELECT e.material_id, e.element, e.count FROM material_elements e "
        "JOIN materials m ON m.id = e.material_id WHERE m.source = :s "
        "ORDER BY e.material_id, e.element"), {"s": source}).all()
    ids = np.fromiter((r[0] for r in mats), dtype=np.int64, count=len(mats))
    formulas = np.array([r[1] for r in mats], dtype=object)
    fe = np.fromiter((np.nan if r[2] is None else r[2] for r in mats), dtype=np.float64,
                     count=len(mats))
    entries = _entries(ids, fe, els)
    index = SystemIndex.build(entries)
    names = [system_name(s) for s in index.systems]
    return SourceData(source, entries, formulas, index, names, signatures(entries, index))


def _entries(ids: np.ndarray, energies: np.ndarray, els: list) -> Entries:
    """CSR entries from (material_id, element, count) rows sorted by material id."""
    e_mid = np.fromiter((r[0] for r in els), dtype=np.int64, count=len(els))
    sym, inv = np.unique(np.array([r[1] for r in els], dtype=object), return_inverse=True)
    z_of_sym = np.array([Z_OF.get(s, 0) for s in sym], dtype=np.int64)
    z = z_of_sym[inv] if len(els) else np.zeros(0, np.int64)
    amount = np.fromiter((r[2] for r in els), dtype=np.float64, count=len(els))
    known = z > 0
    e_mid, z, amount = e_mid[known], z[known], amount[known]
    pos = np.searchsorted(ids, e_mid)
    indptr = np.zeros(len(ids) + 1, dtype=np.int64)
    np.add.at(indptr, pos + 1, 1)
    indptr = np.cumsum(indptr)
    return Entries(ids, energies, indptr, z, amount)


def read_entries(conn: Connection, material_ids: np.ndarray, energies: np.ndarray) -> Entries:
    """Entries of given materials (ascending ids) with caller-supplied energies (e.g. the
    predicted formation energies of materials that have no DFT hull distance)."""
    rows: list = []
    ids = [int(m) for m in material_ids]
    for i in range(0, len(ids), 2000):
        rows += conn.execute(text(
            "SELECT material_id, element, count FROM material_elements WHERE material_id IN :ids "
            "ORDER BY material_id, element").bindparams(bindparam("ids", expanding=True)),
            {"ids": ids[i:i + 2000]}).all()
    return _entries(np.asarray(material_ids, dtype=np.int64),
                    np.asarray(energies, dtype=np.float64), rows)


# keyed by database too: build ids restart at 1 in every database, and one process (a worker,
# a test run) may serve several
_CACHE: dict[tuple[str, str, int], SourceData] = {}


def _key(engine: Engine, source: str, build_id: int) -> tuple[str, str, int]:
    return engine.url.render_as_string(hide_password=True), source, build_id


def cached_source(engine: Engine, source: str, build_id: int) -> SourceData:
    """:func:`load_source` once per (database, source, hull build) in this process."""
    key = _key(engine, source, build_id)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_source(engine, source)
    return _CACHE[key]


def remember(engine: Engine, data: SourceData, build_id: int) -> None:
    """Keep data read while planning for the build's in-process tasks."""
    _CACHE.clear()
    _CACHE[_key(engine, data.source, build_id)] = data
