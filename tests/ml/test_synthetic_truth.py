"""The synthetic truth: its formulas on known crystals, invariances, noise, and a convex hull."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from matplat.ingest.sample_chem import make_structure
from ml.graphs.synthetic import supercell
from ml.synthetic_truth import (
    C_U,
    ELECTRONEGATIVITY,
    G_ION,
    I_METAL,
    NOISE_SIGMA,
    PAIR_ENERGY,
    PREFERRED_CN,
    PROPERTIES,
    add_noise,
    atomic_numbers_of,
    noise_floor_mae,
    synthetic_truth,
    synthetic_truths,
)

FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
BCC = np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])


def rocksalt(a: str, x: str, size: float = 5.6):
    return FCC * size, np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]), atomic_numbers_of([a, x])


def naive_truth(lattice, frac, z) -> dict[str, float]:
    """The module docstring's formulas, atom by atom over the graph's neighbour lists."""
    from ml.graphs import build_crystal_graph, neighbor_lists
    from ml.graphs.elements import RADII
    from ml.synthetic_truth import MAGNETIC_MOMENT

    g = build_crystal_graph(lattice, frac, z)
    zs = [int(v) for v in g.atomic_numbers]
    chi = ELECTRONEGATIVITY
    moments = {int(atomic_numbers_of([k])[0]): v for k, v in MAGNETIC_MOMENT.items()}
    fe = ion = mag = vol = 0.0
    for i, nbrs in enumerate(neighbor_lists(g)):
        zi, cn = zs[i], len(nbrs)
        if cn:
            fe += sum(PAIR_ENERGY[zi, zs[j]] for j in nbrs) / cn
            ion += sum(abs(chi[zi] - chi[zs[j]]) for j in nbrs) / cn
        fe += C_U * (cn - PREFERRED_CN[zi]) ** 2
        mag += moments.get(zi, 0.0) * min(1.0, 6.0 / max(cn, 1))
        vol += 4 * math.pi / 3 * RADII[zi] ** 3 / (0.74 * (min(max(cn, 4), 14) / 12) ** 0.4)
    n = len(zs)
    return {"formation_energy": fe / n, "band_gap": G_ION * max(0.0, ion / n - I_METAL),
            "magnetization": mag / n, "volume_per_atom": vol / n}


def test_the_documented_formulas_on_known_and_generated_crystals() -> None:
    salt = synthetic_truth(*rocksalt("Na", "Cl"))
    assert salt["formation_energy"] < -1.0 and salt["band_gap"] > 1.0  # an ionic insulator
    assert salt["magnetization"] == 0.0
    rng = np.random.default_rng(2)
    cells = [rocksalt("Na", "Cl"), rocksalt("Fe", "O", 4.3)] + [
        (s.lattice, s.frac, atomic_numbers_of(s.species))
        for s in (make_structure(rng) for _ in range(30))
    ]
    for cell in cells:
        got, want = synthetic_truth(*cell), naive_truth(*cell)
        for p in PROPERTIES:
            assert got[p] == pytest.approx(want[p], abs=1e-9), p


def test_metals_and_non_magnetic_materials_are_exactly_zero() -> None:
    cu = synthetic_truth(FCC * 3.6, np.zeros((1, 3)), [29])
    assert cu["band_gap"] == 0.0 and cu["magnetization"] == 0.0
    assert cu["formation_energy"] == pytest.approx(C_U * (12 - PREFERRED_CN[29]) ** 2)
    fe = synthetic_truth(BCC * 2.87, np.zeros((1, 3)), [26])
    assert fe["band_gap"] == 0.0 and fe["magnetization"] > 0.5  # bcc iron is magnetic


def test_values_do_not_depend_on_scale_or_supercell_except_the_volume() -> None:
    lat, frac, z = rocksalt("Mg", "O", 4.2)
    base = synthetic_truth(lat, frac, z)
    scaled = synthetic_truth(lat * 1.3, frac, z)
    big = synthetic_truth(*supercell((lat, frac, z), np.diag([2, 1, 3])))
    for p in PROPERTIES:
        assert big[p] == pytest.approx(base[p]), p
        if p != "volume_per_atom":
            assert scaled[p] == pytest.approx(base[p]), p
    assert base["volume_per_atom"] == pytest.approx(scaled["volume_per_atom"])  # truth, not cell


def test_batched_equals_single_and_bad_structures_give_nan() -> None:
    rng = np.random.default_rng(4)
    cells = [make_structure(rng) for _ in range(40)]
    items = [(s.lattice, s.frac, atomic_numbers_of(s.species)) for s in cells]
    items.insert(7, (np.zeros((3, 3)), np.zeros((1, 3)), np.array([8])))  # degenerate lattice
    batch = synthetic_truths(items)
    assert all(math.isnan(batch[p][7]) for p in PROPERTIES)
    for k in (0, 5, 20, 40):
        one = synthetic_truth(*items[k])
        for p in PROPERTIES:
            assert batch[p][k] == pytest.approx(one[p]), (k, p)


def test_noise_has_its_stated_size_and_keeps_exact_zeros() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    truth = {"formation_energy": np.full(n, -1.0), "volume_per_atom": np.full(n, 20.0),
             "band_gap": np.where(np.arange(n) % 2 == 0, 0.0, 3.0),
             "magnetization": np.where(np.arange(n) % 2 == 0, 0.0, 2.0)}  # fmt: skip
    noisy = add_noise(truth, rng)
    for p in PROPERTIES:
        err = np.abs(noisy[p] - truth[p])
        positive = truth[p] != 0
        assert np.all(err[~positive] == 0.0), p  # metals and non-magnetic stay exactly 0
        assert err[positive].mean() == pytest.approx(noise_floor_mae(p), rel=0.05), p
    assert noise_floor_mae("formation_energy") == pytest.approx(0.03 * math.sqrt(2 / math.pi))
    assert NOISE_SIGMA["formation_energy"] == 0.03


def test_the_generated_chemistry_has_stable_and_unstable_compounds() -> None:
    """pymatgen's convex hull of each binary system (elements at 0 eV/atom, as formation
    energies are): some compounds lie on it with a negative formation energy, some above."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    rng = np.random.default_rng(1)
    cells = [make_structure(rng) for _ in range(3000)]
    truth = synthetic_truths((s.lattice, s.frac, atomic_numbers_of(s.species)) for s in cells)
    fe = add_noise(truth, rng)["formation_energy"]
    systems: dict[tuple[str, ...], list[PDEntry]] = defaultdict(list)
    for s, e in zip(cells, fe, strict=True):
        comp = Composition("".join(s.species))
        if len(comp.elements) == 2 and math.isfinite(e):
            systems[tuple(sorted(str(el) for el in comp.elements))].append(
                PDEntry(comp, float(e) * comp.num_atoms))
    on_hull = above = 0
    for elements, entries in systems.items():
        if len(entries) < 3:
            continue
        refs = [PDEntry(Composition(el), 0.0) for el in elements]
        pd = PhaseDiagram(entries + refs)
        for entry in entries:
            ehull = pd.get_e_above_hull(entry, allow_negative=True)
            if ehull <= 1e-9 and pd.get_form_energy_per_atom(entry) < 0:
                on_hull += 1
            elif ehull > 0.01:
                above += 1
    assert on_hull >= 10 and above >= 10, (on_hull, above)
