"""``run_query`` on all three engines: named parameters, percent signs, NULLs and errors
(PostgreSQL reads rows through a binary-format driver cursor; the others through SQLAlchemy)."""

from __future__ import annotations

import pytest
from factories import make_material

from matplat.db.session import transaction
from matplat.errors import InputError
from matplat.services.query import run_query


@pytest.fixture
def engine(db):  # type: ignore[no-untyped-def]
    with transaction(db.engine) as s:
        make_material(s, 1, formula="Fe2O3", elements={"Fe": 2, "O": 3})
        make_material(s, 2, formula="NaCl", spacegroup=None, dft={"band_gap": None})
    return db.engine


def test_rows_types_and_parameters(engine) -> None:  # type: ignore[no-untyped-def]
    df = run_query(engine, "SELECT material_id, formula, band_gap, spacegroup "
                           "FROM material_properties WHERE formula LIKE :f OR formula LIKE '%Cl' "
                           "ORDER BY material_id", {"f": "Fe%", "unused": 1})
    assert list(df.columns) == ["material_id", "formula", "band_gap", "spacegroup"]
    assert df.material_id.tolist() == [1, 2] and df.formula.tolist() == ["Fe2O3", "NaCl"]
    assert df.band_gap[0] == 2.0 and df.band_gap.isna()[1]
    assert df.spacegroup[0] == 225 and df.spacegroup.isna()[1]
    assert run_query(engine, "SELECT 'a%b' AS s FROM materials WHERE id = 1").s.tolist() == [
        "a%b"]
    empty = run_query(engine, "SELECT id FROM materials WHERE id > :n", {"n": 5})
    assert list(empty.columns) == ["id"] and empty.empty


@pytest.mark.parametrize("sql, params, message", [
    ("SELECT * FROM no_such_table", {}, "no_such_table"),
    ("SELECT id FROM materials WHERE id = :a", {}, "bind parameter 'a'"),
])
def test_errors_are_input_errors(engine, sql: str, params: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message):
        run_query(engine, sql, params)
    assert run_query(engine, "SELECT count(*) AS n FROM materials").n[0] == 2  # still usable
