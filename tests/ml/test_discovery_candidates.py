"""Candidate generation: the substitution table against pymatgen, scoring, charge balance,
duplicates, composition targets and the geometry helpers (pure, no database)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ml.discovery import (
    Parent,
    Target,
    generate_candidates,
    reduced_key,
    scale_lattice,
    substitute,
    substitution_table,
)

Li, OX, F, Na, Mg, Cl, K, Fe, Cu, Zn, Al, Ni = 3, 8, 9, 11, 12, 17, 19, 26, 29, 30, 13, 28


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    return substitution_table()


@pytest.fixture(scope="module")
def pmg():  # type: ignore[no-untyped-def]
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionProbability,
    )

    return SubstitutionProbability()


def test_table_equals_pymatgen_cond_prob(table, pmg) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    n = len(table.species)
    assert n == len(pmg.species)
    pairs = rng.integers(n, size=(3000, 2))
    for i, j in pairs:
        want = pmg.cond_prob(table.species[i], table.species[j])
        assert table.cond[i, j] == pytest.approx(want, rel=1e-12)
    fe2 = table.index["Fe2+"]
    assert table.z[fe2] == Fe and table.oxidation[fe2] == 2


def _nacl(key: int, z1: int, z2: int, kind: str = "NaCl") -> Parent:
    a, b = sorted((z1, z2))
    return Parent(key, (a, b), (4, 4), kind)


def test_probability_is_the_product_of_pymatgen_pair_terms(table, pmg) -> None:  # type: ignore[no-untyped-def]
    cands = generate_candidates([_nacl(1, Na, Cl)], [Target((Li, F))], table, min_probability=0)
    assert len(cands) == 1  # Li+/F- is the only charge-balanced map of a 1:1 cell
    c = cands[0]
    assert c.charge_checked
    assert json.loads(c.species_map) == {"Na+": "Li+", "Cl-": "F-"}
    want = pmg.cond_prob("Li+", "Na+") * pmg.cond_prob("F-", "Cl-")
    assert c.probability == pytest.approx(want, rel=1e-12)
    assert c.composition == reduced_key((Li, F), (1, 1))


def test_charge_balance_rejects_unbalanced_maps(table) -> None:  # type: ignore[no-untyped-def]
    # Na+Cl- into Li-OX: Li+ and O2- cannot balance 1:1, whatever the probability
    assert generate_candidates([_nacl(1, Na, Cl)], [Target((Li, OX))], table,
                               min_probability=0) == []
    # into Mg-OX they can (Mg2+ O2-)
    cands = generate_candidates([_nacl(1, Na, Cl)], [Target((OX, Mg))], table, min_probability=0)
    assert [json.loads(c.species_map) for c in cands] == [{"Na+": "Mg2+", "Cl-": "O2-"}]


def test_min_probability_filters(table) -> None:  # type: ignore[no-untyped-def]
    every = generate_candidates([_nacl(1, Na, Cl)], [Target((OX, Mg))], table, min_probability=0)
    p = every[0].probability
    assert generate_candidates([_nacl(1, Na, Cl)], [Target((OX, Mg))], table,
                               min_probability=p * 1.01) == []
    assert len(generate_candidates([_nacl(1, Na, Cl)], [Target((OX, Mg))], table,
                                   min_probability=p * 0.99)) == 1


def test_duplicates_keep_the_most_probable_parent(table) -> None:  # type: ignore[no-untyped-def]
    parents = [_nacl(1, Na, Cl), _nacl(2, K, Cl), _nacl(3, Na, Cl, kind="CsCl")]
    cands = generate_candidates(parents, [Target((Li, F))], table, min_probability=0)
    # same composition: one per structure type
    assert sorted(c.parent.type_key for c in cands) == ["CsCl", "NaCl"]
    nacl = next(c for c in cands if c.parent.type_key == "NaCl")
    alone = {p.key: generate_candidates([p], [Target((Li, F))], table, min_probability=0)[0]
             for p in parents[:2]}
    best = max(alone.values(), key=lambda c: c.probability)
    assert nacl.parent.key == best.parent.key and nacl.probability == best.probability
    assert cands == sorted(cands, key=lambda c: -c.probability)


def test_parents_without_oxidation_states_use_element_probabilities(table) -> None:  # type: ignore[no-untyped-def]
    cuzn = Parent(7, (Cu, Zn), (1, 1), "CsCl")
    cands = generate_candidates([cuzn], [Target((Al, Ni))], table, min_probability=0)
    assert {c.composition for c in cands} == {reduced_key((Al, Ni), (1, 1))}
    c = cands[0]
    assert not c.charge_checked
    m = json.loads(c.species_map)
    assert set(m) == {"Cu", "Zn"}
    want = table.element_cond[Ni if m["Cu"] == "Ni" else Al, Cu] * \
        table.element_cond[Al if m["Zn"] == "Al" else Ni, Zn]
    assert c.probability == pytest.approx(want)


def test_composition_targets_and_other_element_counts(table) -> None:  # type: ignore[no-untyped-def]
    fluorite = Parent(5, (9, 20), (8, 4), "CaF2")  # CaF2
    rocksalt = _nacl(1, Na, Cl)
    wanted = frozenset({reduced_key((Mg, F), (1, 2))})
    cands = generate_candidates([fluorite, rocksalt], [Target((F, Mg), wanted)], table,
                                min_probability=0)
    assert [c.parent.key for c in cands] == [5]
    assert cands[0].composition == reduced_key((Mg, F), (1, 2))
    # a parent with a different number of elements never reaches the system
    assert generate_candidates([fluorite], [Target((Li, F, OX))], table, min_probability=0) == []


def test_substitute_and_scale() -> None:
    z = np.array([11, 17, 11, 17])
    assert substitute(z, [11, 17], [3, 9]).tolist() == [3, 9, 3, 9]
    assert substitute(z, [11, 17], [17, 11]).tolist() == [17, 11, 17, 11]  # a swap
    lat = np.diag([2.0, 3.0, 4.0])
    out = scale_lattice(lat, 4, 10.0)
    assert abs(np.linalg.det(out)) / 4 == pytest.approx(10.0)
    diag = np.diag(out) / np.diag(lat)
    assert np.allclose(diag, diag[0]) and np.count_nonzero(out) == 3  # uniform
    assert np.array_equal(scale_lattice(lat, 4, math.nan), lat)


def test_equals_a_plain_pymatgen_enumeration(table, pmg) -> None:  # type: ignore[no-untyped-def]
    """Every parent with oxidation states, every species map, pymatgen's own scoring: the
    best map per (composition, structure type) is what the vectorised search keeps."""
    import itertools

    from ml.discovery.substitution import oxidation_guess

    parents = [_nacl(1, Na, Cl), _nacl(2, K, Cl), Parent(3, (9, 20), (8, 4), "CaF2"),
               Parent(4, (8, 12, 13), (8, 2, 4), "spinel"), Parent(5, (8, 20, 22), (3, 1, 1),
                                                                   "perovskite"),
               Parent(6, (8, 26), (1, 1), "NaCl"), Parent(7, (16, 30), (1, 1), "ZnS")]
    targets = [Target((OX, Mg)), Target((Li, F)), Target((OX, Mg, Al)), Target((OX, 38, 22)),
               Target((9, 26))]
    threshold = 1e-4
    want: dict = {}
    for t in targets:
        for p in parents:
            if len(p.z) != len(t.elements):
                continue
            red = reduced_key(p.z, p.counts)
            guess = oxidation_guess(red)
            old = [table.species[table.lookup(z, s)] for (z, _), s in zip(red, guess,
                                                                          strict=True)]
            for perm in itertools.permutations(t.elements):
                choices = [[table.species[i] for i in table.species_of(z)] for z in perm]
                for new in itertools.product(*choices):
                    ox = [table.oxidation[table.index[s]] for s in new]
                    if sum(n * o for n, o in zip(p.counts, ox, strict=True)) != 0:
                        continue
                    prob = pmg.cond_prob_list(list(new), old)
                    if prob < threshold:
                        continue
                    key = (reduced_key(perm, p.counts), p.type_key)
                    if key not in want or prob > want[key][0]:
                        want[key] = (prob, p.key)
    got = generate_candidates(parents, targets, table, min_probability=threshold)
    assert {c.dedup_key: (pytest.approx(c.probability, rel=1e-9), c.parent.key)
            for c in got} == want
    assert len(want) >= 5
