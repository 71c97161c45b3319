"""Our whole-number formulas equal pymatgen's, bit for bit in the atomic volume."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

from matplat.ingest.formulas import Formulas, atomic_volume


def pymatgen_formulas(comp: tuple[tuple[int, int], ...]) -> tuple[str, str, float]:
    """The reference: what the ingest computed with pymatgen before."""
    from pymatgen.core import Composition
    from pymatgen.core.periodic_table import Element

    c = Composition({Element.from_Z(z): n for z, n in comp})
    reduced = c.reduced_formula
    red = Composition(reduced)
    v = atomic_volume({int(el.Z): float(a) for el, a in red.items()})
    return reduced, c.formula, v


def same(a: tuple[str, str, float], b: tuple[str, str, float]) -> bool:
    return a[:2] == b[:2] and np.float64(a[2]).tobytes() == np.float64(b[2]).tobytes()


@pytest.mark.parametrize(
    "comp",
    [
        ((8, 1),),  # O -> O2 (special formula)
        ((1, 2),),  # H2 -> H2
        ((3, 2), (8, 2)),  # Li2O2 (peroxide kept)
        ((3, 1), (8, 1)),  # LiO -> Li2O2
        ((26, 4), (15, 4), (8, 16), (3, 4)),  # LiFePO4
        ((26, 2), (16, 3), (8, 12)),  # Fe2(SO4)3: a polyanion
        ((26, 4), (16, 6), (8, 24)),  # the same, doubled
        ((2, 1), (10, 1), (18, 3)),  # noble gases: no electronegativity
        ((85, 1), (87, 1)),  # At, Fr: no radius -> NaN volume
        ((6, 60),),
        ((11, 1), (17, 1)),
        ((92, 3), (94, 1), (8, 8), (1, 6)),
    ],
)
def test_known_compositions(comp: tuple[tuple[int, int], ...]) -> None:
    assert same(Formulas().get(comp), pymatgen_formulas(comp))


def test_random_compositions_match_pymatgen() -> None:
    rng = random.Random(12345)
    table = Formulas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3000):
            k = rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5, 6])
            zs = rng.sample(range(1, 95), k)
            scale = rng.choice([1, 1, 2, 3, 4, 6])
            comp = tuple((z, scale * rng.randint(1, 12)) for z in zs)
            assert same(table.get(comp), pymatgen_formulas(comp)), comp


def test_many_elements_sum_like_numpy() -> None:
    """Up to 7 terms are summed in order, 8 and more pairwise, exactly as numpy does."""
    rng = random.Random(7)
    for n in range(1, 12):
        for _ in range(200):
            comp = {z: float(rng.randint(1, 9)) for z in rng.sample(range(1, 84), n)}
            from matplat.ingest.formulas import element_volumes

            vols = element_volumes()
            if any(z not in vols for z in comp):
                continue
            want = float(np.sum([vols[z] * a for z, a in comp.items()])) / sum(comp.values())
            assert np.float64(atomic_volume(comp)).tobytes() == np.float64(want).tobytes()
