"""The README's read-only role, created for real: what it refuses, what still works.

The GRANT lines are read from the README (``<!-- readme-grants: ENGINE -->`` blocks) and run
with the test database's name and a unique role name. Connected as that role, reading server
files (``pg_read_file``, ``LOAD_FILE``), writing them (``COPY … TO``, ``INTO OUTFILE``) and
writing rows are refused by the server itself, without the platform's own checks in the way;
``platform --query-db`` then runs a ``SELECT`` and a ``--where`` selection, and warns only
when user SQL runs as a superuser.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import make_material
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

from matplat.cli import cli
from matplat.db.session import dispose_engines, get_engine, transaction
from matplat.services.query import select_ids

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_grants(kind: str) -> list[str]:
    body = README.read_text(encoding="utf-8")
    m = re.search(rf"<!-- readme-grants: {kind} -->\s*```sql\n(.*?)```", body, flags=re.DOTALL)
    assert m, f"README has no readme-grants block for {kind}"
    return [s.strip() for s in m.group(1).split(";\n") if s.strip()]


def _refused(conn, sql: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        with conn.begin():
            value = conn.execute(text(sql)).scalar()
    except exc.DBAPIError:
        return True
    return value is None  # LOAD_FILE without the FILE privilege returns NULL


def test_readme_read_only_role(db, tmp_path: Path) -> None:
    if db.kind == "sqlite":
        pytest.skip("SQLite has no accounts")
    with transaction(db.engine) as s:
        make_material(s, 1)
        make_material(s, 2, formula="KBr", elements={"K": 1, "Br": 1})
    url = make_url(db.url)
    role = f"mp_ro_{uuid.uuid4().hex[:10]}"
    kind = "postgresql" if db.kind == "postgresql" else "mariadb"
    statements = [s.replace("matplat_reader", role).replace("matplat", url.database or "")
                  for s in readme_grants(kind)]
    with db.engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))
    role_url = url.set(username=role, password="change-me").render_as_string(
        hide_password=False)
    leak = f"/tmp/mp_leak_{uuid.uuid4().hex}"
    reader = create_engine(role_url)
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM materials")).scalar() == 2
            conn.rollback()
            assert _refused(conn, "UPDATE materials SET formula = 'x'")
            if kind == "postgresql":
                assert _refused(conn, "SELECT pg_read_file('/etc/hostname')")
                assert _refused(conn, f"COPY materials TO '{leak}'")
            else:
                assert _refused(conn, "SELECT LOAD_FILE('/etc/hostname')")
                assert _refused(conn, f"SELECT id FROM materials INTO OUTFILE '{leak}'")
        assert not Path(leak).exists()
        r = CliRunner().invoke(cli, ["--db", db.url, "--query-db", role_url, "query",
                                     "SELECT formula FROM materials ORDER BY id",
                                     "--format", "csv"])
        assert r.exit_code == 0, r.output
        assert r.stdout.splitlines() == ["formula", "NaCl", "KBr"]
        assert r.stderr == ""  # not a superuser: no warning
        assert select_ids(get_engine(role_url), "m.formula = 'KBr'") == [2]
        r = CliRunner().invoke(cli, ["--db", db.url, "query", "SELECT 1 AS one"])
        assert r.exit_code == 0
        assert r.stderr.startswith("warning: user SQL ran as") and r.stderr.count("\n") == 1
    finally:
        reader.dispose()
        dispose_engines()
        with db.engine.begin() as conn:
            if kind == "postgresql":
                conn.execute(text(f'DROP OWNED BY "{role}"'))
                conn.execute(text(f'REVOKE CONNECT ON DATABASE "{url.database}" FROM "{role}"'))
                conn.execute(text(f'DROP ROLE "{role}"'))
            else:
                conn.execute(text(f"DROP USER '{role}'@'%'"))
