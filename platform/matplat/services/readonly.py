"""Run one user statement read-only, under a statement timeout, interruptible.

Per engine:

* **PostgreSQL** ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout``; on
  Ctrl-C/SIGTERM psycopg sends a cancel request before it re-raises, so the server stops.
* **MariaDB** ``SET TRANSACTION READ ONLY`` and the session's ``max_statement_time`` (reset
  afterwards); on Ctrl-C/SIGTERM the client stops reading but the server would go on, so a
  second connection sends ``KILL QUERY`` for the statement's thread.
* **SQLite** ``PRAGMA query_only`` and a progress handler that aborts the statement after its
  deadline or once a signal arrived (sqlite3 otherwise runs to the end before Python sees the
  signal).

The connection is discarded after an interrupt, never returned to the pool half-read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from matplat import interrupts
from matplat.errors import InputError

#: SQLite progress handler period in virtual-machine instructions (~0.1 ms of work).
_SQLITE_PROGRESS_STEPS = 20_000


class StatementTimeout(InputError):
    """The statement ran longer than its timeout and was stopped by the server."""


def _reason(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    args = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        orig = args[1]  # PyMySQL: (code, message)
    text_ = str(orig if orig is not None else e).strip()
    reason = text_.splitlines()[0] if text_ else type(e).__name__
    return re.sub(r"\s*\(Background on this error at: [^)]*\)", "", reason)


def _timed_out(timeout: float) -> StatementTimeout:
    return StatementTimeout(f"query stopped after its time limit of {timeout:g} s (--timeout)")


def _is_timeout(backend: str, e: BaseException) -> bool:
    orig = getattr(e, "orig", e)
    if backend == "postgresql":
        return "statement timeout" in str(orig)
    if backend in ("mysql", "mariadb"):
        return bool(getattr(orig, "args", None)) and orig.args[0] == 1969
    return False


def _kill_mysql_query(engine: Engine, thread_id: int) -> None:
    """``KILL QUERY`` the statement of ``thread_id`` from a second, short-lived connection."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    cparams = {**cparams, "connect_timeout": 5, "read_timeout": 5, "write_timeout": 5}
    try:
        conn = engine.dialect.loaded_dbapi.connect(*cargs, **cparams)
    except Exception:  # noqa: BLE001 - best effort: the server may be gone
        return
    try:
        with conn.cursor() as cur:
            cur.execute(f"KILL QUERY {int(thread_id)}")
    except Exception:  # noqa: BLE001 - the statement may have finished meanwhile
        pass
    finally:
        conn.close()


@contextmanager
def read_only(engine: Engine, *, timeout: float) -> Iterator[Connection]:
    """A connection inside a read-only transaction whose statements stop after ``timeout`` s.

    Raises :class:`StatementTimeout` for a statement stopped by the timeout, a
    :class:`KeyboardInterrupt` for one stopped by Ctrl-C/SIGTERM (the server-side statement
    is cancelled or killed first); other errors propagate.
    """
    backend = engine.url.get_backend_name()
    mysql = backend in ("mysql", "mariadb")
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        thread_id = driver.thread_id() if mysql else None  # type: ignore[union-attr]
        previous = 0.0
        if backend == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
            # JIT compilation starts above a plan cost that mid-sized aggregates reach and
            # then costs 0.2-0.3 s of an interactive query (bench/RESULTS.md)
            conn.exec_driver_sql("SET LOCAL jit = off")
        elif mysql:
            # the account's own limit (CREATE USER … WITH MAX_STATEMENT_TIME) comes back after
            previous = float(conn.exec_driver_sql(
                "SELECT @@session.max_statement_time").scalar() or 0)
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout:.3f}")
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:
            conn.exec_driver_sql("PRAGMA query_only = ON")

            def _progress() -> int:
                return int(interrupts.requested() is not None or time.monotonic() > deadline)

            driver.set_progress_handler(_progress, _SQLITE_PROGRESS_STEPS)  # type: ignore[union-attr]
        clean = False
        try:
            yield conn
            clean = True
        except KeyboardInterrupt:
            if mysql and thread_id is not None:
                _kill_mysql_query(engine, thread_id)
            conn.invalidate()
            raise
        except sa_exc.OperationalError as e:
            if backend == "sqlite" and "interrupted" in str(e.orig):
                if time.monotonic() > deadline and interrupts.requested() is None:
                    clean = True
                    raise _timed_out(timeout) from e
                conn.invalidate()
                raise KeyboardInterrupt from e
            clean = True
            if _is_timeout(backend, e):
                raise _timed_out(timeout) from e
            raise
        except Exception as e:
            clean = True
            driver_error = conn.dialect.loaded_dbapi.Error
            if isinstance(e, (sa_exc.DBAPIError, driver_error)) and _is_timeout(backend, e):
                raise _timed_out(timeout) from e
            raise
        finally:
            if clean and not conn.invalidated:
                _restore(conn, backend, driver, previous if mysql else 0.0)


def _restore(conn: Connection, backend: str, driver: Any, previous: float) -> None:
    """Undo the session settings before the connection goes back to the pool."""
    conn.rollback()
    if backend == "sqlite":
        driver.set_progress_handler(None, 0)
        conn.exec_driver_sql("PRAGMA query_only = OFF")
    elif backend in ("mysql", "mariadb"):
        conn.exec_driver_sql(f"SET SESSION max_statement_time = {previous:.3f}")
    conn.rollback()


def translate(what: str, fn: Callable[[], Any]) -> Any:
    """Call ``fn``; a database error becomes one :class:`InputError` line ``what: reason``."""
    try:
        return fn()
    except (sa_exc.StatementError, sa_exc.InvalidRequestError) as e:
        raise InputError(f"{what}: {_reason(e)}") from e
    except Exception as e:
        if type(e).__module__.split(".")[0] in ("psycopg", "pymysql", "sqlite3"):
            raise InputError(f"{what}: {_reason(e)}") from e
        raise
