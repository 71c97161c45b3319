"""The exact 1-D 2-means neighbour selection."""

from __future__ import annotations

import numpy as np
import pytest

from ml.graphs.cluster import select_neighbors


def reference_loop(x: np.ndarray, cc_cutoff: float = 0.03, max_iter: int = 10) -> np.ndarray:
    """Kept mask by the definition, computed the slow way (direct sums of squares)."""
    keep = np.ones(len(x), dtype=bool)
    for _ in range(max_iter):
        vals = np.sort(x[keep])
        if len(vals) <= 1:
            break
        best, best_sse = None, np.inf
        for p in range(1, len(vals)):
            if vals[p - 1] == vals[p]:
                continue  # never split equal values
            left, right = vals[:p], vals[p:]
            sse = ((left - left.mean()) ** 2).sum() + ((right - right.mean()) ** 2).sum()
            if sse < best_sse:
                best, best_sse = p, sse
        if best is None:
            break
        c1, c2 = vals[:best].mean(), vals[best:].mean()
        if abs(c1 - c2) <= cc_cutoff:
            break
        keep &= x <= vals[best - 1]
    return keep


def one_atom(x: list[float] | np.ndarray, **kw) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = np.asarray(x, dtype=np.float64)
    return select_neighbors(np.zeros(len(x), dtype=np.int64), x, 1, **kw)


def test_two_shells_keep_the_nearer() -> None:
    x = [0.71, 0.70, 0.90, 0.70, 0.91, 0.71]
    assert one_atom(x).tolist() == [True, True, False, True, False, True]


def test_all_equal_keeps_all() -> None:
    assert one_atom([0.8] * 12).all()


def test_single_candidate_is_kept() -> None:
    assert one_atom([0.9]).tolist() == [True]


def test_gap_below_cutoff_keeps_all() -> None:
    assert one_atom([0.70, 0.71, 0.72, 0.725]).all()
    assert one_atom([0.70, 0.75], cc_cutoff=0.06).all()
    assert one_atom([0.70, 0.75]).tolist() == [True, False]


def test_ties_are_never_split() -> None:
    # Five equal nearest ratios, then a far one: the five stay together.
    x = [0.6, 0.6, 0.6, 0.6, 0.6, 0.95]
    assert one_atom(x).tolist() == [True] * 5 + [False]


def test_repeated_splits_and_max_iter() -> None:
    x = np.array([0.1, 0.2, 0.4, 0.8])  # each split peels off the largest
    assert one_atom(x).tolist() == [True, False, False, False]
    assert one_atom(x, max_iter=1).tolist() == [True, True, True, False]
    assert one_atom(x, max_iter=2).tolist() == [True, True, False, False]
    assert one_atom(x, max_iter=0).all()


def test_no_candidates() -> None:
    assert select_neighbors(np.zeros(0, np.int64), np.zeros(0), 3).shape == (0,)


@pytest.mark.parametrize("seed", range(30))
def test_matches_definition_on_random_atoms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    natoms = 12
    counts = rng.integers(0, 40, natoms)
    j = np.repeat(np.arange(natoms), counts)
    # Ratios from a few shells with noise, some exactly repeated (ties).
    shells = np.sort(rng.uniform(0.5, 1.0, 5))
    x = shells[rng.integers(0, 5, len(j))] + rng.normal(0, 0.01, len(j)) * (
        rng.random(len(j)) < 0.5
    )
    mask = select_neighbors(j, x, natoms)
    for a in range(natoms):
        assert mask[j == a].tolist() == reference_loop(x[j == a]).tolist()


def test_unsorted_centres() -> None:
    rng = np.random.default_rng(1)
    j = rng.integers(0, 5, 200)
    x = rng.uniform(0.5, 1.0, 200)
    order = np.argsort(j, kind="stable")
    sorted_mask = select_neighbors(j[order], x[order], 5)
    assert np.array_equal(select_neighbors(j, x, 5)[order], sorted_mask)
