"""Candidate neighbours: every periodic image within the pair cutoff, in the reference's order.

For atoms i, j with reduced coordinates t (n, 3) and image offset n (3,), the reference computes
``d = |((t_i - t_j) + n) @ lattice|`` and keeps 1e-8 < d < cutoff_ij. This module repeats that
arithmetic bit for bit, either on the reference's 27 offsets (-1..1)^3 or on every offset the
cutoff can reach. The exact search bounds each fractional component: for the reciprocal vector
b_k (column k of inv(lattice)), |(t_i - t_j + n)_k| <= d |b_k| < cutoff_ij |b_k|, which gives a
per-pair range of n_k; skewed cells are LLL-reduced first so that the box stays small, and the
offsets found are mapped back, so reduction never changes which pairs or distances come out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ml.graphs.errors import GraphBuildError
from ml.graphs.lattice import lll_reduce

# (27, 3) offsets -1..1 in lexicographic order (the reference's np.where order).
OFFSETS_27 = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int64)
# Most (pair, image) combinations the exact search may hold at once (~200 MB of work arrays).
MAX_BOX = 20_000_000
# Relative and absolute slack on the image bounds; results are then filtered exactly.
_SLACK = 1e-9


@dataclass(frozen=True)
class Candidates:
    """Pair-image candidates sorted by (j, i, image), the reference's order.

    Attributes:
        j: (E,) int64 centre atom (edge source).
        i: (E,) int64 neighbour atom (edge target).
        image: (E, 3) int64 lattice offset added to atom i.
        dist: (E,) float64 distance in Å.
        ratio: (E,) float64 dist / cutoff_ij, the value that is clustered.
    """

    j: NDArray[np.int64]
    i: NDArray[np.int64]
    image: NDArray[np.int64]
    dist: NDArray[np.float64]
    ratio: NDArray[np.float64]


def find_candidates(
    lattice: NDArray[np.float64],
    red: NDArray[np.float64],
    cutoff: NDArray[np.float64],
    *,
    images: str = "exact",
    min_distance: float = 1e-8,
) -> Candidates:
    """All (j, i, image) with min_distance < d < cutoff[j, i], sorted by (j, i, image).

    Args:
        lattice: (3, 3) rows are lattice vectors (Å).
        red: (n, 3) reduced coordinates (not necessarily wrapped into [0, 1)).
        cutoff: (n, n) symmetric pair cutoffs (Å).
        images: ``"exact"`` searches every image the cutoff reaches; ``"27"`` only (-1..1)^3.
        min_distance: candidates at or below it are dropped (an atom and itself).
    """
    n = len(red)
    # Pair p = j * n + i holds t_i - t_j, exactly the reference's rij[i, j].
    delta = (red[None, :, :] - red[:, None, :]).reshape(-1, 3)
    pair_cut = cutoff.reshape(-1)
    if images == "27":
        pair, image = _all_27(len(delta))
        reorder = False
    elif images == "exact":
        pair, image, reorder = _exact_box(lattice, delta, pair_cut)
    else:
        raise ValueError(f"images must be 'exact' or '27', got {images!r}")

    vec = np.matmul(delta[pair] + image, lattice)
    dist = np.sqrt(vec[:, 0] * vec[:, 0] + vec[:, 1] * vec[:, 1] + vec[:, 2] * vec[:, 2])
    cut = pair_cut[pair]
    keep = (dist < cut) & (dist > min_distance)
    pair, image, dist, cut = pair[keep], image[keep], dist[keep], cut[keep]
    if reorder:
        order = np.lexsort((image[:, 2], image[:, 1], image[:, 0], pair))
        pair, image, dist, cut = pair[order], image[order], dist[order], cut[order]
    j, i = np.divmod(pair, n)
    return Candidates(j=j, i=i, image=image, dist=dist, ratio=dist / cut)


def _all_27(npairs: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    pair = np.repeat(np.arange(npairs), 27)
    return pair, np.tile(OFFSETS_27, (npairs, 1))


def _exact_box(
    lattice: NDArray[np.float64], delta: NDArray[np.float64], pair_cut: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], bool]:
    """Every (pair, offset) that can lie within the pair cutoff; offsets in the original basis.

    Returns the pair index (K,), the offsets (K, 3) and whether the rows still need sorting
    (offsets mapped back from a reduced basis are not in lexicographic order).
    """
    cmax = float(pair_cut.max())
    recip = np.sqrt((np.linalg.inv(lattice) ** 2).sum(axis=0))  # |b_k|, no 2 pi
    box = np.prod(2.0 * cmax * recip + 1.0)
    volume = abs(np.linalg.det(lattice))
    unimodular = None
    # A skewed cell has a box far larger than a cube of the same volume would: reduce it.
    if box > 2.0 * (2.0 * cmax / np.cbrt(volume) + 1.0) ** 3:
        u = lll_reduce(lattice)
        recip_u = np.sqrt((np.linalg.inv(u @ lattice) ** 2).sum(axis=0))
        if np.prod(2.0 * cmax * recip_u + 1.0) < box:
            unimodular, recip = u, recip_u
    frac = delta if unimodular is None else delta @ np.rint(np.linalg.inv(unimodular))
    half = pair_cut[:, None] * recip[None, :] * (1.0 + _SLACK) + _SLACK
    lo = np.ceil(-frac - half).astype(np.int64)
    hi = np.floor(-frac + half).astype(np.int64)
    width = (hi - lo + 1).max(axis=0)
    if np.any(width <= 0):
        return np.empty(0, np.int64), np.empty((0, 3), np.int64), False
    if len(delta) * int(np.prod(width)) > MAX_BOX:
        raise GraphBuildError(
            f"image search too large ({len(delta)} pairs x {width.tolist()} images): "
            "the cutoff spans too many cells"
        )
    ok = [
        lo[:, k, None] + np.arange(width[k]) <= hi[:, k, None] for k in range(3)
    ]  # (P, width_k) each
    mask = ok[0][:, :, None, None] & ok[1][:, None, :, None] & ok[2][:, None, None, :]
    pair, g0, g1, g2 = np.nonzero(mask)
    image = lo[pair] + np.stack((g0, g1, g2), axis=1)
    if unimodular is not None:
        image = image @ unimodular
    return pair, image, unimodular is not None
