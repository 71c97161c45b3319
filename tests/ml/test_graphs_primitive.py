"""The primitive-cell step: pymatgen's result, called only when pymatgen can reduce the cell."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml.graphs import build_crystal_graph
from ml.graphs.primitive import may_reduce, primitive_cell
from ml.graphs.synthetic import perturbed, random_cell, supercell

ROOT = Path(__file__).resolve().parents[2]
STRUCTURES = json.loads((ROOT / "tests" / "data" / "graphs_reference.json").read_text())[
    "structures"
]
PROTOTYPES = [
    (np.array(s["lattice"]), np.array(s["frac_coords"]), np.array(s["atomic_numbers"]))
    for s in STRUCTURES
]


def smallest(cell: tuple):  # type: ignore[no-untyped-def]
    """The reference's get_smallest: get_primitive_structure until the size stops changing."""
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice(cell[0]), cell[2].tolist(), cell[1])
    p = s.get_primitive_structure()
    while True:
        t = p.get_primitive_structure()
        if len(t) == len(p):
            return s, p
        p = t


def sample_cells() -> list[tuple]:
    rng = np.random.default_rng(4)
    cells = list(PROTOTYPES)
    for k, proto in enumerate(PROTOTYPES):
        big = supercell(proto, np.diag([2, 1, 1]) if k % 2 else [[1, 1, 0], [0, 1, 1], [1, 0, 1]])
        cells.append(big)  # exact supercell: reduces
        cells.append(perturbed(rng, big, strain=0.01, displacement=0.03))  # within tolerance
        cells.append(perturbed(rng, big, strain=0.0, displacement=0.4))  # mostly beyond it
    for n in (2, 4, 6):
        lattice, frac, z = random_cell(rng, n)
        cells.append((lattice, frac, np.full(n, z[0])))  # one element: gcd n
    return cells


SAMPLE = sample_cells()


def test_reference_structures_are_kept_as_given() -> None:
    """All 24 have primitive_nsites == natoms: the reference keeps them, and so do we."""
    for lattice, frac, z in PROTOTYPES:
        out = primitive_cell(lattice, frac, z)
        assert out[3] is False
        assert out[0] is lattice and out[1] is frac and out[2] is z
        assert not may_reduce(lattice, frac, z, 0.25)  # not even pymatgen is called


@pytest.mark.parametrize("k", range(len(SAMPLE)))
def test_same_size_as_reference_get_smallest(k: int) -> None:
    cell = SAMPLE[k]
    source, prim = smallest(cell)
    lattice, frac, z, reduced = primitive_cell(*cell)
    assert len(z) == len(prim)
    assert reduced == (len(prim) < len(source))
    if reduced:  # exactly pymatgen's cell, as the reference builds on
        assert np.array_equal(lattice, prim.lattice.matrix)
        assert np.array_equal(frac, prim.frac_coords)
        assert z.tolist() == list(prim.atomic_numbers)
    else:
        assert lattice is cell[0]


@pytest.mark.parametrize("k", range(len(SAMPLE)))
def test_may_reduce_predicts_pymatgen(k: int) -> None:
    """The numpy pre-check is True exactly when pymatgen reduces (never False when it does)."""
    source, prim = smallest(SAMPLE[k])
    assert may_reduce(*SAMPLE[k], 0.25) == (len(prim) < len(source))


def test_sample_exercises_both_outcomes() -> None:
    outcomes = [primitive_cell(*c)[3] for c in SAMPLE]
    assert sum(outcomes) >= 30 and len(outcomes) - sum(outcomes) >= 30


def test_graph_of_supercell_is_graph_of_primitive_cell() -> None:
    proto = PROTOTYPES[7]  # spinel, 14 atoms
    g = build_crystal_graph(*proto)
    g2 = build_crystal_graph(*supercell(proto, np.diag([1, 2, 1])))
    assert g2.natoms == 14 and g2.nedges == g.nedges
    assert sorted(g2.atomic_numbers.tolist()) == sorted(g.atomic_numbers.tolist())
