"""Create and drop uniquely named test databases on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from matplat.db import migrate
from matplat.db.session import get_engine

ENGINES = ("sqlite", "postgresql", "mariadb")

DEFAULT_SERVER_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
URL_ENV = {"postgresql": "PLATFORM_TEST_POSTGRES_URL", "mariadb": "PLATFORM_TEST_MYSQL_URL"}


def services_required() -> bool:
    return os.environ.get("PLATFORM_TEST_REQUIRE_SERVICES") == "1"


def server_url(kind: str) -> str:
    return os.environ.get(URL_ENV[kind]) or DEFAULT_SERVER_URLS[kind]


def unavailable(reason: str) -> None:
    """Skip, or fail when services are required (CI)."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@dataclass
class TestDatabase:
    kind: str
    url: str
    _admin_url: str | None = None
    _name: str | None = None

    __test__ = False  # not a test class

    @property
    def engine(self) -> Engine:
        return get_engine(self.url)

    def upgrade(self) -> None:
        migrate.upgrade(self.engine)

    def drop(self) -> None:
        if self.kind == "sqlite" or self._admin_url is None:
            return
        admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                if self.kind == "postgresql":
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
                else:
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{self._name}`"))
        finally:
            admin.dispose()


def create_database(kind: str, tmp_path: Path) -> TestDatabase:
    """Create an empty database named ``mp_test_<random>`` on the given engine."""
    if kind == "sqlite":
        return TestDatabase(kind, f"sqlite:///{tmp_path / 'test.db'}")
    admin_url = server_url(kind)
    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(
                    text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                )
    except Exception as e:  # noqa: BLE001 - any connection failure means "no server"
        unavailable(f"{kind} server at {make_url(admin_url).render_as_string()} unreachable: {e}")
    finally:
        admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return TestDatabase(kind, url, admin_url, name)
