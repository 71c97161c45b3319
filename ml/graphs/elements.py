"""Element tables: atomic radii, symbols and the 89-species OQMD node table.

The radii are frozen here (copied from pymatgen 2026.10.24: ``Element.atomic_radius_calculated``,
else ``Element.atomic_radius``) so that a graph recipe does not change when pymatgen does;
``tests/ml/test_graphs.py`` checks them against the installed pymatgen and the reference data.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.graphs.errors import GraphBuildError

MAX_Z = 118

SYMBOLS: tuple[str, ...] = (
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
    "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga",
    "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd",
    "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm",
    "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os",
    "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa",
    "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg",
    "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)  # fmt: skip

# Radius in Å by Z (index Z - 1); None where pymatgen has neither radius.
_RADII: tuple[float | None, ...] = (
    0.53, 0.31, 1.67, 1.12, 0.87, 0.67, 0.56, 0.48, 0.42, 0.38, 1.9, 1.45, 1.18, 1.11, 0.98,
    0.88, 0.79, 0.71, 2.43, 1.94, 1.84, 1.76, 1.71, 1.66, 1.61, 1.56, 1.52, 1.49, 1.45, 1.42,
    1.36, 1.25, 1.14, 1.03, 0.94, 0.88, 2.65, 2.19, 2.12, 2.06, 1.98, 1.9, 1.83, 1.78, 1.73,
    1.69, 1.65, 1.61, 1.56, 1.45, 1.33, 1.23, 1.15, 1.08, 2.98, 2.53, 1.95, 1.85, 2.47, 2.06,
    2.05, 2.38, 2.31, 2.33, 2.25, 2.28, 1.75, 2.26, 2.22, 2.22, 2.17, 2.08, 2.0, 1.93, 1.88,
    1.85, 1.8, 1.77, 1.74, 1.71, 1.56, 1.54, 1.43, 1.35, None, 1.2, None, 2.15, 1.95, 1.8,
    1.8, 1.75, 1.75, 1.75, 1.75,
) + (None,) * (MAX_Z - 95)  # fmt: skip


def _table(values: list[float]) -> NDArray[np.float64]:
    out = np.array(values, dtype=np.float64)
    out.setflags(write=False)
    return out


# Indexed by Z (entry 0 unused); NaN where no radius exists.
RADII = _table([np.nan] + [np.nan if r is None else r for r in _RADII])
# r**3 with Python's float power, as the reference computes it (bit-for-bit cutoff factor).
RADII_CUBED = _table([np.nan] + [np.nan if r is None else r**3 for r in _RADII])

OQMD_SPECIES: NDArray[np.int16] = np.array([*range(1, 84), *range(89, 95)], dtype=np.int16)
"""(89,) the atomic numbers of the OQMD v1.2 one-hot node table (Z 1-83 and 89-94), ascending."""
OQMD_SPECIES.setflags(write=False)

# Indexed by Z: the OQMD species index, -1 outside the table.
SPECIES_LOOKUP = np.full(MAX_Z + 1, -1, dtype=np.int16)
SPECIES_LOOKUP[OQMD_SPECIES] = np.arange(len(OQMD_SPECIES), dtype=np.int16)
SPECIES_LOOKUP.setflags(write=False)


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (1..118)."""
    if not 1 <= int(z) <= MAX_Z:
        raise GraphBuildError(f"atomic number {z} is out of range 1..{MAX_Z}")
    return SYMBOLS[int(z) - 1]


def check_atomic_numbers(atomic_numbers: ArrayLike) -> NDArray[np.int64]:
    """Return ``atomic_numbers`` as an (n,) int64 array, or raise GraphBuildError.

    Accepts integer arrays and float arrays holding whole numbers; every Z must be in 1..118.
    """
    z = np.asarray(atomic_numbers)
    if z.ndim != 1:
        raise GraphBuildError(f"atomic_numbers must be 1-D, got shape {z.shape}")
    if z.dtype.kind not in "iu" and (
        z.dtype.kind != "f" or not np.all(np.isfinite(z)) or np.any(z != np.round(z))
    ):
        raise GraphBuildError(f"atomic_numbers must be integers, got dtype {z.dtype}")
    z = z.astype(np.int64, copy=False)
    values = z.tolist()
    if values and (min(values) < 1 or max(values) > MAX_Z):
        bad = next(v for v in values if not 1 <= v <= MAX_Z)
        raise GraphBuildError(f"atomic number {bad} is out of range 1..{MAX_Z}")
    return z


def species_index(z: ArrayLike, *, strict: bool = True) -> int | NDArray[np.int16]:
    """Index of Z in :data:`OQMD_SPECIES` (0..88): an int for a scalar, int16 array otherwise.

    Z 84, 86, 88 (Po, Rn, Ra) and Z > 94 are not in the table: with ``strict`` (default) that
    raises ``ValueError`` naming the element; with ``strict=False`` they map to -1.
    """
    arr = check_atomic_numbers(np.atleast_1d(z))
    idx = SPECIES_LOOKUP[arr]
    if strict and np.any(idx < 0):
        bad = int(arr[idx < 0][0])
        raise ValueError(
            f"{SYMBOLS[bad - 1]} (Z={bad}) is not in the 89-species OQMD table (Z 1-83 and 89-94)"
        )
    if np.ndim(z) == 0:
        return int(idx[0])
    return idx


def atomic_radii(atomic_numbers: ArrayLike) -> NDArray[np.float64]:
    """(n,) radius in Å of each atom: pymatgen ``atomic_radius_calculated``, else ``atomic_radius``.

    Raises GraphBuildError naming the element for At (85), Fr (87) and Z >= 96, which have
    neither radius: no fallback is invented, so no graph silently depends on a made-up value.
    """
    z = check_atomic_numbers(atomic_numbers)
    r = RADII[z]
    missing = np.isnan(r)
    if np.any(missing):
        bad = int(z[missing][0])
        raise GraphBuildError(
            f"no atomic radius for {SYMBOLS[bad - 1]} (Z={bad}): pymatgen has neither "
            "atomic_radius_calculated nor atomic_radius, so the cutoff is undefined"
        )
    return r
