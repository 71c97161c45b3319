"""Runaway user SQL: stopped by its statement timeout, by Ctrl-C and by SIGTERM, everywhere.

A real ``platform query`` process runs a statement that would go on for a long time: a
recursive CTE without end on SQLite and PostgreSQL, ``SELECT SLEEP(30)`` on MariaDB (whose
recursive CTEs stop at ``max_recursive_iterations``). The tests wait until the statement is
running on the server (or the SQLite file is open), send the signal, and check that the
process ends promptly with the one "interrupted" line and exit 130 (SIGINT) or 143 (SIGTERM),
and that the server no longer runs the statement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from .conftest import assert_one_line_error, platform_cmd, platform_env, run_platform

RUNAWAY = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c",
    "postgresql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
                  "SELECT max(x) AS runaway_probe FROM c",
    "mariadb": "SELECT SLEEP(30) AS runaway_probe",
}
#: What a prompt stop means on a loaded two-core machine: far below the statement's length.
PROMPT_S = 15.0


def _server_running(db) -> bool:  # type: ignore[no-untyped-def]
    """Whether the runaway statement is running on the server (any session)."""
    admin = create_engine(db.url)
    try:
        with admin.connect() as conn:
            if db.kind == "postgresql":
                sql = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                       "AND query LIKE '%runaway_probe%' AND pid <> pg_backend_pid()")
            else:
                sql = ("SELECT count(*) FROM information_schema.PROCESSLIST "
                       "WHERE INFO LIKE '%runaway_probe%' AND ID <> CONNECTION_ID()")
            return bool(conn.execute(text(sql)).scalar_one())
    finally:
        admin.dispose()


def _sqlite_open(pid: int, path: str) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == path
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def _start(db, workdir: Path, *args: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(platform_cmd("--db", db.url, "query", RUNAWAY[db.kind], *args),
                            cwd=workdir, env=platform_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if db.kind == "sqlite":
            if _sqlite_open(proc.pid, db.url.removeprefix("sqlite:///")):
                time.sleep(1.0)  # schema check done, the statement started
                return proc
        elif _server_running(db):
            return proc
        time.sleep(0.2)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"the runaway statement never started: {out} {err}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_runaway_query(db, workdir: Path, sig: signal.Signals) -> None:
    proc = _start(db, workdir)
    proc.send_signal(sig)
    t0 = time.monotonic()
    try:
        _out, err = proc.communicate(timeout=PROMPT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"still running {PROMPT_S} s after {sig.name}")
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert "Traceback" not in err, err
    assert err.strip().splitlines() == ["interrupted: nothing was half-written; rerun to finish"]
    if db.kind != "sqlite":
        while _server_running(db) and time.monotonic() - t0 < PROMPT_S:
            time.sleep(0.2)
        assert not _server_running(db), "the server still runs the statement"


def test_statement_timeout_stops_runaway_query(db, workdir: Path) -> None:
    t0 = time.monotonic()
    proc = run_platform("--db", db.url, "query", RUNAWAY[db.kind], "--timeout", "1",
                        cwd=workdir)
    assert_one_line_error(proc, "time limit of 1 s")
    assert time.monotonic() - t0 < 25  # 30 s of SLEEP on MariaDB; no end elsewhere
    if db.kind != "sqlite":
        assert not _server_running(db)
