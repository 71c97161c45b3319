"""The exact image search against brute force, and invariances of the graphs.

Brute force: every offset in a large box, with the reference's arithmetic, all ordered pairs
computed directly (no mirroring, no lattice reduction). The exact search must return exactly
the same candidates, in the same order, with bit-identical distances.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ml.graphs import CrystalGraph, build_crystal_graph, build_crystal_graphs, neighbor_lists
from ml.graphs.builder import graphs_of_cells, prepare
from ml.graphs.neighbors import Candidates, find_candidates
from ml.graphs.synthetic import random_cell, random_unimodular, rebase, supercell

ROOT = Path(__file__).resolve().parents[2]
STRUCTURES = json.loads((ROOT / "tests" / "data" / "graphs_reference.json").read_text())[
    "structures"
]
PROTOTYPES = [
    (np.array(s["lattice"]), np.array(s["frac_coords"]), np.array(s["atomic_numbers"]))
    for s in STRUCTURES
]
NAMES = [s["name"] for s in STRUCTURES]


def reduced(lattice: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """The reference's reduced coordinates (through Cartesian ones)."""
    return np.matmul(np.dot(frac, lattice), np.linalg.inv(lattice.T).T)


def brute_force(
    lattice: np.ndarray, red: np.ndarray, radii: np.ndarray, factor: float, box: int
) -> Candidates:
    """Every (j, i, n) with |n_k| <= box and 1e-8 < d < cutoff, computed directly."""
    offsets = np.array(list(itertools.product(range(-box, box + 1), repeat=3)))
    cutoff = (radii[:, None] + radii[None, :]) * factor
    rij = (red[None, :, None, :] - red[:, None, None, :]) + offsets  # [j, i, k] = t_i - t_j + n
    vec = np.matmul(rij.reshape(-1, 3), lattice).reshape(rij.shape)
    dist = np.sqrt(
        vec[..., 0] * vec[..., 0] + vec[..., 1] * vec[..., 1] + vec[..., 2] * vec[..., 2]
    )
    cut = cutoff[:, :, None]
    j, i, k = np.nonzero((dist < cut) & (dist > 1e-8))
    d = dist[j, i, k]
    return Candidates(np.zeros_like(j), j, i, offsets[k], d, d / cutoff[j, i])


def needed_box(lattice: np.ndarray, red: np.ndarray, cmax: float) -> int:
    recip = np.sqrt((np.linalg.inv(lattice) ** 2).sum(axis=0))
    span = np.ptp(red, axis=0) if len(red) > 1 else np.zeros(3)
    return int(np.ceil((cmax * recip + span).max())) + 1


def assert_same(a: Candidates, b: Candidates) -> None:
    assert np.array_equal(a.j, b.j)
    assert np.array_equal(a.i, b.i)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.dist, b.dist)  # bit for bit
    assert np.array_equal(a.ratio, b.ratio)


def check_against_brute_force(cell: tuple, images: str = "exact") -> Candidates:
    p = prepare(*cell, primitive=False).search
    red = reduced(p.lattice, p.frac)
    cmax = 2 * float(p.radii.max()) * p.factor
    box = 1 if images == "27" else needed_box(p.lattice, red, cmax)
    assert len(red) ** 2 * (2 * box + 1) ** 3 < 3e7, "brute force too large for a test"
    ours = find_candidates(p.lattice, red, p.radii, p.factor, images=images)
    assert_same(ours, brute_force(p.lattice, red, p.radii, p.factor, box))
    return ours


# ---------------------------------------------------------------- exact search
@pytest.mark.parametrize("seed", range(12))
def test_exact_search_equals_brute_force_on_random_cells(seed: int) -> None:
    rng = np.random.default_rng(seed)
    check_against_brute_force(random_cell(rng, int(rng.integers(1, 9))))


@pytest.mark.parametrize("seed", range(12))
def test_exact_search_equals_brute_force_on_skewed_cells(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    base = (
        PROTOTYPES[seed % len(PROTOTYPES)]
        if seed % 2
        else random_cell(rng, int(rng.integers(1, 4)))
    )
    for _ in range(20):  # a basis skewed enough to need images beyond -1..1
        ours = check_against_brute_force(rebase(base, random_unimodular(rng, steps=5, scale=2)))
        if np.abs(ours.image).max() > 1:
            break
    assert np.abs(ours.image).max() > 1


def test_reference27_equals_brute_force_on_27_images() -> None:
    rng = np.random.default_rng(7)
    for _ in range(6):
        check_against_brute_force(rebase(random_cell(rng, 3), random_unimodular(rng, 3, 2)), "27")


def test_unwrapped_coordinates() -> None:
    rng = np.random.default_rng(3)
    lattice, frac, z = random_cell(rng, 4)
    check_against_brute_force((lattice, frac + rng.integers(-3, 4, frac.shape), z))


def test_mirrored_pairs_are_bit_identical() -> None:
    """(j -> i, n) and (i -> j, -n) have the same distance bit for bit."""
    rng = np.random.default_rng(11)
    for _ in range(5):
        lattice, frac, z = random_cell(rng, 6)
        p = prepare(lattice, frac, z, primitive=False).search
        c = find_candidates(p.lattice, reduced(p.lattice, p.frac), p.radii, p.factor)
        table = {
            (j, i, *n): d
            for j, i, n, d in zip(
                c.j.tolist(), c.i.tolist(), c.image.tolist(), c.dist.tolist(), strict=True
            )
        }
        for (j, i, a, b, cc), d in table.items():
            assert table[(i, j, -a, -b, -cc)] == d


def test_too_large_search_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_BOX (pair, image) rows a cell fails alone; the rest of the batch is built."""
    import ml.graphs.neighbors as neighbors
    from ml.graphs import GraphBuildError

    small, big = PROTOTYPES[9], supercell(PROTOTYPES[0], np.diag([3, 3, 3]))
    expected = build_crystal_graph(*small)
    monkeypatch.setattr(neighbors, "MAX_BOX", 2_000)
    (g,) = graphs_of_cells([prepare(*big, primitive=False)])
    assert isinstance(g, GraphBuildError) and "too large" in str(g)
    out = graphs_of_cells([prepare(*small), prepare(*big, primitive=False), prepare(*small)])
    assert out[0] == expected and out[2] == expected
    assert isinstance(out[1], GraphBuildError)


# ---------------------------------------------------------------- invariances
def neighbourhoods(g: CrystalGraph) -> Counter:
    """Multiset over atoms of (Z, sorted multiset of (neighbour Z, distance to 1e-5 Å))."""
    out: Counter = Counter()
    z = g.atomic_numbers.tolist()
    for j, nbrs in enumerate(neighbor_lists(g)):
        start = int(np.searchsorted(g.edge_src, j))
        dists = g.edge_dist[start : start + len(nbrs)].tolist()
        out[
            (z[j], tuple(sorted((z[i], round(d, 5)) for i, d in zip(nbrs, dists, strict=True))))
        ] += 1
    return out


def edge_set(g: CrystalGraph, perm: np.ndarray | None = None) -> set:
    src, dst = g.edge_src, g.edge_dst
    if perm is not None:
        src, dst = perm[src], perm[dst]
    return set(
        zip(
            src.tolist(),
            dst.tolist(),
            map(tuple, g.edge_image.tolist()),
            g.edge_dist.tolist(),
            strict=True,
        )
    )


def _cells() -> list[tuple]:
    rng = np.random.default_rng(21)
    return PROTOTYPES + [random_cell(rng, int(rng.integers(1, 12))) for _ in range(12)]


CELLS = _cells()


@pytest.mark.parametrize("k", range(len(CELLS)))
def test_permutation_invariance(k: int) -> None:
    lattice, frac, z = CELLS[k]
    perm = np.random.default_rng(k).permutation(len(z))
    g = build_crystal_graph(lattice, frac, z)
    gp = build_crystal_graph(lattice, frac[perm], z[perm])
    assert edge_set(gp, perm) == edge_set(g)


@pytest.mark.parametrize("k", range(len(CELLS)))
def test_origin_shift_invariance(k: int) -> None:
    lattice, frac, z = CELLS[k]
    rng = np.random.default_rng(k)
    g = build_crystal_graph(lattice, frac, z)
    shifted = build_crystal_graph(lattice, frac + rng.random(3), z)
    assert neighbor_lists(shifted) == neighbor_lists(g)
    assert np.array_equal(shifted.edge_image, g.edge_image)
    np.testing.assert_allclose(shifted.edge_dist, g.edge_dist, rtol=1e-6)
    wrapped = build_crystal_graph(lattice, (frac + rng.random(3)) % 1.0, z)
    assert neighbourhoods(wrapped) == neighbourhoods(g)


@pytest.mark.parametrize("k", range(len(CELLS)))
def test_isotropic_scaling_invariance(k: int) -> None:
    lattice, frac, z = CELLS[k]
    g = build_crystal_graph(lattice, frac, z)
    scaled = build_crystal_graph(lattice * 1.37, frac, z)
    assert neighbor_lists(scaled) == neighbor_lists(g)
    assert np.array_equal(scaled.edge_image, g.edge_image)
    np.testing.assert_allclose(scaled.edge_dist, g.edge_dist * 1.37, rtol=1e-6)


@pytest.mark.parametrize("k", range(len(CELLS)))
def test_basis_invariance(k: int) -> None:
    """Another basis of the same lattice (a skewed one) gives the same neighbourhoods."""
    rng = np.random.default_rng(1000 + k)
    g = build_crystal_graph(*CELLS[k])
    other = build_crystal_graph(*rebase(CELLS[k], random_unimodular(rng, steps=4, scale=2)))
    assert neighbourhoods(other) == neighbourhoods(g)


def test_reference27_misses_neighbours_in_skewed_cells() -> None:
    """The reference's 27 offsets depend on the basis; the exact search does not."""
    fcc = next(c for c, s in zip(PROTOTYPES, STRUCTURES, strict=True) if s["name"] == "Cu_fcc")
    u = [[1, 2, 0], [0, 1, 2], [0, 0, 1]]
    assert round(np.linalg.det(u)) == 1
    skewed = rebase(fcc, u)
    assert build_crystal_graph(*skewed).nedges == 12
    assert build_crystal_graph(*skewed, recipe="cgc-reference27").nedges < 12


@pytest.mark.parametrize("k", range(len(PROTOTYPES)))
@pytest.mark.parametrize(
    "matrix", [np.diag([2, 1, 1]), np.diag([1, 2, 2]), [[1, 1, 0], [0, 1, 1], [1, 0, 1]]]
)
def test_supercell_invariance(k: int, matrix) -> None:  # type: ignore[no-untyped-def]
    cell = PROTOTYPES[k]
    g = build_crystal_graph(*cell)
    big = supercell(cell, matrix)
    det = round(abs(np.linalg.det(np.asarray(matrix))))
    # Without the primitive step: every atom of the supercell sees what its original sees.
    (gs,) = graphs_of_cells([prepare(*big, primitive=False)])
    assert isinstance(gs, CrystalGraph)
    assert neighbourhoods(gs) == Counter({key: det * n for key, n in neighbourhoods(g).items()})
    # With it (the public API): the supercell is reduced back to a primitive cell.
    gp = build_crystal_graph(*big)
    assert gp.natoms == g.natoms
    assert neighbourhoods(gp) == neighbourhoods(g)


def test_batched_search_is_bit_identical_to_single_cells() -> None:
    from ml.graphs.neighbors import search_cells

    rng = np.random.default_rng(8)
    cells = [random_cell(rng, n) for n in (1, 2, 2, 3, 5, 5, 5, 8, 13)] + PROTOTYPES
    cells = [
        rebase(c, random_unimodular(rng, 2, 1)) if k % 3 == 0 else c for k, c in enumerate(cells)
    ]
    searches = [prepare(*c, primitive=False).search for c in cells]
    batch, errors = search_cells(searches)
    assert not errors
    for k, s in enumerate(searches):
        alone = find_candidates(s.lattice, reduced(s.lattice, s.frac), s.radii, s.factor)
        sel = batch.cell == k
        assert_same(Candidates(*(np.asarray(v)[sel] for v in batch)), alone)


def test_batch_equals_single_on_random_cells() -> None:
    rng = np.random.default_rng(99)
    cells = [
        rebase(random_cell(rng, int(rng.integers(1, 20))), random_unimodular(rng, 2, 1))
        for _ in range(40)
    ]
    for g, cell in zip(build_crystal_graphs(cells), cells, strict=True):
        assert g == build_crystal_graph(*cell)


def test_lll_reduce_gives_a_short_unimodular_basis() -> None:
    from ml.graphs.lattice import lll_reduce

    rng = np.random.default_rng(2)
    for _ in range(20):
        base = random_cell(rng, 1)[0]
        skewed = random_unimodular(rng, steps=6, scale=3) @ base
        u = lll_reduce(skewed)
        assert round(abs(np.linalg.det(u))) == 1 and np.array_equal(u, np.rint(u))
        reduced = u @ skewed
        assert np.linalg.norm(reduced, axis=1).max() <= np.linalg.norm(skewed, axis=1).max() + 1e-9
        # LLL on 3 vectors: the shortest is within a factor 2 of the shortest lattice vector
        assert (
            np.linalg.norm(reduced, axis=1).min() <= 2 * np.linalg.norm(base, axis=1).min() + 1e-9
        )
