"""Nearest-neighbour selection by repeated exact 1-D 2-means, vectorised across atoms.

For centre atom j with candidate ratios x = d / cutoff (sorted ascending, k of them), one step
splits x into a left part x[:p] and a right part x[p:] at the p that minimises the within-cluster
sum of squares, i.e. maximises S_p^2 / p + (S_k - S_p)^2 / (k - p) with prefix sums S. In 1-D an
optimal 2-means partition is contiguous in sorted order, so this is the exact optimum that sklearn
KMeans only approximates. If the centres c2 - c1 > cc_cutoff the left part is kept (k <- p) and
the step repeats (at most max_iter times, while k > 1); otherwise the atom is done.

Definitions that make the result unique:
- a split falls only between distinct values (x[p-1] < x[p]): in exact arithmetic splitting a
  run of equal ratios is never better, and the rule keeps rounding in the prefix sums from ever
  choosing one; so equal ratios (symmetry-equivalent images) stay together, and when all
  remaining x are equal the atom is done (KMeans would find equal centres and stop too);
- among equally good splits the first (smallest p) wins, as ``argmax`` gives;
- because the kept part is always a prefix of the sorted ratios, the prefix sums are computed
  once per atom and every step is O(k), vectorised over all atoms still being split; the kept
  candidates are then exactly those with x <= the largest kept ratio.
This reproduces ``neighbors_exact_1d_2means`` of the reference data on all 24 structures.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def select_neighbors(
    j: NDArray[np.int64],
    ratio: NDArray[np.float64],
    natoms: int,
    *,
    cc_cutoff: float = 0.03,
    max_iter: int = 10,
) -> NDArray[np.bool_]:
    """(E,) mask of the candidates kept as neighbours.

    Args:
        j: (E,) centre atom of each candidate (0..natoms-1, any numbering across cells).
        ratio: (E,) d / cutoff of each candidate.
        natoms: number of centre atoms n.
        cc_cutoff: least centre gap that splits.
        max_iter: most splits per atom.
    """
    nedges = len(j)
    if nedges == 0:
        return np.zeros(0, dtype=bool)
    order = None
    if np.any(j[1:] < j[:-1]):  # group the candidates by atom (they usually come grouped)
        order = np.argsort(j, kind="stable")
        j, ratio = j[order], ratio[order]
    counts = np.bincount(j, minlength=natoms)
    starts = np.cumsum(counts) - counts
    slot = np.arange(nedges) - starts[j]
    threshold = np.empty(natoms)
    width = int(counts.max())
    if natoms * width <= 4 * nedges + 1024:  # little padding: one matrix
        x = np.full((natoms, width), np.inf)
        x.reshape(-1)[j * width + slot] = ratio
        x.sort(axis=1)
        kept = split_sizes(x, counts, cc_cutoff=cc_cutoff, max_iter=max_iter)
        threshold = x[np.arange(natoms), kept - 1]
    else:  # bucket atoms by count so that one crowded atom does not widen every row
        bucket = np.ceil(np.log2(np.maximum(counts, 2))).astype(np.int64)
        bucket[counts == 0] = -1
        row_bucket = bucket[j]
        for b in np.unique(bucket[bucket >= 0]).tolist():
            atoms = np.flatnonzero(bucket == b)
            row_of_atom = np.zeros(natoms, dtype=np.int64)
            row_of_atom[atoms] = np.arange(len(atoms))
            sel = row_bucket == b
            x = np.full((len(atoms), int(counts[atoms].max())), np.inf)
            x[row_of_atom[j[sel]], slot[sel]] = ratio[sel]
            x.sort(axis=1)
            kept = split_sizes(x, counts[atoms], cc_cutoff=cc_cutoff, max_iter=max_iter)
            threshold[atoms] = x[np.arange(len(atoms)), kept - 1]
    # Ties are never split, so the kept prefix is exactly the ratios up to its largest.
    keep = ratio <= threshold[j]
    if order is None:
        return keep
    mask = np.empty(nedges, dtype=bool)
    mask[order] = keep
    return mask


def split_sizes(
    x: NDArray[np.float64], counts: NDArray[np.int64], *, cc_cutoff: float, max_iter: int
) -> NDArray[np.int64]:
    """(n,) how many of each row's smallest ratios are kept.

    Args:
        x: (n, K) each row holds an atom's ratios sorted ascending, padded with +inf.
        counts: (n,) number of real ratios per row.
    """
    prefix = np.cumsum(x, axis=1)  # prefix[:, p - 1] = S_p; inf padding never enters S_p, p <= k
    kept = counts.astype(np.int64)
    rows = np.flatnonzero(kept > 1)
    distinct = x[:, :-1] < x[:, 1:]  # a split between p-1 and p separates different values
    sizes = np.arange(1, x.shape[1], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # padding; masked by valid
        for _ in range(max_iter):
            if rows.size == 0:
                break
            k = kept[rows]
            width = int(k.max()) - 1  # left sizes p = 1..width
            p = sizes[:width]
            left = prefix.take(rows, axis=0)[:, :width]
            right = prefix.reshape(-1).take(rows * prefix.shape[1] + k - 1)[:, None] - left
            score = left * left / p + right * right / (k[:, None] - p)
            valid = distinct.take(rows, axis=0)[:, :width] & (p < k[:, None])
            score[~valid] = -np.inf
            best = np.argmax(score, axis=1)
            at = np.arange(len(rows))
            size = best + 1
            c1 = left[at, best] / size
            c2 = right[at, best] / (k - size)
            split = valid[at, best] & (np.abs(c1 - c2) > cc_cutoff)
            kept[rows[split]] = size[split]
            rows = rows[split & (size > 1)]
    return kept
