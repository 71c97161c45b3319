"""``platform serve`` as a command: errors as one line, several workers, and a read-only
PostgreSQL role given by PLATFORM_SERVE_DATABASE_URL (the README's GRANTs)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from serveutil import ROOT, Served, start_server, stop_server
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT),
                                         env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--db", "sqlite:////nonexistent-dir/x.db", "serve"], "does not exist"),
     (["--db", "nosuchdb://x", "serve"], "unsupported database"),
     (["--db", "sqlite:///x.db", "serve", "--port", "70000"], "Invalid value")],
)
def test_bad_settings_fail_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "matplat", *args], capture_output=True,
                         text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert out.returncode in (1, 2)
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_read_only_role_and_two_workers(served: Served, tmp_path: Path) -> None:
    if served.db.kind != "postgresql":
        pytest.skip("database roles: PostgreSQL (the README's GRANTs)")
    url = make_url(served.db.url)
    role = f"mp_web_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # the README's statements
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{url.database}" TO {role}'))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(text(f"ALTER ROLE {role} SET default_transaction_read_only = on"))
    ro_url = url.set(username=role, password="pw").render_as_string(hide_password=False)
    os.environ["PLATFORM_SERVE_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    proc = None
    try:  # the option wins over the variable
        proc, base = start_server(served.db.url, tmp_path / "serve.log", "--workers", "2",
                                  "--serve-db", ro_url)
        for _ in range(8):  # spread over both worker processes
            r = requests.get(base + "/optimade/v1/structures", params={"page_limit": 3},
                             timeout=60)
            assert r.status_code == 200 and len(r.json()["data"]) == 3
        assert requests.get(base + "/models", timeout=60).status_code == 200
        ro = create_engine(ro_url)
        with ro.connect() as conn, pytest.raises(Exception, match="permission denied|read-only"):
            conn.execute(text("DELETE FROM materials"))
        ro.dispose()
    finally:
        os.environ.pop("PLATFORM_SERVE_DATABASE_URL", None)
        if proc is not None:
            stop_server(proc)
        with admin.connect() as conn:
            conn.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}'))
            conn.execute(text(f"REVOKE ALL ON SCHEMA public FROM {role}"))
            conn.execute(text(f'REVOKE ALL ON DATABASE "{url.database}" FROM {role}'))
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": role})
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()
