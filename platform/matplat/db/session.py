"""Engine and session factories, connection checks and the schema guard.

One engine per process and URL; callers own the unit of work (``with Session.begin()``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.orm import Session, sessionmaker

from matplat.errors import ConfigError, DatabaseError, SchemaNotCurrentError

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()

SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")

#: Seconds to wait for a server to connect / to answer (see :func:`configure_timeouts`).
_TIMEOUTS = {"connect": 10.0, "read": 1800.0}


def configure_timeouts(connect: float, read: float) -> None:
    """Set the connect and read timeouts of engines created from now on (the CLI calls this
    with the settings before it opens any engine)."""
    _TIMEOUTS["connect"], _TIMEOUTS["read"] = float(connect), float(read)


def _mysql_do_connect(dialect, _record, cargs, cparams):  # type: ignore[no-untyped-def]
    """Connect with the read timeout cut to the connect timeout until the handshake is done.

    PyMySQL reads the server's greeting under ``read_timeout`` (not ``connect_timeout``), so
    a listener that accepts and never answers would hang a command for the full read
    timeout; the connection gets the configured read timeout once it is up (PyMySQL
    re-applies ``_read_timeout`` on its next read).
    """
    cparams = {**cparams, "read_timeout": _TIMEOUTS["connect"]}
    conn = dialect.loaded_dbapi.connect(*cargs, **cparams)
    conn._read_timeout = _TIMEOUTS["read"]
    return conn


def parse_url(url: str) -> URL:
    """Parse and validate a database URL, with a clear error for a wrong one."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise ConfigError(
            f"invalid database URL {url!r}: expected e.g. sqlite:///platform.db, "
            "postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"
        ) from e
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r} in URL "
            f"{parsed.render_as_string(hide_password=True)!r}: use sqlite, postgresql or mysql"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="mysql+pymysql")
    return parsed


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def get_engine(url: str) -> Engine:
    """Return the process-wide engine for ``url`` (created on first use)."""
    parsed = parse_url(url)
    key = parsed.render_as_string(hide_password=False)
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            kwargs: dict[str, object] = {"future": True}
            backend = parsed.get_backend_name()
            connect_s = _TIMEOUTS["connect"]
            if backend == "sqlite":
                kwargs["connect_args"] = {"timeout": 60}
            else:
                kwargs["pool_pre_ping"] = True
            if backend in ("mysql", "mariadb"):
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
                kwargs["connect_args"] = {"connect_timeout": connect_s, "local_infile": True}
            if backend == "postgresql":
                # libpq's connect_timeout covers the whole start-up (whole seconds, >= 2);
                # keepalives notice a peer that vanished in the middle of a statement
                kwargs["connect_args"] = {
                    "connect_timeout": max(2, math.ceil(connect_s)), "keepalives": 1,
                    "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
            engine = create_engine(parsed, **kwargs)
            if backend == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            if backend in ("mysql", "mariadb") and parsed.get_driver_name() == "pymysql":
                event.listen(engine, "do_connect", _mysql_do_connect)
            _ENGINES[key] = engine
        return engine


def dispose_engines() -> None:
    """Dispose every engine (after a fork, or at the end of tests)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to ``engine`` that keeps objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def describe(engine: Engine) -> str:
    """The engine's URL without the password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def check_connection(engine: Engine) -> None:
    """Connect once; turn any driver error into one clear :class:`DatabaseError`."""
    if engine.url.get_backend_name() == "sqlite":
        db = engine.url.database
        if db and db != ":memory:" and not db.startswith("file:"):
            parent = Path(db).expanduser().resolve().parent
            if not parent.is_dir():
                raise DatabaseError(
                    f"cannot open SQLite database {db!r}: directory {str(parent)!r} does not exist"
                )
    try:
        with engine.connect():
            pass
    except exc.DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
        raise DatabaseError(f"cannot connect to {describe(engine)}: {reason}") from e
    except exc.SQLAlchemyError as e:  # pragma: no cover - driver-specific
        raise DatabaseError(f"cannot connect to {describe(engine)}: {e}") from e


def table_names(engine: Engine) -> set[str]:
    """Names of the base tables present in the database."""
    return set(inspect(engine).get_table_names())


def ensure_current(engine: Engine, *, auto_upgrade_empty_sqlite: bool = True) -> None:
    """Refuse a database whose schema is not at head.

    A SQLite database with no tables at all (the embedded default on first use) is upgraded
    automatically; anything else not at head gets a message saying to run
    ``platform db upgrade``.
    """
    from matplat.db import migrate

    check_connection(engine)
    current = migrate.current_revision(engine)
    head = migrate.head_revision()
    if current == head:
        return
    if (
        current is None
        and auto_upgrade_empty_sqlite
        and engine.url.get_backend_name() == "sqlite"
        and not table_names(engine)
    ):
        migrate.upgrade(engine)
        return
    where = describe(engine)
    if current is None:
        raise SchemaNotCurrentError(
            f"database {where} has no matplat schema: run `platform db upgrade` first"
        )
    raise SchemaNotCurrentError(
        f"database {where} is at schema revision {current}, not at head {head}: "
        "run `platform db upgrade`"
    )


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with session_factory(engine).begin() as session:
        yield session


def privileged_reason(engine: Engine) -> str | None:
    """Why user SQL on ``engine`` could reach beyond the database, or ``None``.

    PostgreSQL: a superuser, or a member of ``pg_read_server_files`` /
    ``pg_write_server_files`` / ``pg_execute_server_program``. MariaDB: an account with the
    global FILE or SUPER privilege (or all privileges). SQLite has no accounts: ``None``.
    """
    backend = engine.url.get_backend_name()
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                row = conn.exec_driver_sql(
                    "SELECT current_user, rolsuper, "
                    "pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') "
                    "OR pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') "
                    "OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') "
                    "FROM pg_roles WHERE rolname = current_user").one()
                if row[1]:
                    return f"PostgreSQL superuser {row[0]!r}"
                if row[2]:
                    return f"PostgreSQL role {row[0]!r} with server file access"
            elif backend in ("mysql", "mariadb"):
                user = conn.exec_driver_sql("SELECT CURRENT_USER()").scalar()
                privileges = {str(r[0]).upper() for r in conn.exec_driver_sql(
                    "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
                    "WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "
                    "'''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')")}
                found = sorted(privileges & {"FILE", "SUPER"})
                if found:
                    return f"MariaDB account {user!r} with the {' and '.join(found)} privilege"
    except exc.DBAPIError:  # cannot tell: no warning rather than a failure
        return None
    return None
