"""The DFT convex hull a discovery run scores its candidates against.

One small interface, so that the run does not care how hulls are made: :func:`load_hull`
reads the DFT formation energies of every material of a chemical system and its subsystems
(elements at 0 eV/atom, the reference of formation energies), and :meth:`Hull.distances`
gives the hull distance and decomposition of new (composition, energy) points, negative
below the known hull. Candidates of other discovery runs are never part of a hull: they
have no DFT values.

The hull is pymatgen's ``PhaseDiagram`` (built once per system and run task, ~25–90 ms;
``get_decomp_and_e_above_hull(allow_negative=True)`` ~0.1–0.3 ms a point).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, text

from matplat.db.models.discovery import CANDIDATE_PREFIX


@dataclass
class Hull:
    """The DFT hull of one chemical system.

    Attributes:
        elements: the system's element symbols, sorted.
        compounds: materials of two or more elements with a DFT formation energy in it.
    """

    elements: tuple[str, ...]
    compounds: int
    _diagram: Any

    def distances(self, compositions: Sequence[dict[str, float]], energies: np.ndarray
                  ) -> tuple[np.ndarray, list[str]]:
        """Hull distance (eV/atom) and decomposition of each point.

        Args:
            compositions: element symbol -> amount, one mapping per point.
            energies: (N,) formation energies per atom (NaN gives NaN and no decomposition).

        Returns:
            (N,) distances, negative below the hull, and decompositions written as
            ``"LiF:0.5 FeF2:0.5"`` (reduced formulas and their atom fractions).
        """
        from pymatgen.analysis.phase_diagram import PDEntry
        from pymatgen.core import Composition

        out = np.full(len(energies), np.nan)
        decomps: list[str] = []
        for i, (comp, e) in enumerate(zip(compositions, energies, strict=True)):
            if not np.isfinite(e):
                decomps.append("")
                continue
            c = Composition(comp)
            entry = PDEntry(c, float(e) * c.num_atoms)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                decomp, dist = self._diagram.get_decomp_and_e_above_hull(
                    entry, allow_negative=True, check_stable=False)
            out[i] = dist
            parts = sorted(((d.composition.reduced_formula, float(f)) for d, f in decomp.items()),
                           key=lambda t: (-t[1], t[0]))
            decomps.append(" ".join(f"{name}:{frac:.4g}" for name, frac in parts))
        return out, decomps


def dft_points(engine: Engine, elements: Sequence[str]) -> list[tuple[dict[str, int], float]]:
    """(composition, formation energy per atom) of every material with a DFT formation energy
    whose elements all lie in ``elements`` (candidates excluded)."""
    stmt = text(
        "SELECT e.material_id, e.element, e.count, d.formation_energy FROM material_elements e "
        "JOIN dft_properties d ON d.material_id = e.material_id "
        "JOIN materials m ON m.id = e.material_id "
        "WHERE d.formation_energy IS NOT NULL AND m.source NOT LIKE :cand "
        "AND NOT EXISTS (SELECT 1 FROM material_elements o WHERE o.material_id = e.material_id "
        "AND o.element NOT IN :els) ORDER BY e.material_id"
    ).bindparams(bindparam("els", expanding=True))
    points: dict[int, tuple[dict[str, int], float]] = {}
    with engine.connect() as conn:
        for mid, el, count, energy in conn.execute(
                stmt, {"els": list(elements), "cand": CANDIDATE_PREFIX + "%"}):
            points.setdefault(int(mid), ({}, float(energy)))[0][str(el)] = int(count)
    return list(points.values())


def load_hull(engine: Engine, elements: Sequence[str]) -> Hull | None:
    """The DFT hull of a chemical system, or ``None`` when no compound of it (or of its
    subsystems) has a DFT formation energy: the hull would be the bare elements."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    points = dft_points(engine, elements)
    compounds = sum(1 for comp, _ in points if len(comp) >= 2)
    if compounds == 0:
        return None
    entries = [PDEntry(Composition({el: 1}), 0.0) for el in elements]
    for comp, energy in points:
        c = Composition(comp)
        entries.append(PDEntry(c, energy * c.num_atoms))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diagram = PhaseDiagram(entries)
    return Hull(tuple(sorted(elements)), compounds, diagram)
