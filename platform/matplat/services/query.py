"""Read-only SQL for users: one statement, no writes, results as a DataFrame."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text
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
            result = conn.execute(text(statement), dict(params or {}))
            rows = result.fetchall()
            columns = list(result.keys())
        except sa_exc.DBAPIError as e:
            reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            raise InputError(f"query failed: {reason}") from e
        finally:
            if backend == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = OFF")
            conn.rollback()
    # Plain tuples: DataFrame.from_records over SQLAlchemy Row objects takes a slow
    # per-element path (about 10 µs a row, 120 ms for 12k rows of six columns).
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)
