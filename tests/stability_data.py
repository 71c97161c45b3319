"""Constructed hull test data: many systems of 1-6 elements with the awkward cases named."""

from __future__ import annotations

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element
from sqlalchemy import insert, text

from matplat.db.models import DftProperty, Material, MaterialElement
from ml.stability.systems import Entries

# Elements: Li 3, O 8, Na 11, Mg 12, Al 13, Si 14, Fe 26, Ni 28, Cu 29, Zn 30
CASES = {
    # Collinear: O-Mg with MgO, Mg3O... on one line through Mg and MgO; and a point above.
    "collinear": [({12: 1, 8: 1}, -1.0), ({12: 3, 8: 1}, -0.5), ({12: 1, 8: 3}, -0.5),
                  ({12: 2, 8: 1}, -0.6666666666666666), ({12: 5, 8: 3}, -0.5)],
    # No stable compound: every Cu-Zn entry at or above 0.
    "none_stable": [({29: 1, 30: 1}, 0.05), ({29: 3, 30: 1}, 0.0), ({29: 1, 30: 2}, 0.3)],
    # Polymorphs and exact duplicates of Fe2O3, an elemental polymorph above its reference,
    # and an elemental entry below 0 (a real reference that moves the hull).
    "polymorphs": [({26: 2, 8: 3}, -1.7), ({26: 2, 8: 3}, -1.6), ({26: 4, 8: 6}, -1.7),
                   ({26: 1}, 0.12), ({26: 1}, 0.0), ({8: 1}, -0.02), ({26: 1, 8: 1}, -1.3),
                   ({26: 3, 8: 4}, -1.65)],
}


def small_systems(seed: int = 0, n: int = 300) -> tuple[Entries, list[tuple[dict[int, float], float]]]:
    """Many chemical systems of 2-7 elements with a few entries each (tiny hulls)."""
    rng = np.random.default_rng(seed)
    elements = [3, 5, 8, 9, 11, 12, 13, 14, 16, 20, 22, 26, 29, 30]
    rows: list[tuple[dict[int, float], float]] = []
    for _ in range(n):
        k = int(rng.choice([1, 2, 3, 3, 4, 4, 5, 6, 7]))
        els = rng.choice(elements, size=k, replace=False)
        comp = {int(e): float(rng.integers(1, 5)) for e in els}
        rows.append((comp, float(rng.normal(-0.4, 0.5)) if k > 1 else float(rng.normal(0, 0.05))))
    labels = np.arange(1, len(rows) + 1)
    return Entries.from_dicts(labels, [r[0] for r in rows], [r[1] for r in rows]), rows


def random_entries(seed: int = 0, n: int = 400) -> tuple[Entries, list[tuple[dict[int, float], float]]]:
    """Random entries over a few overlapping systems up to 6 elements, plus the CASES and
    some entries without an energy (NaN)."""
    rng = np.random.default_rng(seed)
    pools = [(3, 8, 26), (3, 8, 26, 28), (11, 13, 14, 8, 12), (11, 13, 14, 8, 12, 26),
             (28, 29), (3, 14)]
    rows: list[tuple[dict[int, float], float]] = []
    for _ in range(n):
        pool = pools[rng.integers(len(pools))]
        k = int(rng.integers(1, len(pool) + 1))
        els = rng.choice(pool, size=k, replace=False)
        comp = {int(e): float(rng.integers(1, 7)) for e in els}
        e = float(rng.normal(-0.6, 0.5)) * (k > 1) + (abs(rng.normal(0, 0.05)) if k == 1 else 0)
        rows.append((comp, e))
    for case in CASES.values():
        rows.extend(case)
    rows.append(({3: 1, 8: 2}, float("nan")))
    rows.append(({3: 2, 8: 1, 26: 1}, float("nan")))
    labels = np.arange(1, len(rows) + 1)
    return Entries.from_dicts(labels, [r[0] for r in rows], [r[1] for r in rows]), rows


def pymatgen_reference(rows: list[tuple[dict[int, float], float]]):
    """Per entry with an energy: (e_above_hull, {label: amount}) from a PhaseDiagram of its
    own chemical system (all entries of its subsystems, elements at 0 eV/atom)."""
    comps = [Composition({Element.from_Z(z): c for z, c in comp.items()}) for comp, _ in rows]
    systems = [frozenset(comp) for comp, _ in rows]
    out = {}
    diagrams: dict[frozenset, tuple[PhaseDiagram, list[PDEntry]]] = {}
    for i, (_comp, e) in enumerate(rows):
        if not np.isfinite(e):
            continue
        s = systems[i]
        if s not in diagrams:
            members = [j for j in range(len(rows)) if systems[j] <= s and np.isfinite(rows[j][1])]
            entries = [PDEntry(comps[j], rows[j][1] * comps[j].num_atoms, name=str(j + 1))
                       for j in members]
            refs = [PDEntry(Composition(Element.from_Z(z).symbol), 0.0, name=f"-{z}") for z in s]
            diagrams[s] = (PhaseDiagram(entries + refs), entries)
        pd, entries = diagrams[s]
        entry = next(x for x in entries if x.name == str(i + 1))
        decomp, ehull = pd.get_decomp_and_e_above_hull(entry)
        out[i + 1] = (ehull, {int(k.name): float(v) for k, v in decomp.items()})
    return out


# Database helpers (hull builds on hand-made materials)


def insert_rows(engine, rows, first_id: int = 1, source: str = "oqmd") -> list[int]:  # type: ignore[no-untyped-def]
    """Materials with elements and a formation energy (NaN: no DFT row value)."""
    mats, els, dft = [], [], []
    ids = []
    for i, (comp, e) in enumerate(rows):
        mid = first_id + i
        ids.append(mid)
        c = Composition({Element.from_Z(z): n for z, n in comp.items()})
        mats.append({"id": mid, "source": source, "source_id": f"{source}-{mid}",
                     "formula": c.reduced_formula, "composition": c.formula,
                     "natoms": int(c.num_atoms), "content_hash": f"{mid:064x}"})
        els += [{"material_id": mid, "element": Element.from_Z(z).symbol, "count": int(n)}
                for z, n in comp.items()]
        dft.append({"material_id": mid, "selection_rule": "cgnn",
                    "formation_energy": None if not np.isfinite(e) else float(e)})
    with engine.begin() as conn:
        conn.execute(insert(Material), mats)
        conn.execute(insert(MaterialElement), els)
        conn.execute(insert(DftProperty), dft)
    return ids


def build(engine, **kw):  # type: ignore[no-untyped-def]
    from workers.hull import submit_build
    from workers.jobs import run_inprocess

    plan, job_id = submit_build(engine, **kw)
    if job_id is None:
        return plan, None
    job = run_inprocess(engine, job_id)
    assert job.status == "succeeded", job.error
    return plan, job


def hull_rows(engine) -> dict[int, tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(text(
            "SELECT material_id, e_above_hull, is_stable, chemical_system, hull_build_id "
            "FROM material_hulls"))}
