"""Hull distances and decompositions equal pymatgen's PhaseDiagram on every entry."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element
from stability_data import pymatgen_reference, random_entries, small_systems

from ml.stability.hull import build_hull, evaluate, lp_hull_energy
from ml.stability.systems import Entries, SystemIndex, hull_all


def test_tiny_hulls_equal_pymatgen() -> None:
    """Many systems of up to 7 elements with few entries: the batched k-subset path."""
    entries, rows = small_systems(0)
    res = hull_all(entries)
    assert res.methods.get("small", 0) > 20
    ref = pymatgen_reference(rows)
    for label, (ehull, decomp) in ref.items():
        assert res.e_above_hull[label - 1] == pytest.approx(ehull, abs=1e-6), label
        if ehull > 1e-6:
            ours = _decomposition(res, label)
            assert set(ours) == set(decomp) or _valid(rows, label, ours, ehull)


def _decomposition(res, label: int) -> dict[int, float]:
    sel = res.decomp_entry == label - 1
    return {int(k): float(v) for k, v in zip(res.decomp_label[sel], res.decomp_amount[sel],
                                             strict=True)}


def _valid(rows, label: int, decomp: dict[int, float], ehull: float) -> bool:
    """Does ``decomp`` mix to the entry's composition at energy E − ehull?"""
    comp, e = rows[label - 1]
    total = sum(comp.values())
    mix: dict[int, float] = {}
    energy = 0.0
    for lab, amt in decomp.items():
        if lab < 0:
            c, en = {-lab: 1.0}, 0.0
        else:
            c, en = rows[lab - 1]
        t = sum(c.values())
        for z, n in c.items():
            mix[z] = mix.get(z, 0.0) + amt * n / t
        energy += amt * en
    return (all(abs(mix.get(z, 0.0) - comp.get(z, 0.0) / total) < 1e-7
                for z in set(mix) | set(comp))
            and abs(energy - (e - ehull)) < 1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_pymatgen(seed: int) -> None:
    entries, rows = random_entries(seed)
    ref = pymatgen_reference(rows)
    res = hull_all(entries)
    assert res.left_out == {"no formation energy": 2}
    assert max(len(c) for c, _ in rows) == 6
    checked_decomp = 0
    for label, (ehull, decomp) in ref.items():
        assert res.e_above_hull[label - 1] == pytest.approx(ehull, abs=1e-6), label
        if ehull > 1e-6:
            ours = _decomposition(res, label)
            # Ties (collinear or coplanar hull points) allow several decompositions: ours
            # must then be valid; otherwise it must be pymatgen's.
            if set(ours) == set(decomp):
                assert all(abs(ours[k] - decomp[k]) < 1e-6 for k in ours)
                checked_decomp += 1
            else:
                assert _valid(rows, label, ours, ehull), (label, ours, decomp)
    assert checked_decomp > 100
    assert np.isnan(res.e_above_hull[-2:]).all()


def test_named_cases() -> None:
    entries, rows = random_entries(0, n=0)
    res = hull_all(entries)
    e = dict(zip(range(1, len(rows) + 1), res.e_above_hull, strict=True))
    # Collinear: MgO on the hull, Mg2O on the line Mg–MgO (distance 0), Mg3O above? no: on it.
    assert e[1] == pytest.approx(0.0) and e[4] == pytest.approx(0.0, abs=1e-12)
    assert e[2] == pytest.approx(0.0, abs=1e-12)
    # No stable Cu-Zn compound: distances are the energies themselves (the hull is 0).
    assert [e[6], e[7], e[8]] == pytest.approx([0.05, 0.0, 0.3])
    # Polymorphs: the lower Fe2O3 and its duplicate Fe4O6 are on the hull, the other 0.1 above.
    assert e[9] == 0.0 and e[11] == 0.0 and e[10] == pytest.approx(0.1)
    assert e[12] == pytest.approx(0.12)


def test_lp_fallback_equals_qhull() -> None:
    entries, rows = random_entries(3, n=150)
    fast = hull_all(entries)
    exact = hull_all(entries, method="lp")
    assert exact.methods.get("qhull", 0) == 0
    np.testing.assert_allclose(exact.e_above_hull, fast.e_above_hull, atol=1e-9)


def test_coplanar_points_give_exact_numbers() -> None:
    """Every compound exactly at 0 eV/atom (coplanar with the element references): 0."""
    z = np.array([26, 28, 29])
    fr = np.array([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.25, 0.75]])
    hull = build_hull(z, fr, np.zeros(3), np.array([1, 2, 3]))
    d = evaluate(hull, fr, np.zeros(3))
    np.testing.assert_allclose(d.e_above_hull, 0.0, atol=1e-12)
    # A new point below the hull: negative distance, decomposed into the elements.
    d = evaluate(hull, np.array([[0.2, 0.3, 0.5]]), np.array([-0.25]))
    assert d.e_above_hull[0] == pytest.approx(-0.25)
    assert d.amounts[0].sum() == pytest.approx(1.0)


def test_new_points_vectorised_match_lp() -> None:
    entries, rows = random_entries(5, n=300)
    index = SystemIndex.build(entries)
    s = max(range(len(index.systems)), key=lambda i: len(index.systems[i]))
    elements = np.array(index.systems[s])
    members = [i for i, (c, e) in enumerate(rows) if set(c) <= set(elements.tolist())
               and np.isfinite(e)]
    fr = np.array([[rows[i][0].get(int(z), 0.0) for z in elements] for i in members])
    fr /= fr.sum(axis=1, keepdims=True)
    en = np.array([rows[i][1] for i in members])
    hull = build_hull(elements, fr, en, np.array(members) + 1)
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(len(elements)), size=50)
    e_new = rng.normal(-1.0, 0.5, size=50)
    d = evaluate(hull, x, e_new)
    for i in range(50):
        h, _ = lp_hull_energy(hull.vertices, hull.energies, x[i])
        assert d.hull_energy[i] == pytest.approx(h, abs=1e-9)
        assert d.e_above_hull[i] == pytest.approx(e_new[i] - h, abs=1e-9)
        mix = d.amounts[i][d.products[i] >= 0] @ hull.vertices[d.products[i][d.products[i] >= 0]]
        np.testing.assert_allclose(mix, x[i], atol=1e-9)


def test_one_element_and_missing_elements() -> None:
    entries = Entries.from_dicts([1, 2, 3], [{26: 1}, {26: 2}, {8: 1, 3: 2}], [0.1, -0.05, -0.2])
    res = hull_all(entries)
    # Fe: -0.05 (below the 0 reference) is stable, 0.1 is 0.15 above it; Li2O with neither
    # element in the data is judged against both references at 0.
    np.testing.assert_allclose(res.e_above_hull, [0.15, 0.0, 0.0], atol=1e-12)


def test_distances_of_new_points() -> None:
    """New compositions (some in systems absent from the data) against the known hulls."""
    entries, rows = random_entries(2, n=200)
    query = Entries.from_dicts([0, 0, 0, 0], [{3: 1, 8: 1}, {26: 1, 8: 1, 3: 1}, {79: 1, 8: 1},
                                               {3: 2, 8: 1}], [-3.0, 0.4, -0.2, float("nan")])
    from ml.stability.systems import distances_to_hulls

    d = distances_to_hulls(entries, query)
    for i, (comp, e) in enumerate([({3: 1, 8: 1}, -3.0), ({26: 1, 8: 1, 3: 1}, 0.4),
                                    ({79: 1, 8: 1}, -0.2)]):
        system = set(comp)
        members = [PDEntry(Composition({Element.from_Z(z): c for z, c in cc.items()}),
                           en * sum(cc.values())) for cc, en in rows
                   if set(cc) <= system and np.isfinite(en)]
        refs = [PDEntry(Composition(Element.from_Z(z).symbol), 0.0) for z in system]
        pd = PhaseDiagram(members + refs)
        new = PDEntry(Composition({Element.from_Z(z): c for z, c in comp.items()}),
                      e * sum(comp.values()))
        _, ref = pd.get_decomp_and_e_above_hull(new, allow_negative=True)
        assert d[i] == pytest.approx(ref, abs=1e-6)
    assert d[0] < 0 and np.isnan(d[3])
