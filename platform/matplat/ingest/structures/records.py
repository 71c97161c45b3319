"""One parsed crystal structure, its checks, and conversions from pymatgen and ASE objects.

Every reader (:mod:`matplat.ingest.structures.readers`) turns what pymatgen or ASE gives it
into a :class:`Parsed` record of plain numpy arrays, so that everything after parsing (the
checks, formulas, hashes, the bulk writers) is the same for every format and for Python
objects handed to the API. A structure the platform cannot use is a record with ``reject``
set to the reason, reported one by one with its file and block.

Checks (:func:`check`), in order: at least one atom; finite numbers; a non-singular
(|det| ≥ 1e-6 Å³) and right-handed (det > 0) cell, since graphs and volumes assume the
lattice rows are a right-handed basis; every element in the periodic table (1 ≤ Z ≤ 118);
no two atoms (or an atom and its own periodic image) closer than 0.5 Å, which no real
crystal has and which usually means a site was duplicated by a symmetry expansion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MIN_DISTANCE",
    "PROPERTY_NAMES",
    "Parsed",
    "Rejected",
    "check",
    "from_ase",
    "from_pymatgen",
    "numeric_properties",
]

MIN_DISTANCE = 0.5  # Å
_SINGULAR = 1e-6  # Å³, as the OQMD ingest
#: DFT values a file (or --properties) may carry, as in the view material_properties (the
#: volume per atom is the stored cell's, never an input).
PROPERTY_NAMES = ("formation_energy", "band_gap", "magnetization")
#: Other spellings found in pymatgen entries' ``data`` and ASE key-value pairs.
_ALIASES = {
    "formation_energy_per_atom": "formation_energy",
    "e_form": "formation_energy",
    "delta_e": "formation_energy",
    "gap": "band_gap",
}


class Rejected(ValueError):
    """A structure that cannot become a material; the message is the reason."""


@dataclass
class Parsed:
    """A structure read from a file (or given as an object), or the reason it was rejected.

    ``lattice``: (3, 3) float64, rows are lattice vectors in Å; ``frac``: (n, 3) float64
    fractional coordinates; ``numbers``: (n,) int16 atomic numbers; ``props``: DFT values
    found in the file (names of :data:`PROPERTY_NAMES`).
    """

    name: str
    file: str
    block: str | None
    fmt: str
    lattice: np.ndarray | None = None
    frac: np.ndarray | None = None
    numbers: np.ndarray | None = None
    props: dict[str, float] = field(default_factory=dict)
    reject: str | None = None
    spacegroup: int = -1

    @property
    def ok(self) -> bool:
        return self.reject is None


def numeric_properties(mapping: dict[str, Any] | None) -> dict[str, float]:
    """The DFT values among a dict of per-structure metadata (numbers only, known names)."""
    out: dict[str, float] = {}
    for key, value in (mapping or {}).items():
        name = _ALIASES.get(str(key), str(key))
        if name not in PROPERTY_NAMES or isinstance(value, bool):
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(v):
            out[name] = v
    return out


def from_pymatgen(structure: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lattice, frac, numbers) of an ordered pymatgen ``Structure``, or :class:`Rejected`."""
    numbers = np.empty(len(structure), dtype=np.int16)
    if structure.is_ordered:  # one species of occupancy 1 per site: no per-site look needed
        numbers[:] = [getattr(sp, "Z", 0) for sp in structure.species]
        sites = enumerate(structure) if ((numbers < 1) | (numbers > 118)).any() else ()
    else:
        sites = enumerate(structure)
    for i, site in sites:
        species = site.species
        if len(species) != 1:
            raise Rejected(
                f"partial occupancy: site {i} holds {species.formula} (disordered structures "
                f"cannot be graphed)"
            )
        sp, occu = next(iter(species.items()))
        z = getattr(sp, "Z", None)
        if z is None or not isinstance(z, int | np.integer) or not 1 <= int(z) <= 118:
            raise Rejected(f"unknown element {str(sp)!r} at site {i}")
        if abs(occu - 1.0) > 1e-6:
            raise Rejected(f"vacancy: site {i} ({sp}) has occupancy {occu:g}")
        numbers[i] = int(z)
    lattice = np.array(structure.lattice.matrix, dtype=np.float64)
    frac = np.array(structure.frac_coords, dtype=np.float64).reshape(-1, 3)
    return lattice, frac, numbers


def from_ase(atoms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lattice, frac, numbers) of an ASE ``Atoms``, or :class:`Rejected`."""
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    bad = np.flatnonzero((numbers < 1) | (numbers > 118))
    if len(bad):
        symbol = atoms.get_chemical_symbols()[int(bad[0])]
        raise Rejected(f"unknown element {symbol!r} at site {int(bad[0])}")
    occ = atoms.info.get("occupancy") if hasattr(atoms, "info") else None
    if occ:
        raise Rejected("partial occupancy: the structure carries site occupancies")
    lattice = np.array(atoms.cell[:], dtype=np.float64).reshape(3, 3)
    if len(numbers) == 0:
        return lattice, np.zeros((0, 3)), numbers.astype(np.int16)
    det = float(np.linalg.det(lattice))
    if abs(det) < _SINGULAR:
        raise Rejected(f"singular cell (|det| = {abs(det):.3g} Å³; no lattice given?)")
    frac = np.linalg.solve(lattice.T, np.asarray(atoms.positions, dtype=np.float64).T).T
    return lattice, frac, numbers.astype(np.int16)


def check(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray) -> str | None:
    """Why a structure cannot become a material (see the module docstring), or None."""
    n = len(numbers)
    if n < 1:
        return "no atoms"
    if not (np.isfinite(lattice).all() and np.isfinite(frac).all()):
        return "non-finite lattice or coordinates"
    det = float(np.linalg.det(lattice))
    if abs(det) < _SINGULAR:
        return f"singular cell (|det| = {abs(det):.3g} Å³)"
    if det < 0:
        return "left-handed cell (negative determinant of the lattice rows)"
    if ((numbers < 1) | (numbers > 118)).any():
        return f"unknown element Z={int(numbers[(numbers < 1) | (numbers > 118)][0])}"
    pair = _closest_pair(lattice, frac)
    if pair is not None:
        i, j, d = pair
        what = f"site {i} and its periodic image" if i == j else f"sites {i} and {j}"
        return f"overlapping atoms: {what} are {d:.3f} Å apart (< {MIN_DISTANCE} Å)"
    return None


_IMAGES = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)],
                   dtype=np.float64)


def _closest_pair(lattice: np.ndarray, frac: np.ndarray) -> tuple[int, int, float] | None:
    """The first pair (i ≤ j) closer than MIN_DISTANCE (i == j: an atom and its own image).

    Two atoms closer than r differ by less than r / h_k in fractional coordinate k, where
    h_k is the cell's height along k. When every height exceeds 2 r, wrapped differences
    (in [-0.5, 0.5]) can only be that small for the image nearest in fractional terms, so
    only pairs passing that filter need a Cartesian distance. Thinner cells take the exact
    search over the 27 neighbouring images.
    """
    f = frac - np.floor(frac)
    n = len(f)
    volume = abs(float(np.linalg.det(lattice)))
    cross = np.cross(lattice[[1, 2, 0]], lattice[[2, 0, 1]])
    heights = volume / np.linalg.norm(cross, axis=1)
    r2 = MIN_DISTANCE * MIN_DISTANCE
    if heights.min() > 2 * MIN_DISTANCE:
        d = f[:, None, :] - f[None, :, :]
        d -= np.round(d)
        near = (np.abs(d) < MIN_DISTANCE / heights).all(axis=2)
        near[np.arange(n), np.arange(n)] = False
        i, j = np.nonzero(np.triu(near))
        if len(i):
            cart = d[i, j] @ lattice
            dist2 = (cart * cart).sum(axis=1)
            hit = np.flatnonzero(dist2 < r2)
            if len(hit):
                k = hit[0]
                return int(i[k]), int(j[k]), float(np.sqrt(dist2[k]))
        return None
    step = max(1, 20_000 // max(n, 1))
    shifts = _IMAGES @ lattice  # (27, 3)
    cart = f @ lattice
    for a in range(0, n, step):
        d = cart[a : a + step, None, None, :] - cart[None, :, None, :] + shifts[None, None]
        dist = np.sqrt((d * d).sum(-1))  # (k, n, 27)
        rows = np.arange(a, min(n, a + step))
        dist[rows - a, rows, 13] = np.inf  # an atom and itself (image 0, 0, 0)
        hit = np.argwhere(dist.min(axis=2) < MIN_DISTANCE)
        if len(hit):
            i, j = int(hit[0, 0]) + a, int(hit[0, 1])
            return min(i, j), max(i, j), float(dist[i - a, j].min())
    return None
