"""Candidate neighbours: every periodic image within the pair cutoff, in the reference's order.

For atoms j (centre) and i with reduced coordinates t (n, 3) and image offset n (3,), the
reference computes ``d = |((t_i - t_j) + n) @ lattice|`` and keeps 1e-8 < d < cutoff_ij, with
``t = (frac @ lattice) @ inv(lattice^T)^T``. This module repeats that arithmetic bit for bit (one
BLAS matmul per cell, like the reference's), on the reference's 27 offsets (-1..1)^3 or on every
offset the cutoff can reach.

Exact search: with b_k the k-th column of inv(lattice) (reciprocal vector without 2 pi), the
fractional component of the pair vector obeys |(t_i - t_j + n)_k| <= d |b_k| < cutoff_ij |b_k|:
an interval of integers n_k per pair and axis. Skewed cells (whose box is more than twice that
of a cube of equal volume) are LLL-reduced first so the intervals stay short; the offsets found
are mapped back to the original basis and every distance is computed there, so reduction never
changes a result.

Speed: many cells are searched at once (ragged per-pair boxes, concatenated). Only pairs
a <= b are computed: t_a - t_b = -(t_b - t_a) exactly in IEEE arithmetic, so the candidate
(b -> a, -n) has bit-for-bit the distance of (a -> b, n) and is written by mirroring, which
halves the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ml.graphs.errors import GraphBuildError
from ml.graphs.lattice import lll_reduce

# Most (pair, image) rows one cell may need (~0.3 GB of work arrays at the limit; a realistic
# primitive cell of 200 atoms needs well under 1e6).
MAX_BOX = 2_000_000
# Relative and absolute slack on the image bounds; candidates are then filtered exactly.
_SLACK = 1e-9
_IMAGES = ("exact", "27")


class SearchCell(NamedTuple):
    """One cell to search.

    Attributes:
        lattice: (3, 3) rows are lattice vectors (Å).
        frac: (n, 3) fractional coordinates (not necessarily wrapped).
        radii: (n,) atomic radii (Å).
        factor: the cutoff scale factor; cutoff_ij = (radii_i + radii_j) * factor.
        volume: cell volume (Å^3), used only to decide whether to LLL-reduce.
    """

    lattice: NDArray[np.float64]
    frac: NDArray[np.float64]
    radii: NDArray[np.float64]
    factor: float
    volume: float


class Candidates(NamedTuple):
    """Pair-image candidates sorted by (cell, j, i, image), the reference's order per cell.

    Attributes:
        cell: (E,) int64 index of the cell in the batch (all 0 for one cell).
        j: (E,) int64 centre atom (edge source), numbered within its cell.
        i: (E,) int64 neighbour atom (edge target), numbered within its cell.
        image: (E, 3) lattice offset added to atom i (int8 when every offset fits, else int64).
        dist: (E,) float64 distance in Å.
        ratio: (E,) float64 dist / cutoff_ij, the value that is clustered.
    """

    cell: NDArray[np.int64]
    j: NDArray[np.int64]
    i: NDArray[np.int64]
    image: NDArray[np.int64]
    dist: NDArray[np.float64]
    ratio: NDArray[np.float64]


def find_candidates(
    lattice: NDArray[np.float64],
    red: NDArray[np.float64],
    radii: NDArray[np.float64],
    factor: float,
    *,
    images: str = "exact",
    min_distance: float = 1e-8,
) -> Candidates:
    """All (j, i, image) of one cell with min_distance < d < cutoff_ij, in reference order.

    Unlike :func:`search_cells` this takes the reduced coordinates themselves (as the reference
    computes them from its Cartesian coordinates), to compare with reference data bit for bit.

    Args:
        lattice: (3, 3) rows are lattice vectors (Å).
        red: (n, 3) reduced coordinates.
        radii: (n,) atomic radii (Å).
        factor: cutoff scale factor.
        images: ``"exact"`` searches every image the cutoff reaches; ``"27"`` only (-1..1)^3.
        min_distance: candidates at or below it are dropped (an atom and itself).
    """
    cell = SearchCell(lattice, red, radii, factor, abs(float(np.linalg.det(lattice))))
    cand, errors = _search(
        [cell], images=images, min_distance=min_distance, red=[np.asarray(red, np.float64)]
    )
    if errors:
        raise errors[0]
    return cand


def search_cells(
    cells: Sequence[SearchCell], *, images: str = "exact", min_distance: float = 1e-8
) -> tuple[Candidates, dict[int, GraphBuildError]]:
    """Candidates of many cells at once (identical to searching each alone).

    Returns the candidates and, by cell index, the GraphBuildError of every cell whose search
    would not fit in memory (those cells have no candidates).
    """
    return _search(cells, images=images, min_distance=min_distance, red=None)


def _search(
    cells: Sequence[SearchCell],
    *,
    images: str,
    min_distance: float,
    red: list[NDArray[np.float64]] | None,
) -> tuple[Candidates, dict[int, GraphBuildError]]:
    if images not in _IMAGES:
        raise ValueError(f"images must be one of {_IMAGES}, got {images!r}")
    ncells = len(cells)
    if ncells == 0:
        return _empty(), {}
    sizes = np.array([len(c.frac) for c in cells], dtype=np.int64)
    lattices = np.stack([c.lattice for c in cells])
    inv_t = np.linalg.inv(lattices.transpose(0, 2, 1))  # inv(lattice^T), one LAPACK call each
    if red is None:
        red = _reduced_coords(cells, sizes, lattices, inv_t)
    recip = np.sqrt((inv_t * inv_t).sum(axis=2))  # (S, 3) |b_k|: rows of inv(lattice^T)
    radii = np.concatenate([c.radii for c in cells])
    factor = np.array([c.factor for c in cells])
    atom_start = np.cumsum(sizes) - sizes
    rmax = np.maximum.reduceat(radii, atom_start)
    cmax = (rmax + rmax) * factor

    unimodular: dict[int, NDArray[np.int64]] = {}
    errors: dict[int, GraphBuildError] = {}
    if images == "exact":
        box = _box(cmax, recip)
        volume = np.array([c.volume for c in cells])
        # A skewed cell has a box far larger than a cube of the same volume would: reduce it.
        for k in np.flatnonzero(box > 2.0 * (2.0 * cmax / np.cbrt(volume) + 1.0) ** 3).tolist():
            u = lll_reduce(cells[k].lattice)
            recip_u = np.sqrt((np.linalg.inv(u @ cells[k].lattice) ** 2).sum(axis=0))
            box_u = _box(cmax[k : k + 1], recip_u[None, :])[0]
            if box_u < box[k]:
                unimodular[k], recip[k], box[k] = u, recip_u, box_u
        for k in np.flatnonzero(sizes * (sizes + 1) // 2 * box > MAX_BOX).tolist():
            errors[k] = GraphBuildError(
                f"image search too large ({sizes[k]} atoms, up to {box[k]:.0f} images per "
                "pair): the cutoff spans too many cells"
            )
    if errors:  # search the others alone, then renumber their cells
        keep = [k for k in range(ncells) if k not in errors]
        sub, _ = _search(
            [cells[k] for k in keep],
            images=images,
            min_distance=min_distance,
            red=[red[k] for k in keep],
        )
        return sub._replace(cell=np.array(keep, dtype=np.int64)[sub.cell]), errors

    # Pairs a <= b, numbered q = b (b + 1) / 2 + a within a cell.
    npairs = sizes * (sizes + 1) // 2
    pair_start = np.cumsum(npairs) - npairs
    cell_of_pair = np.repeat(np.arange(ncells), npairs)
    q = np.arange(int(npairs.sum())) - pair_start[cell_of_pair]
    tri_a, tri_b = _triangle(int(npairs.max()))
    a, b = tri_a[q], tri_b[q]
    ga = a + atom_start[cell_of_pair]
    gb = b + atom_start[cell_of_pair]
    all_red = np.concatenate(red)
    # t_b - t_a: centre a, neighbour b (take(axis=0): ~5x faster than fancy row indexing)
    delta = all_red.take(gb, axis=0) - all_red.take(ga, axis=0)
    cut = (radii[ga] + radii[gb]) * factor[cell_of_pair]

    # Per pair and axis, the offsets that can be within the cutoff (in the bounding basis).
    half = cut[:, None] * (recip * (1.0 + _SLACK)).take(cell_of_pair, axis=0) + _SLACK
    frac = delta
    for k, u in unimodular.items():
        frac = delta.copy() if frac is delta else frac
        lo_, hi_ = pair_start[k], pair_start[k] + npairs[k]
        frac[lo_:hi_] = delta[lo_:hi_] @ np.rint(np.linalg.inv(u))
    lo = np.ceil(-frac - half)  # integers held in float64: exact, and no conversions
    hi = np.floor(half - frac)
    if images == "27":  # the reference's offsets -1..1, less those that cannot be in range
        np.maximum(lo, -1.0, out=lo)
        np.minimum(hi, 1.0, out=hi)
    count = hi - lo + 1.0
    np.maximum(count, 0.0, out=count)

    # Ragged enumeration: pair p gets count0 * count1 * count2 offsets, lexicographic.
    total = (count[:, 0] * count[:, 1] * count[:, 2]).astype(np.int64)
    pair = np.repeat(np.arange(len(delta)), total)
    r = (np.arange(len(pair)) - np.repeat(np.cumsum(total) - total, total)).astype(np.float64)
    c2 = count[:, 2].take(pair)
    c12 = count[:, 1].take(pair) * c2
    g0 = np.floor(r / c12)  # exact: small integers in float64
    rest = r - g0 * c12
    g1 = np.floor(rest / c2)
    image = lo.take(pair, axis=0)
    image[:, 0] += g0
    image[:, 1] += g1
    image[:, 2] += rest - g1 * c2
    rows = np.bincount(cell_of_pair, weights=total, minlength=ncells).astype(np.int64)
    row_end = np.cumsum(rows)
    row_start = row_end - rows
    for k, u in unimodular.items():  # back to the original basis
        image[row_start[k] : row_end[k]] = image[row_start[k] : row_end[k]] @ u

    rij = delta.take(pair, axis=0) + image
    vec = np.empty_like(rij)
    for k, c in enumerate(cells):  # one matmul per cell: the reference's BLAS arithmetic
        if rows[k]:
            np.matmul(rij[row_start[k] : row_end[k]], c.lattice, out=vec[row_start[k] : row_end[k]])
    vec *= vec
    dist = np.sqrt(vec[:, 0] + vec[:, 1] + vec[:, 2])
    cut_row = cut[pair]
    kept = np.flatnonzero((dist < cut_row) & (dist > min_distance))
    pair, image, dist, cut_row = pair[kept], image.take(kept, axis=0), dist[kept], cut_row[kept]
    if unimodular:  # mapped-back offsets are not lexicographic within a pair
        order = np.lexsort((image[:, 2], image[:, 1], image[:, 0], pair))
        pair, image = pair[order], image.take(order, axis=0)
        dist, cut_row = dist[order], cut_row[order]
    return _mirror(sizes, a, b, cell_of_pair, pair, image, dist, dist / cut_row), {}


def _reduced_coords(
    cells: Sequence[SearchCell],
    sizes: NDArray[np.int64],
    lattices: NDArray[np.float64],
    inv_t: NDArray[np.float64],
) -> list[NDArray[np.float64]]:
    """The reference's reduced coordinates, (frac @ lattice) @ inv(lattice^T)^T, per cell.

    Cells of equal size are stacked into one matmul each: BLAS computes every matrix of a stack
    exactly as alone (checked bit for bit in the tests), with far fewer calls.
    """
    red: list[NDArray[np.float64]] = [np.empty(0)] * len(cells)
    by_size: dict[int, list[int]] = {}
    for k, n in enumerate(sizes.tolist()):
        by_size.setdefault(n, []).append(k)
    for ks in by_size.values():
        if len(ks) == 1:
            k = ks[0]
            red[k] = np.matmul(np.dot(cells[k].frac, cells[k].lattice), inv_t[k].T)
            continue
        frac = np.concatenate([cells[k].frac for k in ks]).reshape(len(ks), -1, 3)
        out = np.matmul(np.matmul(frac, lattices[ks]), inv_t[ks].transpose(0, 2, 1))
        for k, r in zip(ks, out, strict=True):
            red[k] = r
    return red


def _mirror(
    sizes: NDArray[np.int64],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    cell_of_pair: NDArray[np.int64],
    pair: NDArray[np.int64],
    image: NDArray[np.float64],
    dist: NDArray[np.float64],
    ratio: NDArray[np.float64],
) -> Candidates:
    """Add (b -> a, -n) for every (a -> b, n) with a < b and order all by (cell, j, i, image).

    Rows of one computed pair are contiguous and lexicographic; mirrored, they are reversed.
    Every (cell, j, i) block gets its start from a cumulative count over the full n x n grid.
    """
    npairs = len(a)
    per_pair = np.bincount(pair, minlength=npairs)
    rank = np.arange(len(pair)) - (np.cumsum(per_pair) - per_pair)[pair]
    n = sizes[cell_of_pair]
    grid_start = (np.cumsum(sizes * sizes) - sizes * sizes)[cell_of_pair]
    direct = grid_start + a * n + b  # block (j=a, i=b)
    mirrored = grid_start + b * n + a  # block (j=b, i=a)
    block = np.zeros(int((sizes * sizes).sum()), dtype=np.int64)
    block[direct] = per_pair
    block[mirrored] = per_pair
    start = np.cumsum(block) - block
    flip = np.flatnonzero(a[pair] != b[pair])
    nhalf = len(pair)
    # source[k]: the row of the concatenation (direct rows, then mirrored rows) at output k
    source = np.empty(nhalf + len(flip), dtype=np.int64)
    source[start[direct[pair]] + rank] = np.arange(nhalf)
    source[start[mirrored[pair[flip]]] + (per_pair[pair[flip]] - 1 - rank[flip])] = np.arange(
        nhalf, nhalf + len(flip)
    )
    ja, ib, cell = a[pair], b[pair], cell_of_pair[pair]
    small = len(image) == 0 or (image.min() >= -127 and image.max() <= 127)
    ints = image.astype(np.int8 if small else np.int64)  # int8: far less to move around
    return Candidates(
        cell=np.concatenate((cell, cell[flip]))[source],
        j=np.concatenate((ja, ib[flip]))[source],
        i=np.concatenate((ib, ja[flip]))[source],
        image=np.concatenate((ints, -ints.take(flip, axis=0))).take(
            source, axis=0
        ),  # int8 or int64
        dist=np.concatenate((dist, dist[flip]))[source],
        ratio=np.concatenate((ratio, ratio[flip]))[source],
    )


# (a, b) of pair numbers q = b (b + 1) / 2 + a; replaced whole, never mutated, so thread-safe.
_TRIANGLE: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = [
    (np.zeros(0, np.int64), np.zeros(0, np.int64))
]


def _triangle(count: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(a, b) of the pairs q = b (b + 1) / 2 + a, a <= b, for q < count (cached, grown as needed)."""
    table = _TRIANGLE[0]
    if len(table[0]) < count:
        nmax = int(np.ceil(np.sqrt(2.0 * count))) + 1
        b = np.repeat(np.arange(nmax), np.arange(1, nmax + 1))
        a = np.arange(len(b)) - (b * (b + 1)) // 2
        a.setflags(write=False)
        b.setflags(write=False)
        table = _TRIANGLE[0] = (a, b)
    return table


def _box(cmax: NDArray[np.float64], recip: NDArray[np.float64]) -> NDArray[np.float64]:
    """(S,) most offsets a pair of each cell can need (product of per-axis interval sizes)."""
    widths = np.floor(2.0 * cmax[:, None] * recip * (1.0 + _SLACK) + 2.0 * _SLACK) + 1.0
    return widths.prod(axis=1)


def _empty() -> Candidates:
    empty = np.empty(0, np.int64)
    return Candidates(empty, empty, empty, np.empty((0, 3), np.int64), np.empty(0), np.empty(0))
