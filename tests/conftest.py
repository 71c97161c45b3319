"""Shared fixtures: real SQLite, PostgreSQL and MariaDB databases, created per test and dropped.

Server URLs come from ``PLATFORM_TEST_POSTGRES_URL`` and ``PLATFORM_TEST_MYSQL_URL`` (defaults:
the local services). A missing server skips its tests with the reason, except under
``PLATFORM_TEST_REQUIRE_SERVICES=1`` (set by .ci/run), where it is a failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dbutil import ENGINES, TestDatabase, create_database  # noqa: E402

from matplat.db.session import dispose_engines  # noqa: E402


def pytest_report_header(config):  # type: ignore[no-untyped-def]
    require = os.environ.get("PLATFORM_TEST_REQUIRE_SERVICES") == "1"
    return f"matplat: database engines {', '.join(ENGINES)}; services required: {require}"


@pytest.fixture(params=ENGINES)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    """A new, empty database on each engine (no schema)."""
    database = create_database(request.param, tmp_path)
    try:
        yield database
    finally:
        dispose_engines()
        database.drop()


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    """A new database on each engine, migrated to head."""
    database = create_database(request.param, tmp_path)
    try:
        database.upgrade()
        yield database
    finally:
        dispose_engines()
        database.drop()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's settings or write platform.db into the checkout."""
    for name in ("PLATFORM_DATABASE_URL", "PLATFORM_BROKER_URL", "PLATFORM_DEVICE",
                 "PLATFORM_QUERY_DATABASE_URL", "PLATFORM_QUERY_TIMEOUT",
                 "PLATFORM_DB_CONNECT_TIMEOUT", "PLATFORM_DB_READ_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def sample_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic OQMD dump (120 entries), written once per test session."""
    from pipeline_fixture import make_dump

    return make_dump(tmp_path_factory.mktemp("dumps"))


@pytest.fixture(scope="module", params=ENGINES)
def pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             sample_dump: Path) -> Iterator[TestDatabase]:
    """Ingest → graphs → train v3 and v4 → predict, once per engine and test module."""
    from pipeline_fixture import build_pipeline

    database = build_pipeline(request.param, tmp_path_factory.mktemp(request.param), sample_dump)
    try:
        yield database
    finally:
        dispose_engines()
        database.drop()
