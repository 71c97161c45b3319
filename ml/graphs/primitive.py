"""The reference's primitive-cell step, with pymatgen called only when it can reduce the cell.

The reference keeps a structure as given when ``len(get_smallest(s)) == len(s)`` and otherwise
uses ``get_primitive_structure()`` repeated until the size stops shrinking. pymatgen's
``get_primitive_structure(tolerance=0.25)`` only reduces if (1) the gcd of the per-element
site counts is > 1 and (2) some inverse Hermite-normal-form supercell matrix has all three rows
close to translations that map every site onto a site of the same element. :func:`may_reduce`
evaluates (1) and (2) in numpy with a slightly looser tolerance, a necessary condition, so the
costly pymatgen call (milliseconds) runs only for cells that pymatgen might really reduce;
every other cell is kept exactly as given, as the reference keeps it.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from ml.graphs.elements import SYMBOLS
from ml.graphs.errors import GraphBuildError

# Looser than pymatgen by this relative amount, so may_reduce never misses a reduction.
_LOOSEN = 1.0 + 1e-6


def primitive_cell(
    lattice: NDArray[np.float64],
    frac: NDArray[np.float64],
    z: NDArray[np.int64],
    tolerance: float = 0.25,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], bool]:
    """(lattice, frac, z, reduced): the input if already primitive, else pymatgen's smallest cell.

    Args:
        lattice: (3, 3) rows are lattice vectors (Å).
        frac: (n, 3) fractional coordinates.
        z: (n,) atomic numbers.
        tolerance: pymatgen ``get_primitive_structure`` tolerance (Å).
    """
    if not may_reduce(lattice, frac, z, tolerance):
        return lattice, frac, z, False
    try:
        from pymatgen.core import Lattice, Structure

        structure = Structure(Lattice(lattice), z.tolist(), frac)
        smallest = structure.get_primitive_structure(tolerance=tolerance)
        while True:
            smaller = smallest.get_primitive_structure(tolerance=tolerance)
            if len(smaller) == len(smallest):
                break
            smallest = smaller
    except Exception as exc:  # pymatgen raises many types; the batch needs one
        raise GraphBuildError(f"primitive-cell reduction failed: {exc}") from exc
    if len(smallest) == len(z):
        return lattice, frac, z, False
    return (
        np.array(smallest.lattice.matrix, dtype=np.float64),
        np.array(smallest.frac_coords, dtype=np.float64),
        np.array(smallest.atomic_numbers, dtype=np.int64),
        True,
    )


def may_reduce(
    lattice: NDArray[np.float64], frac: NDArray[np.float64], z: NDArray[np.int64], tolerance: float
) -> bool:
    """False only if pymatgen ``get_primitive_structure(tolerance)`` certainly keeps the cell size."""
    counts = np.bincount(z)
    species = np.nonzero(counts)[0]
    num_fu = int(np.gcd.reduce(counts[species]))
    if num_fu == 1:
        return False
    ftol = tolerance / np.sqrt((lattice * lattice).sum(axis=1))  # per-axis fractional tolerance
    tol2 = 2.0 * ftol * _LOOSEN
    # pymatgen orders the groups by element symbol and seeds translations from the first
    # smallest group: differences of its sites to its first site.
    smallest = counts[species].min()
    seed_z = min(species[counts[species] == smallest].tolist(), key=lambda s: SYMBOLS[s - 1])
    seed = frac[z == seed_z]
    vecs = seed[1:] - seed[0]  # the zero vector (seed[0] onto itself) always passes: left out
    n = len(z)
    if len(vecs) * n * n > 2_000:
        # Cheap pass first: each vector must map the first site of every group onto its group.
        for g in species.tolist():
            coords = frac[z == g]
            dev = (coords - coords[0])[None, :, :] - vecs[:, None, :]  # (V, b, 3)
            vecs = vecs[np.all(np.abs(dev - np.rint(dev)) < tol2, axis=-1).any(axis=1)]
            if len(vecs) == 0:
                break
    if len(vecs):  # full test: every site onto a site of its element
        same = z[:, None] == z[None, :]
        if len(vecs) * n * n <= 50_000:
            diff = frac[None, :, :] - frac[:, None, :]  # (a, b, 3): site b - site a
            dev = diff[None, :, :, :] - vecs[:, None, None, :]
            hit = np.all(np.abs(dev - np.rint(dev)) < tol2, axis=-1) & same  # (V, a, b)
            vecs = vecs[hit.any(axis=2).all(axis=1)]
        else:
            for a in range(n):
                dev = (frac - frac[a])[None, :, :] - vecs[:, None, :]  # (V, b, 3)
                hit = np.all(np.abs(dev - np.rint(dev)) < tol2, axis=-1) & same[a]
                vecs = vecs[hit.any(axis=1)]
                if len(vecs) == 0:
                    break
    if len(vecs) == 0 and num_fu * float(ftol.max()) * _LOOSEN < 1.0:
        # Only the zero translation is left, and every inverse HNF of determinant d > 1 has a
        # row entry 1/x (x | d) at distance >= 1/num_fu from an integer: none can match it.
        return False
    vecs = np.concatenate((np.zeros((1, 3)), vecs))
    rows = _inverse_hnfs(num_fu)  # (H, 3, 3)
    dev = rows[:, :, None, :] - vecs[None, None, :, :]
    dev = np.abs(dev - np.rint(dev))
    return bool(np.all(dev < ftol * _LOOSEN, axis=-1).any(axis=-1).all(axis=-1).any())


@functools.lru_cache(maxsize=64)
def _inverse_hnfs(num_fu: int) -> NDArray[np.float64]:
    """(H, 3, 3) inverses of every upper-triangular HNF of determinant d | num_fu, d > 1."""
    mats = []
    for det in range(2, num_fu + 1):
        if num_fu % det:
            continue
        for a in range(1, det + 1):
            if det % a:
                continue
            for e in range(1, det // a + 1):
                if (det // a) % e:
                    continue
                g = det // a // e
                for b in range(a):
                    for c in range(a):
                        for f in range(e):
                            mats.append(((a, b, c), (0, e, f), (0, 0, g)))
    out = np.linalg.inv(np.array(mats, dtype=np.float64))
    out.setflags(write=False)
    return out
