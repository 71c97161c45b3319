"""OPTIMADE formulas of whole-number compositions and the refresh of ``material_summaries``.

The refresh is incremental: only materials without a summary or whose ``content_hash``
changed since (a re-ingest) are recomputed, in chunks, so a rerun over an unchanged database
reads one anti-join and writes nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import Engine, delete, func, or_, select

from matplat.db.bulk import insert_columns
from matplat.db.models import Material, MaterialElement, MaterialSummary, Structure

CHUNK = 20_000


def _amount(n: int) -> str:
    return "" if n == 1 else str(n)


_UPPER = [chr(ord("A") + i) for i in range(26)]
#: OPTIMADE's anonymous symbols in order: A, B, …, Z, Aa, Ba, …, Za, Ab, … (spec 4.2.7).
_LABELS = tuple(u + low for low in ["", *(chr(ord("a") + i) for i in range(26))] for u in _UPPER)


def anonymous_labels(n: int) -> list[str]:
    """The first ``n`` anonymous element symbols."""
    if n > len(_LABELS):
        raise ValueError(f"more than {len(_LABELS)} elements in one formula")
    return list(_LABELS[:n])


@dataclass(frozen=True)
class Formulas:
    """The OPTIMADE formulas of one composition."""

    reduced: str
    anonymous: str
    hill: str


@functools.lru_cache(maxsize=200_000)
def _formulas_cached(pairs: tuple[tuple[str, int], ...]) -> Formulas:
    return formulas(pairs)


def formulas(pairs: Sequence[tuple[str, int]]) -> Formulas:
    """Reduced (alphabetical), anonymous (largest amount first) and Hill formulas.

    ``pairs``: (element symbol, count per cell), counts ≥ 1, any order. Amounts are divided
    by their gcd and an amount of 1 is omitted, as the specification requires.
    """
    g = math.gcd(*(n for _, n in pairs))
    red = sorted((e, n // g) for e, n in pairs)
    reduced = "".join(f"{e}{_amount(n)}" for e, n in red)
    amounts = sorted((n for _, n in red), reverse=True)
    anonymous = "".join(
        f"{s}{_amount(n)}" for s, n in zip(anonymous_labels(len(amounts)), amounts, strict=True)
    )
    byel = dict(red)
    if "C" in byel:  # Hill: carbon, then hydrogen, then the rest alphabetically
        order = ["C"] + (["H"] if "H" in byel else []) + [e for e, _ in red if e not in ("C", "H")]
    else:
        order = [e for e, _ in red]
    hill = "".join(f"{e}{_amount(byel[e])}" for e in order)
    return Formulas(reduced, anonymous, hill)


def _stale_ids(engine: Engine) -> list[int]:
    """Materials with a structure whose summary is missing or out of date."""
    s = MaterialSummary.__table__
    m = Material.__table__
    has_structure = select(Structure.material_id).where(Structure.material_id == m.c.id).exists()
    q = (
        select(m.c.id)
        .select_from(m.outerjoin(s, s.c.material_id == m.c.id))
        .where(or_(s.c.material_id.is_(None), s.c.content_hash != m.c.content_hash))
        .where(has_structure)
        .order_by(m.c.id)
    )
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(q)]


def _rows(conn, ids: list[int]) -> list[dict]:  # type: ignore[no-untyped-def]
    lo, hi = ids[0], ids[-1]
    st = Structure.__table__
    first = (
        select(st.c.material_id, func.min(st.c.id).label("sid"))
        .where(st.c.material_id.between(lo, hi))
        .group_by(st.c.material_id)
        .subquery()
    )
    structs = {
        int(r.material_id): (int(r.id), int(r.natoms))
        for r in conn.execute(
            select(st.c.material_id, st.c.id, st.c.natoms).join(first, first.c.sid == st.c.id)
        )
    }
    hashes = dict(
        conn.execute(
            select(Material.id, Material.content_hash).where(Material.id.between(lo, hi))
        ).all()
    )
    me = MaterialElement.__table__
    elements = conn.execute(
        select(me.c.material_id, me.c.element, me.c.count)
        .where(me.c.material_id.between(lo, hi))
        .order_by(me.c.material_id, me.c.element)
    ).all()
    wanted = set(ids)
    out: list[dict] = []
    for mid, group in groupby(elements, key=lambda r: int(r[0])):
        if mid not in wanted or mid not in structs:
            continue
        # sorted here, not by the database's collation: HAS ONLY compares these strings
        pairs = sorted((str(e), int(n)) for _, e, n in group if int(n) > 0)
        if not pairs:
            continue
        f = _formulas_cached(tuple(pairs))  # compositions repeat across materials
        sid, natoms = structs[mid]
        out.append(
            {
                "material_id": mid,
                "structure_id": sid,
                "content_hash": hashes[mid],
                "nelements": len(pairs),
                "nsites": natoms,
                "elements": ",".join(e for e, _ in pairs),
                "counts": ",".join(str(n) for _, n in pairs),
                "formula_reduced": f.reduced,
                "formula_anonymous": f.anonymous,
                "formula_hill": f.hill,
            }
        )
    return out


def refresh(engine: Engine, progress: Callable[[int, int], None] | None = None) -> int:
    """Bring ``material_summaries`` up to date; returns the number of materials (re)computed.

    Each chunk is its own transaction (delete the stale rows, insert the new ones), so an
    interrupted refresh keeps what it finished and a rerun continues.
    """
    ids = _stale_ids(engine)
    done = 0
    table = MaterialSummary.__table__
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with engine.begin() as conn:
            rows = _rows(conn, chunk)
            conn.execute(delete(table).where(table.c.material_id.in_(chunk)))
            if rows:  # the engine's bulk path (COPY on PostgreSQL)
                insert_columns(conn, table.name, {k: [r[k] for r in rows] for k in rows[0]})
        done += len(chunk)
        if progress is not None:
            progress(done, len(ids))
    if ids and engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # fresh statistics, or the planner guesses 100 rows
            conn.exec_driver_sql("ANALYZE material_summaries")
    return len(ids)
