"""Read-only SQL for users: one statement, no writes, results as a DataFrame."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc

from matplat.errors import InputError

_READ_KEYWORDS = {"select", "with", "values", "explain", "show", "describe", "desc", "table"}
_WRITE_WORDS = re.compile(
    r"\b(insert|update|delete|merge|replace|upsert|create|drop|alter|truncate|grant|revoke|"
    r"attach|detach|vacuum|reindex|copy|call|lock|load|handler|set|begin|commit|rollback)\b",
    re.IGNORECASE,
)


def _strip_comments_and_strings(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.DOTALL)
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)
    sql = re.sub(r'"(?:[^"]|"")*"', '""', sql)
    return sql


def check_read_only(sql: str) -> str:
    """Return the statement without a trailing semicolon, or raise :class:`InputError`.

    Only one statement starting with SELECT/WITH/VALUES/EXPLAIN/SHOW is accepted, and it
    may not contain a data-changing keyword outside string literals. The statement also runs
    in a read-only transaction (see :func:`run_query`), so this check is the first of two.
    """
    stripped = sql.strip().rstrip(";").strip()
    bare = _strip_comments_and_strings(stripped).strip()
    if not bare:
        raise InputError("empty SQL statement")
    if ";" in bare:
        raise InputError("only one SQL statement is allowed (found ';' inside the query)")
    first = bare.split(None, 1)[0].lower()
    if first not in _READ_KEYWORDS:
        raise InputError(
            f"only read-only queries are allowed (SELECT, WITH, VALUES, EXPLAIN); got {first.upper()}"
        )
    m = _WRITE_WORDS.search(bare)
    if m and not (first == "explain" and m.group(1).lower() == "set"):
        raise InputError(f"only read-only queries are allowed: found {m.group(1).upper()}")
    return stripped


def _fetch_binary(conn: Connection, statement: str, params: dict[str, Any]
                  ) -> tuple[list[tuple[Any, ...]], list[str]]:
    """PostgreSQL: the rows through a binary-format driver cursor.

    Binary results skip parsing every value from text, which took half the client time of
    a 12k-row answer (bench/RESULTS.md). SQLAlchemy still binds the named parameters.
    """
    compiled = text(statement).compile(dialect=conn.dialect)
    args = compiled.construct_params(params)
    with conn.connection.driver_connection.cursor(binary=True) as cur:  # type: ignore[union-attr]
        cur.execute(compiled.string, args)
        if cur.description is None:
            return [], []
        return cur.fetchall(), [d.name for d in cur.description]


def run_query(engine: Engine, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run one read-only statement inside a read-only transaction; return its rows."""
    statement = check_read_only(sql)
    backend = engine.url.get_backend_name()
    with engine.connect() as conn:
        if backend == "postgresql" or backend in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        if backend == "postgresql":
            # JIT compilation starts above a plan cost that mid-sized aggregates reach and
            # then costs 0.2-0.3 s of an interactive query (bench/RESULTS.md); this
            # transaction only.
            conn.exec_driver_sql("SET LOCAL jit = off")
        elif backend == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
        try:
            if backend == "postgresql":
                rows, columns = _fetch_binary(conn, statement, dict(params or {}))
            else:
                result = conn.execute(text(statement), dict(params or {}))
                # plain tuples: DataFrame.from_records over Row objects takes a slow path
                rows = [tuple(r) for r in result.fetchall()]
                columns = list(result.keys())
        except (sa_exc.StatementError, sa_exc.InvalidRequestError) as e:
            orig = getattr(e, "orig", None)
            reason = str(orig if orig is not None else e).strip().splitlines()[0]
            reason = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", reason)
            raise InputError(f"query failed: {reason}") from e
        except conn.dialect.loaded_dbapi.Error as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"query failed: {reason}") from e
        finally:
            if backend == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = OFF")
            conn.rollback()
    return pd.DataFrame.from_records(rows, columns=columns)
