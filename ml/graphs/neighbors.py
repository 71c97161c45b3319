"""Candidate neighbours: every periodic image within the pair cutoff, in the reference's order.

For atoms i, j with reduced coordinates t (n, 3) and image offset n (3,), the reference computes
``d = |((t_i - t_j) + n) @ lattice|`` and keeps 1e-8 < d < cutoff_ij. This module repeats that
arithmetic bit for bit (one BLAS matmul per cell, as the reference's), either on the reference's
27 offsets (-1..1)^3 or on every offset the cutoff can reach.

Exact search: with b_k the k-th column of inv(lattice) (reciprocal vector without 2 pi), the
fractional component of the pair vector obeys |(t_i - t_j + n)_k| <= d |b_k| < cutoff_ij |b_k|,
an interval of integers n_k per pair and axis. Skewed cells (whose box is more than twice that of
a cube of equal volume) are LLL-reduced first so the intervals stay short; the offsets found are
mapped back to the original basis and all distances are computed there, so reduction never
changes a result. The search runs over many cells at once (ragged per-pair boxes, concatenated).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ml.graphs.errors import GraphBuildError
from ml.graphs.lattice import lll_reduce

# (27, 3) offsets -1..1 in lexicographic order (the reference's np.where order).
OFFSETS_27 = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int64)
# Most (pair, image) rows one cell may need (~1 GB of work arrays at the limit).
MAX_BOX = 10_000_000
# Relative and absolute slack on the image bounds; candidates are then filtered exactly.
_SLACK = 1e-9


@dataclass(frozen=True)
class SearchCell:
    """One cell prepared for the search.

    Attributes:
        lattice: (3, 3) rows are lattice vectors (Å).
        red: (n, 3) reduced coordinates (not necessarily wrapped).
        cutoff: (n, n) symmetric pair cutoffs (Å).
        recip: (3,) |b_k| of the basis used to bound the images.
        unimodular: (3, 3) int U with ``U @ lattice`` the bounding basis, or None (the lattice).
    """

    lattice: NDArray[np.float64]
    red: NDArray[np.float64]
    cutoff: NDArray[np.float64]
    recip: NDArray[np.float64]
    unimodular: NDArray[np.int64] | None = None


@dataclass(frozen=True)
class Candidates:
    """Pair-image candidates sorted by (cell, j, i, image), the reference's order per cell.

    Attributes:
        cell: (E,) int64 index of the cell in the batch (all 0 for one cell).
        j: (E,) int64 centre atom (edge source), numbered within its cell.
        i: (E,) int64 neighbour atom (edge target), numbered within its cell.
        image: (E, 3) int64 lattice offset added to atom i.
        dist: (E,) float64 distance in Å.
        ratio: (E,) float64 dist / cutoff_ij, the value that is clustered.
    """

    cell: NDArray[np.int64]
    j: NDArray[np.int64]
    i: NDArray[np.int64]
    image: NDArray[np.int64]
    dist: NDArray[np.float64]
    ratio: NDArray[np.float64]


def prepare_cell(
    lattice: NDArray[np.float64],
    red: NDArray[np.float64],
    cutoff: NDArray[np.float64],
    *,
    volume: float | None = None,
    images: str = "exact",
) -> SearchCell:
    """Choose the bounding basis of a cell; GraphBuildError if its search cannot fit in memory."""
    if images == "27":
        return SearchCell(lattice, red, cutoff, np.ones(3))
    if images != "exact":
        raise ValueError(f"images must be 'exact' or '27', got {images!r}")
    recip = np.sqrt((np.linalg.inv(lattice) ** 2).sum(axis=0))
    cmax = float(cutoff.max())
    box = _box(cmax, recip)
    unimodular = None
    if volume is None:
        volume = abs(float(np.linalg.det(lattice)))
    if box > 2.0 * (2.0 * cmax / volume ** (1.0 / 3.0) + 1.0) ** 3:
        u = lll_reduce(lattice)
        recip_u = np.sqrt((np.linalg.inv(u @ lattice) ** 2).sum(axis=0))
        box_u = _box(cmax, recip_u)
        if box_u < box:
            unimodular, recip, box = u, recip_u, box_u
    if len(red) ** 2 * box > MAX_BOX:
        raise GraphBuildError(
            f"image search too large ({len(red)} atoms, up to {box:.0f} images per pair): "
            "the cutoff spans too many cells"
        )
    return SearchCell(lattice, red, cutoff, recip, unimodular)


def _box(cmax: float, recip: NDArray[np.float64]) -> float:
    """Most integers per axis product any pair interval can hold."""
    widths = np.floor(2.0 * cmax * recip * (1.0 + _SLACK) + 2.0 * _SLACK) + 1.0
    return float(np.prod(widths))


def find_candidates(
    lattice: NDArray[np.float64],
    red: NDArray[np.float64],
    cutoff: NDArray[np.float64],
    *,
    images: str = "exact",
    min_distance: float = 1e-8,
) -> Candidates:
    """All (j, i, image) of one cell with min_distance < d < cutoff[j, i], in reference order.

    Args:
        lattice: (3, 3) rows are lattice vectors (Å).
        red: (n, 3) reduced coordinates (not necessarily wrapped into [0, 1)).
        cutoff: (n, n) symmetric pair cutoffs (Å).
        images: ``"exact"`` searches every image the cutoff reaches; ``"27"`` only (-1..1)^3.
        min_distance: candidates at or below it are dropped (an atom and itself).
    """
    cell = prepare_cell(lattice, red, cutoff, images=images)
    return search_cells([cell], images=images, min_distance=min_distance)


def search_cells(
    cells: Sequence[SearchCell], *, images: str = "exact", min_distance: float = 1e-8
) -> Candidates:
    """:func:`find_candidates` over many prepared cells at once (results identical per cell)."""
    if not cells:
        empty = np.empty(0, np.int64)
        return Candidates(empty, empty, empty, np.empty((0, 3), np.int64), np.empty(0), np.empty(0))
    sizes = np.array([len(c.red) for c in cells], dtype=np.int64)
    npairs = sizes * sizes
    pair_start = np.cumsum(npairs) - npairs
    cell_of_pair = np.repeat(np.arange(len(cells)), npairs)
    local = np.arange(int(npairs.sum())) - pair_start[cell_of_pair]
    n_of_pair = sizes[cell_of_pair]
    j, i = np.divmod(local, n_of_pair)  # pair p = j * n + i within its cell
    atom_start = np.cumsum(sizes) - sizes
    red = np.concatenate([c.red for c in cells])
    # t_i - t_j: exactly the reference's rij[i, j] before the offset is added.
    delta = red[i + atom_start[cell_of_pair]] - red[j + atom_start[cell_of_pair]]
    cut = np.concatenate([c.cutoff.ravel() for c in cells])

    if images == "27":
        lo = np.full((len(delta), 3), -1, dtype=np.int64)
        count = np.full((len(delta), 3), 3, dtype=np.int64)
    elif images == "exact":
        lo, count = _exact_bounds(cells, delta, cut, cell_of_pair, pair_start, npairs)
    else:
        raise ValueError(f"images must be 'exact' or '27', got {images!r}")

    # Ragged enumeration: pair p gets count0 * count1 * count2 offsets, lexicographic.
    total = count[:, 0] * count[:, 1] * count[:, 2]
    pair = np.repeat(np.arange(len(delta)), total)
    q = np.arange(len(pair)) - np.repeat(np.cumsum(total) - total, total)
    c2 = count[pair, 2]
    c12 = count[pair, 1] * c2
    g0 = q // c12
    rest = q - g0 * c12
    g1 = rest // c2
    image = lo[pair] + np.stack((g0, g1, rest - g1 * c2), axis=1)

    skewed = [k for k, c in enumerate(cells) if c.unimodular is not None]
    rows_per_cell = np.bincount(cell_of_pair, weights=total, minlength=len(cells)).astype(np.int64)
    row_end = np.cumsum(rows_per_cell)
    row_start = row_end - rows_per_cell
    for k in skewed:  # offsets were enumerated in the reduced basis: map them back
        a, b = row_start[k], row_end[k]
        image[a:b] = image[a:b] @ cells[k].unimodular

    rij = delta[pair] + image
    vec = np.empty_like(rij)
    for k, c in enumerate(cells):  # one matmul per cell, the reference's BLAS arithmetic
        a, b = row_start[k], row_end[k]
        if b > a:
            np.matmul(rij[a:b], c.lattice, out=vec[a:b])
    dist = np.sqrt(vec[:, 0] * vec[:, 0] + vec[:, 1] * vec[:, 1] + vec[:, 2] * vec[:, 2])
    cut_row = cut[pair]
    keep = (dist < cut_row) & (dist > min_distance)
    pair, image, dist, cut_row = pair[keep], image[keep], dist[keep], cut_row[keep]
    if skewed:
        order = np.lexsort((image[:, 2], image[:, 1], image[:, 0], pair))
        pair, image, dist, cut_row = pair[order], image[order], dist[order], cut_row[order]
    return Candidates(
        cell=cell_of_pair[pair], j=j[pair], i=i[pair], image=image, dist=dist, ratio=dist / cut_row
    )


def _exact_bounds(
    cells: Sequence[SearchCell],
    delta: NDArray[np.float64],
    cut: NDArray[np.float64],
    cell_of_pair: NDArray[np.int64],
    pair_start: NDArray[np.int64],
    npairs: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(P, 3) first offset and (P, 3) number of offsets per pair and axis (bounding basis)."""
    frac = delta
    for k, c in enumerate(cells):
        if c.unimodular is not None:
            if frac is delta:
                frac = delta.copy()
            a, b = pair_start[k], pair_start[k] + npairs[k]
            frac[a:b] = delta[a:b] @ np.rint(np.linalg.inv(c.unimodular))
    recip = np.stack([c.recip for c in cells])[cell_of_pair]
    half = cut[:, None] * recip * (1.0 + _SLACK) + _SLACK
    lo = np.ceil(-frac - half)
    count = np.floor(-frac + half) - lo + 1.0
    return lo.astype(np.int64), np.maximum(count, 0.0).astype(np.int64)
