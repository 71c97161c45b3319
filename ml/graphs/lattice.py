"""Cell arithmetic: the volume (the reference's arithmetic) and LLL reduction of 3x3 lattices."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def cell_volume(lattice: NDArray[np.float64]) -> float:
    """|(a x b) . c| in Å^3, the same arithmetic as pymatgen ``Lattice.volume``.

    It can differ from ``abs(det(lattice))`` in the last bit, which matters for bit-for-bit cutoffs.
    The cross product is written out: the same IEEE operations as ``np.cross`` (bit-identical,
    checked in the tests) at a tenth of its cost.
    """
    (a0, a1, a2), (b0, b1, b2) = lattice[0].tolist(), lattice[1].tolist()
    cross = np.array((a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0))
    return float(abs(np.dot(cross, lattice[2])))


def lll_reduce(lattice: NDArray[np.float64], delta: float = 0.75) -> NDArray[np.int64]:
    """Unimodular U (3, 3) such that ``U @ lattice`` is an LLL-reduced basis (rows).

    Used only to choose which periodic images to enumerate for very skewed cells; distances are
    always computed in the original basis, so reduction never changes a result.
    """
    basis = np.array(lattice, dtype=np.float64)
    u = np.eye(3, dtype=np.int64)
    k = 1
    for _ in range(1000):  # LLL on 3 vectors converges in a handful of steps
        if k >= 3:
            break
        ortho, mu = _gram_schmidt(basis)
        for j in range(k - 1, -1, -1):
            q = round(mu[k, j])
            if q:
                basis[k] -= q * basis[j]
                u[k] -= q * u[j]
                ortho, mu = _gram_schmidt(basis)
        if ortho[k] @ ortho[k] >= (delta - mu[k, k - 1] ** 2) * (ortho[k - 1] @ ortho[k - 1]):
            k += 1
        else:
            basis[[k - 1, k]] = basis[[k, k - 1]]
            u[[k - 1, k]] = u[[k, k - 1]]
            k = max(k - 1, 1)
    return u


def _gram_schmidt(basis: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ortho = basis.copy()
    mu = np.zeros((3, 3))
    for i in range(3):
        for j in range(i):
            mu[i, j] = (basis[i] @ ortho[j]) / (ortho[j] @ ortho[j])
            ortho[i] -= mu[i, j] * ortho[j]
    return ortho, mu
