"""User SQL that would write or read server files, or write through a ``--where``.

``platform query`` and ``platform predict --where`` take SQL from the user. Forms that write
files on the server (``INTO OUTFILE``/``DUMPFILE``, also inside MariaDB's executable comments
``/*! … */`` and ``/*M! … */``), read them (``LOAD_FILE``, ``pg_read_file``) or act on other
sessions are refused with one line before anything runs; a ``--where`` is evaluated in a
read-only transaction only, so even a function that writes cannot change the database.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import make_material, make_model_version, make_recipe
from sqlalchemy import text

from matplat.cli import cli
from matplat.db.session import transaction
from matplat.errors import InputError
from matplat.services.query import check_read_only, select_ids

LEAK = "/tmp/mp_leak_{}.txt"

FILE_FORMS = [
    "SELECT id, formula FROM materials INTO OUTFILE '{leak}'",
    "SELECT id, formula FROM materials INTO DUMPFILE '{leak}'",
    "SELECT id FROM materials /*!50000 INTO OUTFILE '{leak}' */",
    "SELECT id FROM materials /*M!100000 INTO DUMPFILE '{leak}' */",
    "SELECT id /*! FROM materials INTO OUTFILE '{leak}' */",
    # one reading of backslashes hides INTO in a string, the other runs it
    "SELECT 'a\\' INTO OUTFILE '{leak}' -- '",
    "SELECT id FROM materials INTO @v",
    "SELECT LOAD_FILE('/etc/hostname') AS f",
    "SELECT pg_read_file('/etc/hostname') AS f",
    'SELECT "pg_read_file"(\'/etc/hostname\') AS f',
    "SELECT pg_catalog.pg_ls_dir('.') AS f",
    "SELECT pg_terminate_backend(1) AS f",
    "SELECT setval('jobs_id_seq', 1) AS f",
]


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def _one_error_line(r) -> str:  # type: ignore[no-untyped-def]
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    return lines[0]


def test_query_refuses_server_file_forms(db) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
    for form in FILE_FORMS:
        leak = Path(LEAK.format(uuid.uuid4().hex))
        r = _invoke("--db", db.url, "query", form.format(leak=leak))
        line = _one_error_line(r)
        # "pg_read_file"(…) is a string followed by '(' on MariaDB: a syntax error there
        assert "read-only" in line or '"pg_read_file"' in form, (form, line)
        assert not leak.exists(), f"the server wrote the file: {form}"


@pytest.mark.parametrize("sql", [
    "SELECT 'INTO OUTFILE' AS s FROM materials",
    "SELECT formula -- INTO OUTFILE 'x'\nFROM materials",
    "SELECT formula /* LOAD_FILE('x') */ FROM materials",
    "SELECT '{\"a\":1}' AS j FROM materials",
])
def test_query_keeps_strings_and_comments_as_data(db, sql: str) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
    r = _invoke("--db", db.url, "query", sql, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 2


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_executable_comments_are_code(dialect: str) -> None:
    for sql in ("SELECT 1 /*!50000 INTO OUTFILE 'x' */", "SELECT 1 /*M! INTO DUMPFILE 'x' */"):
        with pytest.raises(InputError, match="INTO"):
            check_read_only(sql, dialect)
    assert check_read_only("SELECT 1 /* INTO OUTFILE 'x' */", dialect)  # a plain comment


def test_mariadb_double_dash_needs_a_space() -> None:
    with pytest.raises(InputError, match="INTO"):  # 1--1 is arithmetic on MariaDB
        check_read_only("SELECT 1--1 INTO OUTFILE 'x'", "mysql")
    assert check_read_only("SELECT 1-- INTO OUTFILE 'x'", "mysql")


def _model(engine) -> str:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        for i in (1, 2, 3):
            make_material(s, i)
        rid = make_recipe(s).id
        mv = make_model_version(s, "t1", recipe_id=rid)
        mv.artifact_sha256 = hashlib.sha256(mv.artifact).hexdigest()
    return "t1"


def _state(engine) -> tuple:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return (conn.execute(text("SELECT id, formula FROM materials ORDER BY id")).all(),
                conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())


WHERE_FORMS = [
    "1=1 INTO OUTFILE '{leak}' #",
    "1=1 /*!50000 INTO OUTFILE '{leak}' */",
    "setval('jobs_id_seq', 1) > 0",
    "1=1) UNION SELECT id FROM jobs WHERE (1=1",
    "1=1; DELETE FROM materials",
    "m.id = :x",
]


def test_predict_where_refuses_writes_and_files(db) -> None:
    tag = _model(db.engine)
    before = _state(db.engine)
    for where in WHERE_FORMS:
        leak = Path(LEAK.format(uuid.uuid4().hex))
        r = _invoke("--db", db.url, "predict", "--model-tag", tag, "--where",
                    where.format(leak=leak))
        line = _one_error_line(r)
        assert "--where" in line or "read-only" in line, (where, line)
        assert not leak.exists()
        assert _state(db.engine) == before, where


def _writing_function(engine) -> str | None:
    """A function that writes when called: the --where can only be stopped by the
    read-only transaction, not by any keyword check."""
    kind = engine.url.get_backend_name()
    with engine.begin() as conn:
        if kind == "postgresql":
            conn.execute(text(
                "CREATE FUNCTION mp_bump() RETURNS integer LANGUAGE sql AS "
                "$$ UPDATE materials SET formula = 'PWNED'; SELECT setval('jobs_id_seq', 1)::int $$"))
        elif kind in ("mysql", "mariadb"):
            conn.execute(text(
                "CREATE FUNCTION mp_bump() RETURNS INT MODIFIES SQL DATA "
                "BEGIN UPDATE materials SET formula = 'PWNED'; RETURN 1; END"))
        else:
            return None
    return "mp_bump() > 0"


def test_where_runs_in_a_read_only_transaction(db) -> None:
    tag = _model(db.engine)
    where = _writing_function(db.engine)
    if where is None:  # SQLite has no SQL-defined functions; query_only is checked below
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert select_ids(db.engine, "m.id >= 2") == [2, 3]
        return
    before = _state(db.engine)
    r = _invoke("--db", db.url, "predict", "--model-tag", tag, "--where", where)
    line = _one_error_line(r)
    assert "--where" in line and "read" in line.lower()
    assert _state(db.engine) == before
    with pytest.raises(InputError, match="--where"):
        select_ids(db.engine, where)
    assert _state(db.engine) == before
    assert select_ids(db.engine, "m.id >= 2 AND m.formula <> 'PWNED'") == [2, 3]


def test_export_structures_where_is_read_only_too(db, tmp_path: Path) -> None:
    _model(db.engine)
    before = _state(db.engine)
    for where in WHERE_FORMS[:3]:
        leak = Path(LEAK.format(uuid.uuid4().hex))
        r = _invoke("--db", db.url, "export", "structures", str(tmp_path / "out"), "--format",
                    "json", "--where", where.format(leak=leak))
        line = _one_error_line(r)
        assert "--where" in line or "read-only" in line, (where, line)
        assert not leak.exists()
    assert _state(db.engine) == before
    r = _invoke("--db", db.url, "export", "structures", str(tmp_path / "ok"), "--format", "json",
                "--where", "m.id >= 2")
    assert r.exit_code == 0, r.output
    assert "wrote 2 structures" in r.stdout
