"""Read-only database access for the server: one read-only transaction per request, with a
statement timeout, on each engine.

- PostgreSQL: ``BEGIN READ ONLY`` and ``SET LOCAL statement_timeout``.
- MariaDB/MySQL: ``SET SESSION max_statement_time`` (MariaDB) and ``START TRANSACTION READ ONLY``.
- SQLite: the file opened with ``mode=ro``, ``PRAGMA query_only``, and a progress handler
  that interrupts a statement running past the deadline.

The engine runs in autocommit mode so that the transaction statements above are the ones
the server sees; every request ends with ``ROLLBACK``. A restricted database role
(``PLATFORM_SERVE_DATABASE_URL``, see the README) is the real guarantee; this layer makes the
default safe too. The server's own timeouts are module constants, never request values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from matplat.db.session import parse_url
from matplat.errors import ConfigError

#: Seconds one request's statement may run.
DEFAULT_TIMEOUT_S = 5.0


class ReadOnlyDatabase:
    """An engine for serving: ``with db.read() as conn`` is one read-only transaction."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, pool_size: int = 8):
        parsed = parse_url(url)
        self.backend = parsed.get_backend_name()
        self.timeout_s = float(timeout_s)
        self._deadline = threading.local()
        kwargs: dict[str, object] = {"isolation_level": "AUTOCOMMIT"}
        if self.backend == "sqlite":
            db = parsed.database
            if not db or db == ":memory:":
                raise ConfigError("platform serve needs a SQLite database file, not :memory:")
            path = Path(db).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"SQLite database {str(path)!r} does not exist")
            parsed = make_url(f"sqlite:///file:{path}?mode=ro&uri=true")
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": self.timeout_s}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            if self.backend == "postgresql":
                kwargs["connect_args"] = {"connect_timeout": 10}
            else:
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
                kwargs["connect_args"] = {"connect_timeout": 10}
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", self._sqlite_connect)

    def _sqlite_connect(self, dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.execute("PRAGMA query_only = ON")
        local = self._deadline

        def interrupt_when_late() -> int:
            deadline = getattr(local, "at", None)
            return 1 if deadline is not None and time.monotonic() > deadline else 0

        dbapi_conn.set_progress_handler(interrupt_when_late, 10_000)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction with the statement timeout; always rolled back."""
        with self.engine.connect() as conn:
            ms = int(self.timeout_s * 1000)
            if self.backend == "postgresql":
                conn.exec_driver_sql("BEGIN READ ONLY")
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms:d}")
            elif self.backend in ("mysql", "mariadb"):
                try:
                    conn.exec_driver_sql(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
                except Exception:  # noqa: BLE001 - MySQL proper names it max_execution_time
                    conn.exec_driver_sql(f"SET SESSION max_execution_time = {ms:d}")
                # The session default too: a DDL statement commits the open transaction
                # implicitly, and would otherwise run outside any read-only transaction.
                conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
                conn.exec_driver_sql("START TRANSACTION READ ONLY")
            else:
                self._deadline.at = time.monotonic() + self.timeout_s
                conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                self._deadline.at = None
                conn.exec_driver_sql("ROLLBACK")

    def dispose(self) -> None:
        self.engine.dispose()
