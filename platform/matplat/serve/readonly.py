"""Read-only database access for the server: one read-only transaction per request, with a
statement timeout, on each engine.

- PostgreSQL: ``BEGIN READ ONLY``; each connection's session is read-only by default and
  has ``statement_timeout`` (set once when the pool opens it).
- MariaDB/MySQL: ``START TRANSACTION READ ONLY``; the session is read-only by default (so
  DDL, which commits implicitly, is refused too) with ``max_statement_time`` (MariaDB).
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
            # No pre-ping: it is one more round trip per request (a fifth of a page's time);
            # connections are recycled instead, and a dropped one fails one request (503).
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
            if self.backend == "postgresql":
                kwargs["connect_args"] = {"connect_timeout": 10}
            else:
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
                kwargs["connect_args"] = {"connect_timeout": 10}
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", self._sqlite_connect)
        else:
            event.listen(self.engine, "connect", self._server_connect)

    def _server_connect(self, dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        """Session defaults, once per connection: read-only transactions and the timeout.

        A statement outside the request's explicit transaction (MariaDB commits implicitly
        before DDL) is then still read-only and still timed.
        """
        ms = int(self.timeout_s * 1000)
        cur = dbapi_conn.cursor()
        try:
            if self.backend == "postgresql":
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                cur.execute(f"SET statement_timeout = {ms:d}")
            else:
                try:
                    cur.execute(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
                except Exception:  # noqa: BLE001 - MySQL proper names it max_execution_time
                    cur.execute(f"SET SESSION max_execution_time = {ms:d}")
                cur.execute("SET SESSION TRANSACTION READ ONLY")
        finally:
            cur.close()
        dbapi_conn.commit()

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
            if self.backend == "postgresql":
                conn.exec_driver_sql("BEGIN READ ONLY")
            elif self.backend in ("mysql", "mariadb"):
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
