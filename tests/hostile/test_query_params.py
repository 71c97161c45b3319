"""``--param`` typing: one rule on every engine (README: Read-only SQL).

Before, ``v=nan`` meant NaN on PostgreSQL, NULL on SQLite and an error on MariaDB; ``s=12``
compared with a text column failed only on PostgreSQL; and ``'{"a":1}'`` in a string was
taken for a bind parameter ``:1``.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from factories import make_material

from matplat.cli import cli
from matplat.db.session import transaction
from matplat.errors import InputError
from matplat.services.query import parse_param


def _query(url: str, sql: str, *params: str):  # type: ignore[no-untyped-def]
    args = ["--db", url, "query", sql, "--format", "csv"]
    for p in params:
        args += ["--param", p]
    return CliRunner().invoke(cli, args)


@pytest.fixture
def url(db) -> str:  # type: ignore[no-untyped-def]
    with transaction(db.engine) as s:
        make_material(s, 1, formula="12", dft={"band_gap": 2.0})
        make_material(s, 2, formula="KBr", elements={"K": 1, "Br": 1}, dft={"band_gap": 0.5})
    return db.url


def test_one_typing_rule_on_every_engine(url: str) -> None:
    def rows(sql: str, *params: str) -> list[str]:
        r = _query(url, sql, *params)
        assert r.exit_code == 0, r.output
        return r.stdout.splitlines()[1:]

    # a number compared with a text column: text comparison everywhere
    assert rows("SELECT id FROM materials WHERE formula = :s", "s=12") == ["1"]
    assert rows("SELECT id FROM materials WHERE formula = :s", "s:text=12") == ["1"]
    # numbers with numeric columns
    assert rows("SELECT id FROM materials WHERE natoms <= :n ORDER BY id", "n=2") == ["1", "2"]
    assert rows("SELECT material_id FROM material_properties WHERE band_gap > :g", "g=1.5") == [
        "1"]
    assert rows("SELECT material_id FROM material_properties WHERE band_gap > :g",
                "g:float=1") == ["1"]
    # colons inside strings are text, never parameters
    assert rows("SELECT '{\"a\":1}' AS j FROM materials WHERE id = :i", "i=2") == ['"{""a"":1}"']
    assert rows("SELECT 'x:y' AS j FROM materials WHERE id = 1") == ["x:y"]


@pytest.mark.parametrize("param, message", [
    ("v=nan", "not a finite number"),
    ("v=-Infinity", "not a finite number"),
    ("v:float=abc", "not a number"),
    ("v:int=1.5", "not an integer"),
    ("v", "expected NAME=VALUE"),
])
def test_bad_params_fail_alike_on_every_engine(url: str, param: str, message: str) -> None:
    r = _query(url, "SELECT id FROM material_properties WHERE band_gap > :v", param)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_missing_param_is_one_line(url: str) -> None:
    r = _query(url, "SELECT id FROM materials WHERE id = :x")
    assert r.exit_code == 1
    assert r.stderr.strip() == ("error: query failed: no value for bind parameter 'x' "
                                "(give --param x=VALUE)")


def test_text_override_passes_nan_as_text(url: str) -> None:
    r = _query(url, "SELECT count(*) AS n FROM materials WHERE formula = :f", "f:text=nan")
    assert r.exit_code == 0 and r.stdout.splitlines() == ["n", "0"]


def test_parse_param_rule() -> None:
    assert parse_param("a=12") == ("a", 12)
    assert parse_param("a=-1.5e3") == ("a", -1500.0)
    assert parse_param("a=12abc") == ("a", "12abc")
    assert parse_param("a= 7") == ("a", 7)
    assert parse_param("a:text=1.5") == ("a", "1.5")
    assert parse_param("a=x=y") == ("a", "x=y")
    with pytest.raises(InputError):
        parse_param("1a=2")
