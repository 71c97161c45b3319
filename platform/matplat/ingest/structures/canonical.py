"""The stored form of a file structure, and its content hash (both survive every writer).

A structure read from a file is stored in a standard form so that exporting it (CIF,
POSCAR, extended XYZ, JSON) and ingesting the file again gives the very same numbers and so
the same content hash:

- the cell as pymatgen's ``Lattice.from_parameters`` builds it (a along x, b in the xy
  plane) from the lattice parameters rounded to 1e-6 Å and 1e-5°; CIF stores only the
  parameters, so no other orientation survives a CIF round trip. Crystal graphs and every
  stored property depend on distances only, so the rotation changes none of them.
- fractional coordinates wrapped into [0, 1) and rounded to 1e-7 (1e-6 Å in a 10 Å cell).
  CIF is written with 8 decimals and POSCAR with 16 digits, so a stored value comes back
  exactly; extended XYZ (Cartesian, 8 decimals) comes back within 1e-8 and rounds back.
- the order of the sites as in the file (graphs are built in that order).

The content hash is sha256 over the sorted sites (Z, integer coordinates on the 1e-7
grid), the integer lattice parameters on their grids and the DFT values (``%.10g``): site
order does not enter it, because CIF readers group sites by element.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["FRAC_GRID", "canonical_cell", "content_hash", "lattice_parameters"]

FRAC_GRID = 10**7
_LENGTH_GRID = 10**6
_ANGLE_GRID = 10**5
_PREFIX = b"matplat.structure-file.v1\0"


def lattice_parameters(lattice: np.ndarray) -> np.ndarray:
    """(a, b, c, α, β, γ) in Å and degrees of lattice rows."""
    a, b, c = np.linalg.norm(lattice, axis=1)

    def angle(u: np.ndarray, v: np.ndarray, nu: float, nv: float) -> float:
        return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))

    return np.array(
        [a, b, c, angle(lattice[1], lattice[2], b, c), angle(lattice[0], lattice[2], a, c),
         angle(lattice[0], lattice[1], a, b)]
    )  # fmt: skip


def _grid_parameters(lattice: np.ndarray) -> np.ndarray:
    p = lattice_parameters(lattice)
    return np.concatenate(
        [np.round(p[:3] * _LENGTH_GRID), np.round(p[3:] * _ANGLE_GRID)]
    ).astype(np.int64)


def canonical_cell(lattice: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lattice, frac) in the stored form (see the module docstring)."""
    from pymatgen.core import Lattice

    g = _grid_parameters(lattice)
    a, b, c = (g[:3] / _LENGTH_GRID).tolist()
    al, be, ga = (g[3:] / _ANGLE_GRID).tolist()
    lat = np.array(Lattice.from_parameters(a, b, c, al, be, ga).matrix, dtype=np.float64)
    q = np.round(np.asarray(frac, dtype=np.float64) * FRAC_GRID).astype(np.int64) % FRAC_GRID
    return lat, q / FRAC_GRID


def content_hash(
    lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray, props: dict[str, float]
) -> str:
    """sha256 of a stored-form structure and its DFT values, independent of site order."""
    q = np.round(np.asarray(frac, dtype=np.float64) * FRAC_GRID).astype(np.int64) % FRAC_GRID
    rows = np.empty(len(numbers), dtype=[("z", "<i2"), ("f", "<i8", (3,))])
    rows["z"] = numbers
    rows["f"] = q
    rows = rows[np.lexsort((q[:, 2], q[:, 1], q[:, 0], np.asarray(numbers)))]
    values = "".join(f"{k}={props[k]:.10g};" for k in sorted(props))
    return hashlib.sha256(
        b"".join(
            (_PREFIX, _grid_parameters(lattice).astype("<i8").tobytes(), rows.tobytes(),
             values.encode())
        )
    ).hexdigest()  # fmt: skip
