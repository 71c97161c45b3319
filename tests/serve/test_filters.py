"""The filter parser and SQL transformer without a server: grammar trees equal the optimade
package's own parser's, OPTIMADE formulas equal pymatgen's, errors carry the right status."""

from __future__ import annotations

import math

import pytest
from optimade.filterparser import LarkParser
from pymatgen.core import Composition

from matplat.serve.errors import ApiError
from matplat.serve.filters import _parser, parse_filter
from matplat.serve.summaries import anonymous_labels, formulas

FILTERS = [
    'elements HAS ALL "Fe","O" AND nelements = 2 AND _matplat_band_gap > 1',
    'NOT (nsites = 1 OR nelements > 2) AND elements HAS ONLY "Si", "O"',
    'chemical_formula_anonymous STARTS WITH "A2"', 'chemical_formula_reduced ENDS "O3"',
    "3 < nsites", "nsites=3", '_matplat_source IS KNOWN', "elements LENGTH >= 3",
    'elements:species_at_sites HAS "Fe":"Fe"', "nsites = nelements", 'elements HAS > "Fe"',
    'elements HAS ANY "Fe", "O"', "NOT NOT nsites = 1", "x = -1.5e3", 'id = "12"',
    'chemical_formula_descriptive CONTAINS "\\"quoted\\""', 'last_modified >= "2024-01-01T00:00:00Z"',
    '((nelements = 2))', 'elements HAS"Fe"',
]


@pytest.mark.parametrize("flt", FILTERS)
def test_lalr_trees_equal_the_optimade_parsers(flt: str) -> None:
    """Same tree, or both parsers refuse the filter (NOT NOT needs parentheses)."""
    try:
        ours = _parser().parse(flt)
    except Exception:  # noqa: BLE001
        ours = None
    try:
        theirs = LarkParser(version=(1, 2, 0)).parse(flt)
    except Exception:  # noqa: BLE001
        theirs = None
    assert ours == theirs
    assert ours is not None or flt.startswith("NOT NOT")


@pytest.mark.parametrize(
    ("flt", "status"),
    [("nsites <", 400), ("nsites = = 1", 400), ("unknownfield = 1", 400),
     ("_matplat_unknown = 1", 400), ('nsites = "1"', 400), ("elements HAS 1", 400),
     ('last_modified > "soon"', 400), ("lattice_vectors HAS 1", 501),
     ('elements:species_at_sites HAS "Fe":"Fe"', 501), ("nsites = nelements", 501),
     ("nsites = TRUE", 501), ("x" * 20_000, 400)],
)
def test_bad_filters_raise_api_errors(flt: str, status: int) -> None:
    with pytest.raises(ApiError) as err:
        parse_filter(flt, "postgresql")
    assert err.value.status == status and err.value.detail


def test_values_are_bound_parameters_never_sql_text() -> None:
    from sqlalchemy.dialects import postgresql

    evil = "x'; DROP TABLE materials; --"
    sql = parse_filter(f'chemical_formula_descriptive = "{evil}"', "postgresql")
    compiled = sql.compile(dialect=postgresql.dialect())
    assert "DROP" not in str(compiled) and evil in compiled.params.values()


@pytest.mark.parametrize(
    "counts",
    [{"Fe": 4, "O": 6}, {"Li": 4, "Fe": 4, "P": 4, "O": 16}, {"O": 2}, {"Na": 1, "Cl": 1},
     {"C": 2, "H": 6, "O": 1}, {"C": 1, "Cl": 4}, {"Ba": 2, "Cu": 3, "Y": 1, "O": 7},
     {"H": 2, "O": 1}, {"Si": 8}],
)
def test_formulas_equal_pymatgen(counts: dict[str, int]) -> None:
    f = formulas(list(counts.items()))
    raw = Composition(counts).get_el_amt_dict()
    g = math.gcd(*(int(v) for v in raw.values()))
    amounts = {e: int(v) // g for e, v in raw.items()}  # OPTIMADE: O2 -> "O", no special cases

    def write(order: list[str]) -> str:
        return "".join(f"{e}{'' if amounts[e] == 1 else amounts[e]}" for e in order)

    assert f.reduced == write(sorted(amounts))
    hill = ["C", *(["H"] if "H" in amounts else []), *sorted(set(amounts) - {"C", "H"})]
    assert f.hill == write(hill if "C" in amounts else sorted(amounts))
    n = sorted(amounts.values(), reverse=True)
    assert f.anonymous == "".join(f"{s}{'' if a == 1 else a}"
                                  for s, a in zip(anonymous_labels(len(n)), n, strict=True))
    # pymatgen's anonymized formula has the same amounts (its letters go in the other order)
    anon = Composition(Composition(counts).anonymized_formula).get_el_amt_dict()
    assert sorted(anon.values(), reverse=True) == [float(a) for a in n]


def test_anonymous_labels_follow_the_specification() -> None:
    labels = anonymous_labels(30)
    assert labels[:3] == ["A", "B", "C"] and labels[25] == "Z" and labels[26:28] == ["Aa", "Ba"]
