"""Helpers of the ingest tests: real MariaDB databases and real ``mariadb-dump`` output.

(A module of its own, not imported through ``tests.``: the ``optimade`` wheel installs a
top-level ``tests`` package that would shadow ours.)

A test that needs the server gets a freshly created, uniquely named database (dropped
afterwards). Without a reachable server or the client tools the test is skipped with the
reason, except under ``PLATFORM_TEST_REQUIRE_SERVICES=1`` where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
HOST, PORT, USER = "127.0.0.1", 3306, "root"


def _unavailable(reason: str) -> None:
    if os.environ.get("PLATFORM_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@dataclass
class MariaDB:
    """A scratch database on the local MariaDB server."""

    name: str
    conn: object  # pymysql connection, autocommit

    def execute(self, sql: str, args: object = None) -> None:
        with self.conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute(sql, args)

    def executemany(self, sql: str, rows: list) -> None:
        with self.conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.executemany(sql, rows)

    def query(self, sql: str) -> list[tuple]:
        with self.conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute(sql)
            return list(cur.fetchall())

    def run_script(self, path: Path) -> None:
        """Run an SQL file with the ``mariadb`` client (as a user restoring a dump would)."""
        with open(path, "rb") as fh:
            res = subprocess.run(
                [_tool("mariadb"), "-h", HOST, "-P", str(PORT), "-u", USER, self.name],
                stdin=fh,
                capture_output=True,
            )
        if res.returncode != 0:
            raise AssertionError(f"mariadb < {path} failed: {res.stderr.decode()[:2000]}")

    def dump(self, *options: str, tables: list[str] | None = None) -> bytes:
        """``mariadb-dump`` of this database with the given options."""
        cmd = [_tool("mariadb-dump"), "-h", HOST, "-P", str(PORT), "-u", USER, *options, self.name]
        res = subprocess.run(cmd + (tables or []), capture_output=True)
        if res.returncode != 0:
            raise AssertionError(f"mariadb-dump failed: {res.stderr.decode()[:2000]}")
        return res.stdout


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name.replace("mariadb", "mysql"))
    if path is None:
        _unavailable(f"the {name} client is not installed")
    return path  # type: ignore[return-value]


def create_qmdb_schema(db: MariaDB, tables: set[str] | None = None) -> None:
    """Create qmpy's tables (from tests/data/qmdb_ddl.sql) in ``db``, without constraints."""
    for line in (DATA / "qmdb_ddl.sql").read_text().splitlines():
        if line.startswith("CREATE TABLE `"):
            name = line.split("`")[1]
            if tables is None or name in tables:
                db.execute(line.rstrip(";"))
