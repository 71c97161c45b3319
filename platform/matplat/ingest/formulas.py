"""Formulas of whole-number compositions, exactly as pymatgen writes them, without pymatgen.

The ingest needs, per material, pymatgen's ``Composition.reduced_formula`` ("LiFePO4",
"Fe2(SO4)3", "O2"), ``Composition.formula`` of the cell ("Li4 Fe4 P4 O16") and the atomic
volume per atom of the reduced formula. Building a ``Composition`` costs ~200 µs; OQMD has
hundreds of thousands of distinct compositions, so the ingest spent more time there than in
parsing the atoms table. This module reimplements the three for integer amounts (a crystal
cell always has them), following pymatgen's rules step by step:

- elements are ordered by Pauling electronegativity, elements without one last, ties by
  symbol (``_symbol_sort_order``);
- the reduced formula divides by the gcd of the amounts; with three or more elements whose
  two most electronegative differ by less than 1.65, those two form a polyanion written
  ``(PO4)3`` when their own gcd is not 1 (``reduce_formula``); amounts of 1 are omitted;
- peroxides and diatomic elements keep their pair ("O" → "O2", "LiO" → "Li2O2",
  ``Composition.special_formulas``).

Only the element table (symbols, electronegativities) is read from pymatgen, once. A test
compares every result with pymatgen's on many compositions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["Formulas", "atomic_volume", "element_volumes"]

_POLYANION_DX = 1.65  # pymatgen: X(last) - X(second last) below this makes a polyanion
_SPECIAL = {
    "LiO": "Li2O2", "NaO": "Na2O2", "KO": "K2O2", "HO": "H2O2", "CsO": "Cs2O2",
    "RbO": "Rb2O2", "O": "O2", "N": "N2", "F": "F2", "Cl": "Cl2", "H": "H2",
}  # fmt: skip

_VOLUMES: dict[int, float] | None = None


def element_volumes() -> dict[int, float]:
    """4/3·π·r³ per element with a radius, Z 1–94 (the elements the reference covers).

    r = pymatgen ``atomic_radius_calculated``, else ``atomic_radius``.
    """
    global _VOLUMES
    if _VOLUMES is None:
        from pymatgen.core.periodic_table import Element

        fpi = 4.0 * np.pi / 3.0
        vols: dict[int, float] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns for every missing radius
            for z in range(1, 95):
                e = Element.from_Z(z)
                r = e.atomic_radius_calculated
                if r is None:
                    r = e.atomic_radius
                if r is not None:
                    vols[z] = fpi * float(r) ** 3
        _VOLUMES = vols
    return _VOLUMES


def atomic_volume(reduced: dict[int, float]) -> float:
    """Σ 4/3·π·r³·n / Σ n over a reduced formula {Z: n}; NaN if a radius is unknown.

    The sum runs in the dict's order (the reduced formula's element order), which fixes the
    last bit of the result.
    """
    vols = element_volumes()
    if any(z not in vols for z in reduced):
        return math.nan
    terms = [vols[z] * a for z, a in reduced.items()]
    # numpy adds fewer than 8 values one after another, as sum() does, and pairwise beyond.
    total = sum(terms) if len(terms) < 8 else float(np.sum(terms))
    return total / sum(reduced.values())


def _amount(x: float) -> str:
    """pymatgen ``formula_double_format`` of a whole number: "" for 1, else the integer."""
    return "" if x == 1 else str(round(x))


class Formulas:
    """(reduced formula, cell formula, atomic volume per atom) of compositions, cached.

    A composition is a tuple of ``(Z, count)`` pairs with distinct Z and counts ≥ 1, in
    any order.
    """

    def __init__(self) -> None:
        from pymatgen.core.periodic_table import Element

        self._symbol: list[str] = [""]
        self._x: list[float] = [math.nan]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No Pauling electronegativity for He"
            for z in range(1, 119):
                e = Element.from_Z(z)
                self._symbol.append(e.symbol)
                self._x.append(float(e.X))
        # pymatgen's sort key: electronegativity (NaN sorts last), then symbol
        self._key = [
            (math.inf if math.isnan(x) else x, s)
            for s, x in zip(self._symbol, self._x, strict=True)
        ]
        self._cache: dict[tuple[tuple[int, int], ...], tuple[str, str, float]] = {}

    def get(self, composition: tuple[tuple[int, int], ...]) -> tuple[str, str, float]:
        hit = self._cache.get(composition)
        if hit is None:
            hit = self._cache[composition] = self._compute(composition)
        return hit

    def many(self, compositions: Sequence[tuple[tuple[int, int], ...]]) -> list:
        get = self.get
        return [get(c) for c in compositions]

    def _compute(self, composition: tuple[tuple[int, int], ...]) -> tuple[str, str, float]:
        key = self._key
        pairs = sorted(composition, key=lambda p: key[p[0]])
        sym = self._symbol
        cell = " ".join(f"{sym[z]}{n}" for z, n in pairs)
        factor = math.gcd(*(n for _, n in pairs))
        main = pairs
        poly = ""
        if len(pairs) >= 3 and self._x[pairs[-1][0]] - self._x[pairs[-2][0]] < _POLYANION_DX:
            (za, na), (zb, nb) = pairs[-2], pairs[-1]
            pf = math.gcd(na // factor, nb // factor)
            if pf != 1:
                poly = (
                    f"({sym[za]}{_amount(na / factor / pf)}{sym[zb]}{_amount(nb / factor / pf)})"
                    f"{pf}"
                )
                main = pairs[:-2]
        reduced = "".join(f"{sym[z]}{_amount(n * 1.0 / factor)}" for z, n in main) + poly
        scale = 1.0
        if reduced in _SPECIAL:
            reduced = _SPECIAL[reduced]
            scale = 2.0
        # The reduced formula's amounts, in its element order (as Composition(reduced) has them).
        amounts = {z: n * 1.0 / factor * scale for z, n in pairs}
        return reduced, cell, atomic_volume(amounts)
