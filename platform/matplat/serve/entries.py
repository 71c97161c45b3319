"""Pages of OPTIMADE structures: the SQL of one request and the JSON of each entry.

A page is two statements in the request's read-only transaction: the ids of the page
(filter, order, LIMIT/OFFSET over the joined tables) and then everything about those ids
(one row each, with the structure's arrays); the count of matches is a third. Array
columns are little-endian bytes decoded with numpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from matplat.db.models import ModelAlias, ModelVersion, Structure
from matplat.serve.errors import bad_request
from matplat.serve.fields import FIELDS, PRODUCTION_ALIAS, T

_SYMBOLS: list[str] = []


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (pymatgen's table, read once)."""
    if not _SYMBOLS:
        from pymatgen.core.periodic_table import Element

        _SYMBOLS.extend([""] + [Element.from_Z(i).symbol for i in range(1, 119)])
    return _SYMBOLS[z]


@dataclass(frozen=True)
class Production:
    """The model version aliased ``production`` (None when the alias is unset)."""

    id: int | None
    tag: str | None


_PRODUCTION: dict[str, tuple[float, Production]] = {}
PRODUCTION_TTL_S = 5.0


def production(conn: Connection, key: str | None = None) -> Production:
    """The current ``production`` model; with ``key``, cached for a few seconds per database
    (a reassigned alias shows within :data:`PRODUCTION_TTL_S`)."""
    if key is not None:
        hit = _PRODUCTION.get(key)
        if hit is not None and time.monotonic() - hit[0] < PRODUCTION_TTL_S:
            return hit[1]
        prod = production(conn)
        _PRODUCTION[key] = (time.monotonic(), prod)
        return prod
    row = conn.execute(
        sa.select(ModelVersion.id, ModelVersion.tag)
        .join(ModelAlias, ModelAlias.model_version_id == ModelVersion.id)
        .where(ModelAlias.alias == PRODUCTION_ALIAS, ModelAlias.replaced_at.is_(None))
    ).first()
    return Production(int(row[0]), str(row[1])) if row else Production(None, None)


def joined(prod: Production) -> Any:
    """materials ⋈ summaries ⟕ dft_properties ⟕ production predictions ⟕ hull distances.

    Every outer join is on a unique key, so PostgreSQL, MariaDB and SQLite drop the ones a
    statement does not use (a count of a filter on ``nelements`` reads only the summaries).
    """
    w_on = sa.and_(T.w.c.material_id == T.m.c.id, T.w.c.model_version_id == (prod.id or -1))
    return (
        T.m.join(T.s, T.s.c.material_id == T.m.c.id)
        .outerjoin(T.d, T.d.c.material_id == T.m.c.id)
        .outerjoin(T.w, w_on)
        .outerjoin(T.h, T.h.c.material_id == T.m.c.id)
    )


def order_by(sort: str | None) -> list[ColumnElement]:
    """ORDER BY of an OPTIMADE ``sort`` parameter ("-nsites,id"); always ends with the id."""
    keys: list[ColumnElement] = []
    for part in (sort or "").split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part.lstrip("-")
        field = FIELDS.get(name)
        if field is None:
            raise bad_request(f"cannot sort on unknown property {name!r}", "sort")
        if not field.sortable:
            raise bad_request(f"property {name!r} is not sortable (a list)", "sort")
        col = T.m.c.id if name == "id" else field.sql()
        keys.append(col.desc() if desc else col.asc())
    keys.append(T.m.c.id.asc())
    return keys


def page_ids(
    conn: Connection, where: ColumnElement | None, prod: Production, sort: str | None,
    limit: int, offset: int,
) -> tuple[list[int], bool]:
    """The ids of one page and whether more follow (reads limit + 1 rows)."""
    q = sa.select(T.m.c.id).select_from(joined(prod))
    if where is not None:
        q = q.where(where)
    q = q.order_by(*order_by(sort)).limit(limit + 1).offset(offset)
    ids = [int(r[0]) for r in conn.execute(q)]
    return ids[:limit], len(ids) > limit


#: A filter whose matches do not fit on the page is counted up to this many; beyond it
#: ``data_returned`` is left out (OPTIMADE makes it optional). An exact count of a broad
#: filter over 500k materials took 0.3–2 s in PostgreSQL and a count capped at 10,000 still
#: 0.1–0.4 s (bench/serve.py), where the page itself takes about a millisecond.
COUNT_CAP = 1_000


def page(
    conn: Connection, where: ColumnElement | None, prod: Production, sort: str | None,
    limit: int, offset: int,
) -> tuple[list[sa.Row], bool]:
    """The rows of one page and whether more follow.

    Near the start one statement reads the page's full rows; past :data:`ONE_STATEMENT_OFFSET`
    the ids come first (an index-only walk over the skipped entries), then their rows.
    """
    if offset > ONE_STATEMENT_OFFSET:
        ids, more = page_ids(conn, where, prod, sort, limit, offset)
        rows = rows_for(conn, ids, prod)
        return [rows[i] for i in ids if i in rows], more
    st = Structure.__table__
    q = sa.select(*_ROW_COLUMNS).select_from(
        joined(prod).join(st, st.c.id == T.s.c.structure_id))
    if where is not None:
        q = q.where(where)
    found = conn.execute(q.order_by(*order_by(sort)).limit(limit + 1).offset(offset)).all()
    return found[:limit], len(found) > limit


ONE_STATEMENT_OFFSET = 1_000


def count(conn: Connection, where: ColumnElement | None, prod: Production) -> int | None:
    """Matches of a filter, or None when there are more than :data:`COUNT_CAP`."""
    inner = sa.select(sa.literal(1)).select_from(joined(prod))
    if where is not None:
        inner = inner.where(where)
    n = int(conn.execute(
        sa.select(sa.func.count()).select_from(inner.limit(COUNT_CAP + 1).subquery())
    ).scalar_one())
    return None if n > COUNT_CAP else n


def returned(
    conn: Connection, where: ColumnElement | None, prod: Production, rows: list[Any],
    more: bool, offset: int, available: int,
) -> int | None:
    """``data_returned``: known without a query for no filter and on a filter's last page."""
    if where is None:
        return available
    if not more and (rows or offset == 0):
        return offset + len(rows)
    return count(conn, where, prod)


_AVAILABLE: dict[str, tuple[float, int]] = {}


def available(conn: Connection, key: str) -> int:
    """Number of structures served (cached for 30 s: a full count on every page costs)."""
    hit = _AVAILABLE.get(key)
    if hit is not None and time.monotonic() - hit[0] < 30:
        return hit[1]
    n = int(conn.execute(sa.select(sa.func.count()).select_from(T.s)).scalar_one())
    _AVAILABLE[key] = (time.monotonic(), n)
    return n


_ROW_COLUMNS = [
    T.m.c.id, T.m.c.formula, T.m.c.spacegroup, T.m.c.updated_at, T.m.c.source, T.m.c.source_id,
    T.s.c.nelements, T.s.c.nsites, T.s.c.elements, T.s.c.counts, T.s.c.formula_reduced,
    T.s.c.formula_anonymous, T.s.c.formula_hill,
    Structure.__table__.c.lattice, Structure.__table__.c.frac_coords,
    Structure.__table__.c.atomic_numbers,
    T.d.c.formation_energy, T.d.c.band_gap, T.d.c.magnetization, T.d.c.volume_per_atom,
    T.h.c.e_above_hull, T.h.c.chemical_system,
]
#: Predictions of the production model, labelled ``pred_<column>`` in each row.
_W_NAMES = ["formation_energy", "formation_energy_uncertainty", "band_gap", "band_gap_uncertainty",
            "magnetization", "magnetization_uncertainty", "volume_per_atom",
            "volume_per_atom_uncertainty"]
_ROW_COLUMNS += [T.w.c[c].label(f"pred_{c}") for c in _W_NAMES]


def rows_for(conn: Connection, ids: list[int], prod: Production) -> dict[int, sa.Row]:
    """Everything the JSON of these materials needs, by material id."""
    if not ids:
        return {}
    st = Structure.__table__
    q = (
        sa.select(*_ROW_COLUMNS)
        .select_from(joined(prod).join(st, st.c.id == T.s.c.structure_id))
        .where(T.m.c.id.in_(ids))
    )
    return {int(r.id): r for r in conn.execute(q)}


def timestamp(value: Any) -> str | None:
    """RFC 3339 in UTC, whole seconds (rounded down, so ``>=`` its own value matches)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else x


def arrays(row: sa.Row) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lattice (3, 3) Å, fractional coordinates (n, 3), atomic numbers (n,)) of a row."""
    lattice = np.frombuffer(row.lattice, dtype="<f8").reshape(3, 3)
    frac = np.frombuffer(row.frac_coords, dtype="<f8").reshape(-1, 3)
    z = np.frombuffer(row.atomic_numbers, dtype="<i2").astype(int)
    return lattice, frac, z


def attributes(row: sa.Row) -> dict[str, Any]:
    """Every served attribute of one material (the caller keeps the requested ones)."""
    lattice, frac, z = arrays(row)
    elements = row.elements.split(",")
    counts = [int(c) for c in row.counts.split(",")]
    nsites = int(row.nsites)
    at_sites = [symbol(int(i)) for i in z]
    attrs: dict[str, Any] = {
        "last_modified": timestamp(row.updated_at),
        "elements": elements,
        "nelements": int(row.nelements),
        "elements_ratios": [c / nsites for c in counts],
        "chemical_formula_descriptive": row.formula,
        "chemical_formula_reduced": row.formula_reduced,
        "chemical_formula_hill": row.formula_hill,
        "chemical_formula_anonymous": row.formula_anonymous,
        "dimension_types": [1, 1, 1],
        "nperiodic_dimensions": 3,
        "lattice_vectors": lattice.tolist(),
        "space_group_it_number": None if row.spacegroup is None else int(row.spacegroup),
        "cartesian_site_positions": (frac @ lattice).tolist(),
        "nsites": nsites,
        # One species per element, in order of first appearance at the sites: then a client
        # that zips `species` with the sites (pymatgen's OptimadeRester does when the two
        # lists have equal length, i.e. one site per element) still gets the right structure.
        "species": [
            {"name": e, "chemical_symbols": [e], "concentration": [1.0]}
            for e in dict.fromkeys(at_sites)
        ],
        "species_at_sites": at_sites,
        "structure_features": [],
        "_matplat_source": row.source,
        "_matplat_source_id": row.source_id,
        "_matplat_formation_energy": _num(row.formation_energy),
        "_matplat_band_gap": _num(row.band_gap),
        "_matplat_magnetization": _num(row.magnetization),
        "_matplat_volume_per_atom": _num(row.volume_per_atom),
    }
    w = row._mapping
    for name in _W_NAMES:
        attrs[f"_matplat_predicted_{name}"] = _num(w[f"pred_{name}"])
    hull = _num(row.e_above_hull)
    attrs["_matplat_e_above_hull"] = hull
    pred, dft = attrs["_matplat_predicted_formation_energy"], attrs["_matplat_formation_energy"]
    attrs["_matplat_predicted_e_above_hull"] = (
        None if hull is None or pred is None or dft is None else hull + (pred - dft)
    )
    return attrs


def entry(row: sa.Row, fields: tuple[str, ...]) -> dict[str, Any]:
    """The JSON:API resource object of one structure with the requested attributes."""
    attrs = attributes(row)
    return {
        "id": str(row.id),
        "type": "structures",
        "attributes": {f: attrs.get(f) for f in fields if f not in ("id", "type")},
    }
