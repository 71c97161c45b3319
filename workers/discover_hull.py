"""The DFT convex hull a discovery run scores its candidates against.

The hulls are the stability feature's (``platform hull build``; :mod:`ml.stability.hull`):
the reference is the source with the most hull results, as for every predicted hull distance
of a material without DFT values (``workers.stability_metrics``), so a candidate's distance
here equals the ``e_above_hull`` prediction a leaderboard refresh derives for it. A
candidate's hull is built from the reference materials of its chemical system and every
subsystem (elements at 0 eV/atom) and evaluates all the candidates of that system in one
matrix product; the reference data is read once per process and hull build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from matplat.errors import InputError


@dataclass
class SystemHull:
    """The DFT hull of one chemical system.

    Attributes:
        elements: (k,) atomic numbers, ascending (the column order of fractions).
        compounds: reference materials of two or more elements in the system.
    """

    elements: tuple[int, ...]
    compounds: int
    hull: Any
    names: list[str]

    def distances(self, fractions: np.ndarray, energies: np.ndarray
                  ) -> tuple[np.ndarray, list[str]]:
        """Hull distance (eV/atom, negative below the hull) and decomposition of each point.

        Args:
            fractions: (n, k) atom fractions in the order of ``elements``.
            energies: (n,) formation energies per atom (NaN: NaN and no decomposition).

        Returns:
            (n,) distances and decompositions written ``"LiF:0.5 FeF2:0.5"`` (the hull
            phases' formulas and atom fractions, largest first).
        """
        from ml.stability.hull import evaluate

        out = np.full(len(energies), np.nan)
        texts = [""] * len(energies)
        ok = np.flatnonzero(np.isfinite(energies))
        if not len(ok):
            return out, texts
        res = evaluate(self.hull, fractions[ok], energies[ok])
        out[ok] = res.e_above_hull
        labels = self.hull.labels
        for row, i in enumerate(ok):
            parts = [(self.names[labels[p]] if labels[p] >= 0 else _symbol(-labels[p]), a)
                     for p, a in zip(res.products[row], res.amounts[row], strict=True) if p >= 0]
            texts[i] = " ".join(f"{name}:{a:.4g}" for name, a in parts)
        return out, texts


def _symbol(z: int) -> str:
    from pymatgen.core.periodic_table import Element

    return Element.from_Z(int(z)).symbol


def reference_source(engine: Engine) -> tuple[str, int]:
    """(source, latest hull build id) of the hulls candidates are measured against."""
    with engine.connect() as conn:
        source = conn.execute(text(
            "SELECT source FROM material_hulls GROUP BY source ORDER BY COUNT(*) DESC, source"
        )).scalar()
        if source is None:
            raise InputError("no DFT hull has been built: run `platform hull build` first")
        build = conn.execute(text("SELECT MAX(id) FROM hull_builds WHERE source = :s"),
                             {"s": source}).scalar()
    return str(source), int(build or 0)


def fractions_of(elements: Sequence[int], z: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Atom fractions of one composition (``z``, ``counts``) in the order of ``elements``."""
    col = {e: i for i, e in enumerate(elements)}
    out = np.zeros(len(elements))
    for a, n in zip(z.tolist(), counts.tolist(), strict=True):
        out[col[a]] += n
    return out / out.sum()


_HULLS: dict[tuple[str, str, int, tuple[int, ...]], SystemHull | None] = {}


def load_hull(engine: Engine, elements: Sequence[int], ref: tuple[str, int] | None = None
              ) -> SystemHull | None:
    """The DFT hull of the system ``elements`` (atomic numbers), or ``None`` when no compound
    of the reference source lies in it or its subsystems (the hull would be the bare
    elements). Raises :class:`InputError` when no hull has been built at all.

    ``ref``: :func:`reference_source` when the caller has it (it scans ``material_hulls``).
    Hulls are cached per process and hull build (a worker's tasks share them).
    """
    source, build = ref or reference_source(engine)
    system = tuple(sorted(int(z) for z in elements))
    key = (str(engine.url), source, build, system)
    if key not in _HULLS:
        if len(_HULLS) > 4096:
            _HULLS.clear()
        _HULLS[key] = _build(engine, source, build, system)
    return _HULLS[key]


def _build(engine: Engine, source: str, build: int, system: tuple[int, ...]
           ) -> SystemHull | None:
    from ml.stability.hull import build_hull
    from ml.stability.systems import subsystems
    from workers.hull_data import cached_source

    data = cached_source(engine, source, build)
    index = data.index
    sysidx = {s: i for i, s in enumerate(index.systems)}
    subs = subsystems(index.systems, sysidx, system)
    pool = np.concatenate([index.members[j] for j in subs]) if subs else np.zeros(0, np.int64)
    entries = data.entries
    pool = pool[np.isfinite(entries.energies[pool])]
    sizes = np.diff(entries.indptr)[pool]
    pool = pool[sizes > 0]
    compounds = int((np.diff(entries.indptr)[pool] >= 2).sum())
    if compounds == 0:
        return None
    frac = np.array([fractions_of(system, entries.z[entries.indptr[r]:entries.indptr[r + 1]],
                                  entries.amount[entries.indptr[r]:entries.indptr[r + 1]])
                     for r in pool.tolist()]).reshape(-1, len(system))
    hull = build_hull(np.array(system), frac, entries.energies[pool], np.arange(len(pool)))
    names = [str(data.formulas[r]) for r in pool.tolist()]
    return SystemHull(system, compounds, hull, names)
