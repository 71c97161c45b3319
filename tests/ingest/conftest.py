"""Fixtures for the ingest tests (helpers in ``qmdb_testutil``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qmdb_testutil import DATA, HOST, PORT, USER, MariaDB, _tool, _unavailable


@pytest.fixture
def mariadb() -> Iterator[MariaDB]:
    """A new database ``matplat_ingest_<random>`` on 127.0.0.1:3306, dropped afterwards."""
    try:
        import pymysql
    except ImportError:
        _unavailable("pymysql is not installed")
    _tool("mariadb-dump")
    try:
        conn = pymysql.connect(
            host=HOST, port=PORT, user=USER, autocommit=True, charset="utf8mb4", connect_timeout=5
        )
    except pymysql.err.OperationalError as exc:
        _unavailable(f"MariaDB is not reachable at {HOST}:{PORT}: {exc}")
    name = f"matplat_ingest_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.select_db(name)
    try:
        yield MariaDB(name, conn)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def ddl_path() -> Path:
    return DATA / "qmdb_ddl.sql"
