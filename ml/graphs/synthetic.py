"""Synthetic structures for tests and benchmarks: supercells, skewed bases, perturbed prototypes.

All functions take and return plain arrays (lattice rows in Å, fractional coordinates, Z) and a
``numpy.random.Generator``, so results are reproducible from a seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.graphs.elements import OQMD_SPECIES, RADII

Cell = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]

#: Elements of the OQMD table that have a radius (all but none today; Po-Ra are not in it).
ELEMENTS = np.array([z for z in OQMD_SPECIES.tolist() if not np.isnan(RADII[z])], dtype=np.int64)


def lattice_from_parameters(
    a: float, b: float, c: float, alpha: float, beta: float, gamma: float
) -> NDArray[np.float64]:
    """(3, 3) lattice rows from lengths (Å) and angles (degrees), a along x, b in the xy plane."""
    al, be, ga = np.radians([alpha, beta, gamma])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(c * c - cx * cx - cy * cy)
    return np.array([[a, 0.0, 0.0], [b * np.cos(ga), b * np.sin(ga), 0.0], [cx, cy, cz]])


def supercell(cell: Cell, matrix: ArrayLike) -> Cell:
    """The supercell with lattice ``matrix @ lattice`` (integer matrix, det > 0), atoms wrapped.

    Atoms come grouped by lattice translation, each group in the input atom order.
    """
    lattice, frac, z = cell
    m = np.asarray(matrix, dtype=np.int64).reshape(3, 3)
    det = round(float(np.linalg.det(m)))
    if det <= 0:
        raise ValueError("supercell matrix must have a positive determinant")
    inv = np.linalg.inv(m)
    corners = np.array(list(itertools.product((0, 1), repeat=3))) @ m
    ranges = [range(int(corners[:, k].min()) - 1, int(corners[:, k].max()) + 1) for k in range(3)]
    new_frac, new_z = [], []
    for t in itertools.product(*ranges):
        f = (frac + np.array(t)) @ inv
        inside = np.all((f > -1e-9) & (f < 1 - 1e-9), axis=1)
        new_frac.append(f[inside] % 1.0)
        new_z.append(z[inside])
    out_frac = np.concatenate(new_frac)
    out_z = np.concatenate(new_z)
    if len(out_z) != det * len(z):
        raise ValueError(f"supercell has {len(out_z)} atoms, expected {det * len(z)}")
    return m @ lattice, out_frac, out_z


def random_unimodular(
    rng: np.random.Generator, steps: int = 6, scale: int = 3
) -> NDArray[np.int64]:
    """A random integer matrix of determinant 1 (product of random shears)."""
    u = np.eye(3, dtype=np.int64)
    for _ in range(steps):
        i, j = rng.choice(3, 2, replace=False)
        shear = np.eye(3, dtype=np.int64)
        shear[i, j] = int(rng.integers(-scale, scale + 1))
        u = shear @ u
    return u


def rebase(cell: Cell, unimodular: ArrayLike) -> Cell:
    """The same crystal in the basis ``unimodular @ lattice`` (coordinates not wrapped)."""
    lattice, frac, z = cell
    u = np.asarray(unimodular, dtype=np.int64)
    return u @ lattice, frac @ np.linalg.inv(u), z


def random_cell(rng: np.random.Generator, natoms: int, packing: float = 0.45) -> Cell:
    """A random triclinic cell of ``natoms`` atoms of 1-4 random elements, scattered positions.

    Not crystal-like (no coordination shells); used for invariance and brute-force tests.
    """
    nspecies = int(rng.integers(1, min(natoms, 4) + 1))
    species = rng.choice(ELEMENTS, nspecies, replace=False)
    z = np.concatenate([species, rng.choice(species, natoms - nspecies)])
    rng.shuffle(z)
    r = RADII[z]
    while True:
        lengths = np.exp(rng.normal(0.0, 0.2, 3))
        angles = rng.uniform(60.0, 120.0, 3)
        c = np.cos(np.radians(angles))
        if 1 - (c * c).sum() + 2 * c.prod() > 0.2:  # a healthy cell volume
            break
    lattice = lattice_from_parameters(*lengths, *angles)
    volume = (4.0 * np.pi / 3.0 * (r**3).sum()) / packing
    lattice *= (volume / abs(np.linalg.det(lattice))) ** (1.0 / 3.0)
    return lattice, rng.random((natoms, 3)), z.astype(np.int64)


def perturbed(
    rng: np.random.Generator, cell: Cell, strain: float = 0.02, displacement: float = 0.05
) -> Cell:
    """A random symmetric strain (std ``strain``) and atomic displacements (std in Å)."""
    lattice, frac, z = cell
    eps = rng.normal(0.0, strain, (3, 3))
    lattice = lattice @ (np.eye(3) + (eps + eps.T) / 2.0)
    shift = rng.normal(0.0, displacement, frac.shape) @ np.linalg.inv(lattice)
    return lattice, frac + shift, z


def prototype_variants(
    rng: np.random.Generator,
    prototypes: Sequence[Cell],
    count: int,
    *,
    nonprimitive: float = 0.0,
    max_atoms: int = 60,
) -> list[Cell]:
    """OQMD-like cells: prototypes with new elements, some as substituted supercells, perturbed.

    Mostly small cells, as in OQMD (dominated by 1-10 atom prototype decorations). A fraction
    ``nonprimitive`` are exact supercells (no substitution, strain or displacement), which
    the primitive-cell step must reduce.
    """
    reps = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 1), (3, 1, 1), (2, 2, 2), (3, 2, 1),
            (3, 2, 2), (3, 3, 1), (3, 3, 3), (4, 2, 1)]  # fmt: skip
    weights = [0.55, 0.1, 0.05, 0.08, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01, 0.02]
    out: list[Cell] = []
    while len(out) < count:
        lattice, frac, z = prototypes[int(rng.integers(len(prototypes)))]
        species = np.unique(z)
        new = rng.choice(ELEMENTS, len(species), replace=False)
        z = new[np.searchsorted(species, z)]
        exact = rng.random() < nonprimitive
        diag = (
            reps[1 + int(rng.integers(len(reps) - 1))]
            if exact
            else reps[int(rng.choice(len(reps), p=weights))]
        )
        if len(z) * int(np.prod(diag)) > max_atoms:
            continue
        cell = supercell((lattice, frac, z), np.diag(diag))
        if exact:
            out.append(cell)
            continue
        lattice, frac, z = cell
        if diag != (1, 1, 1):  # substitute some sites so the supercell stays primitive
            z = z.copy()
            k = int(rng.integers(1, max(2, len(z) // 3)))
            z[rng.choice(len(z), k, replace=False)] = rng.choice(ELEMENTS)
        out.append(
            perturbed(rng, (lattice, frac, z), strain=0.02, displacement=rng.uniform(0, 0.1))
        )
    return out
