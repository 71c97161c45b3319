"""The CLI skeleton through CliRunner and one real subprocess of the installed command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import make_material
from sqlalchemy import text

from matplat.cli import cli
from matplat.db import migrate
from matplat.db.session import transaction


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_help_lists_the_nouns() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for noun in ("db", "status", "query"):
        assert f"  {noun} " in result.output


def test_upgrade_status_query_on_each_engine(empty_db) -> None:
    url = empty_db.url
    r = run("--db", url, "db", "upgrade")
    assert r.exit_code == 0, r.output
    assert "upgraded base ->" in r.output
    r = run("--db", url, "db", "current")
    assert "at head" in r.output and migrate.head_revision() in r.output
    r = run("--db", url, "status")
    assert r.exit_code == 0
    assert "materials" in r.output and "predictions" in r.output
    r = run("--db", url, "query", "SELECT * FROM material_properties")
    assert r.exit_code == 0, r.output
    assert "(0 rows)" in r.output and "formation_energy" in r.output


def test_query_formats_and_params(db, tmp_path: Path) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1, dft={"band_gap": 2.0})
        make_material(s, 2, formula="KBr", elements={"K": 1, "Br": 1}, dft={"band_gap": 0.5})
    sql = "SELECT formula, band_gap FROM material_properties WHERE band_gap > :g ORDER BY formula"
    r = run("--db", db.url, "query", sql, "--param", "g=1", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [{"formula": "NaCl", "band_gap": 2.0}]
    r = run("--db", db.url, "query", sql, "-p", "g=0", "--format", "csv")
    assert r.stdout.splitlines() == ["formula,band_gap", "KBr,0.5", "NaCl,2.0"]
    out = tmp_path / "x.parquet"
    r = run("--db", db.url, "query", sql, "-p", "g=0", "--format", "parquet", "-o", str(out))
    assert r.exit_code == 0
    import pandas as pd

    assert pd.read_parquet(out)["formula"].tolist() == ["KBr", "NaCl"]
    r = run("--db", db.url, "query", sql, "-p", "g=0")
    assert "NaCl" in r.output and "KBr" in r.output


@pytest.mark.parametrize("sql", [
    "DELETE FROM materials",
    "UPDATE materials SET formula = 'x'",
    "SELECT 1; DROP TABLE materials",
    "WITH x AS (SELECT 1) INSERT INTO jobs (kind) SELECT 'a'",
    "DROP VIEW material_properties",
])
def test_query_rejects_writes(db, sql: str) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
    r = CliRunner().invoke(cli, ["--db", db.url, "query", sql])
    assert r.exit_code == 1
    assert "read-only" in r.output or "one SQL statement" in r.output
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM material_properties")).scalar_one() == 1


def test_query_error_is_one_line(db) -> None:
    r = CliRunner().invoke(cli, ["--db", db.url, "query", "SELECT nope FROM materials"])
    assert r.exit_code == 1
    assert r.output.startswith("error: query failed:")
    assert r.output.count("\n") == 1


@pytest.mark.parametrize("url,expected", [
    ("nonsense://", "unsupported database"),
    ("not a url", "invalid database URL"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/nothing", "cannot connect"),
    ("mysql+pymysql://root@127.0.0.1:1/nothing", "cannot connect"),
    ("sqlite:////nonexistent-dir/x.db", "does not exist"),
])
def test_bad_database_urls_give_one_line_and_exit_1(url: str, expected: str) -> None:
    r = CliRunner().invoke(cli, ["--db", url, "status"])
    assert r.exit_code == 1, r.output
    assert expected in r.output
    assert r.output.count("\n") == 1


def test_database_without_schema_is_refused(empty_db) -> None:
    if empty_db.kind == "sqlite":
        with empty_db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE other (x INTEGER)"))
    r = CliRunner().invoke(cli, ["--db", empty_db.url, "status"])
    assert r.exit_code == 1
    assert "run `platform db upgrade`" in r.output


def test_default_sqlite_database_is_created_in_working_directory(tmp_path: Path) -> None:
    r = run("status")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "platform.db").exists()


def test_installed_command_in_a_subprocess(tmp_path: Path) -> None:
    exe = shutil.which("platform", path=str(Path(sys.executable).parent))
    assert exe, "the console script `platform` is not installed next to this Python"
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    out = subprocess.run([exe, "query", "SELECT count(*) AS n FROM materials", "--format", "json"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": 0}]
    bad = subprocess.run([exe, "--db", "sqlite:////no/such/dir/x.db", "status"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("error:")


def test_database_at_an_old_revision_is_refused(db) -> None:
    migrate.downgrade(db.engine, "0001")
    r = CliRunner().invoke(cli, ["--db", db.url, "status"])
    assert r.exit_code == 1
    assert "revision 0001" in r.output and "platform db upgrade" in r.output
    assert r.output.count("\n") == 1
    r = run("--db", db.url, "db", "upgrade")
    assert r.exit_code == 0 and "0001 ->" in r.output
    assert CliRunner().invoke(cli, ["--db", db.url, "status"]).exit_code == 0
