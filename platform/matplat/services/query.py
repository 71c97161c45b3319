"""Read-only SQL for users: one statement, no writes, no server files, typed parameters.

Three layers keep user SQL (``platform query``, every ``--where``) read-only:

1. :func:`check_read_only` reads the statement with :mod:`matplat.services.sqlguard` (strings,
   quoted names, comments and MariaDB's executable comments told apart) and refuses anything
   but one SELECT/WITH/VALUES/EXPLAIN/SHOW statement, writing keywords, ``INTO`` (``INTO
   OUTFILE``/``DUMPFILE`` write server files) and the functions that read server files or
   signal other sessions;
2. :mod:`matplat.services.readonly` runs it in a read-only transaction under a statement
   timeout;
3. the connection itself, when ``PLATFORM_QUERY_DATABASE_URL`` names a read-only role (see the
   README): the only layer that does not depend on this code knowing every server function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, text

from matplat.config import DEFAULT_QUERY_TIMEOUT
from matplat.errors import InputError
from matplat.services import sqlguard
from matplat.services.readonly import read_only, translate

if TYPE_CHECKING:  # pandas loads with the first query, not with `platform query --help`
    import pandas as pd

_READ_KEYWORDS = {"select", "with", "values", "explain", "show", "describe", "desc", "table"}
_WRITE_WORDS = {
    "insert", "update", "delete", "merge", "replace", "upsert", "create", "drop", "alter",
    "truncate", "grant", "revoke", "attach", "detach", "vacuum", "reindex", "copy", "call",
    "lock", "load", "handler", "set", "begin", "commit", "rollback", "procedure", "do",
    "prepare", "execute", "deallocate", "listen", "notify", "savepoint", "release"}
#: Words that make a statement write or read files on the server, or act on other sessions.
_SERVER_WORDS = {
    "outfile": "INTO OUTFILE writes files on the database server",
    "dumpfile": "INTO DUMPFILE writes files on the database server",
    "into": "INTO writes (a file with OUTFILE/DUMPFILE, else a variable or a table)",
    "load_file": "LOAD_FILE reads files on the database server",
    "load_extension": "load_extension loads code into the database",
    **{f: f"{f} reads files on the database server" for f in (
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
        "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalmapdir",
        "pg_ls_logicalsnapdir", "pg_ls_replslotdir", "lo_import", "lo_export")},
    **{f: f"{f} acts on the server or other sessions" for f in (
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
        "pg_promote", "pg_switch_wal", "set_config", "dblink", "dblink_exec",
        "dblink_connect", "setval", "nextval", "sys_exec", "sys_eval")},
}


def _dialect(engine_or_name: Engine | str) -> str:
    if isinstance(engine_or_name, str):
        return engine_or_name
    return engine_or_name.url.get_backend_name()


def _tokens(sql: str, dialect: str) -> list[sqlguard.Token]:
    try:
        return [t for t in sqlguard.tokenize(sql, dialect) if t.kind != "comment"]
    except ValueError as e:
        raise InputError(f"cannot read the SQL: {e}") from e


def _check_words(sql: str, dialect: str, *, allow_set: bool = False) -> None:
    try:
        words = sqlguard.code_words(sql, dialect)
    except ValueError as e:
        raise InputError(f"cannot read the SQL: {e}") from e
    for word in _SERVER_WORDS:  # in the table's order: the file forms first
        if word in words:
            raise InputError(f"only read-only queries are allowed: {_SERVER_WORDS[word]}")
    bad = sorted(words & _WRITE_WORDS - ({"set"} if allow_set else set()))
    if bad:
        raise InputError(f"only read-only queries are allowed: found {bad[0].upper()}")


def check_read_only(sql: str, dialect: str = "sqlite") -> str:
    """Return the statement without trailing semicolons, or raise :class:`InputError`.

    Only one statement starting with SELECT/WITH/VALUES/EXPLAIN/SHOW is accepted, with no
    data-changing keyword and no server-file form (``INTO OUTFILE``, ``LOAD_FILE``,
    ``pg_read_file`` …) in its code, executable comments included. The statement also runs
    in a read-only transaction (see :func:`run_query`), so this check is the first of two.
    """
    tokens = _tokens(sql, dialect)
    cut = len(sql)
    while tokens and tokens[-1].kind == "punct" and tokens[-1].text == ";":
        cut = tokens.pop().start
    if not tokens:
        raise InputError("empty SQL statement")
    statement = sql[:cut].strip()
    if any(t.kind == "punct" and t.text == ";" for t in tokens):
        raise InputError("only one SQL statement is allowed (found ';' inside the query)")
    first = tokens[0].text.lower() if tokens[0].kind == "word" else tokens[0].text
    if first not in _READ_KEYWORDS:
        raise InputError(
            f"only read-only queries are allowed (SELECT, WITH, VALUES, EXPLAIN); got {first.upper()}"
        )
    _check_words(statement, dialect, allow_set=first == "explain")
    return statement


def check_condition(where: str, dialect: str) -> str:
    """Check a ``--where`` condition: one balanced expression, no parameters, read-only."""
    tokens = _tokens(where, dialect)
    if not tokens:
        raise InputError("--where: empty condition")
    depth = 0
    for t in tokens:
        if t.kind == "punct" and t.text in "();":
            depth += {"(": 1, ")": -1, ";": 0}[t.text]
            if depth < 0 or t.text == ";":
                raise InputError(f"--where {where!r}: unbalanced ')' or ';' at character "
                                 f"{t.start + 1}: give one condition on materials m")
        if t.kind == "param":
            raise InputError(f"--where {where!r}: parameters ({t.text}) are not available here")
    if depth:
        raise InputError(f"--where {where!r}: unbalanced '(': give one condition on materials m")
    _check_words(where, dialect)
    return where.strip()


# --- parameters ---------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)\Z", re.IGNORECASE)
_PARAM_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::(text|int|float))?=(.*)\Z", re.DOTALL)


def parse_param(item: str) -> tuple[str, Any]:
    """``NAME=VALUE`` or ``NAME:TYPE=VALUE`` (TYPE text, int or float) → (name, value).

    The typing rule, the same on every engine: a VALUE written as an integer is an integer,
    one written as a decimal number (``1.5``, ``-2e-3``) a float, anything else text.
    ``nan``/``inf`` are refused (the engines disagree on them); ``:text`` passes them, and
    any number, as text.
    """
    m = _PARAM_ARG.match(item)
    if m is None:
        raise InputError(f"--param {item!r}: expected NAME=VALUE or NAME:TYPE=VALUE "
                         "(TYPE text, int or float; NAME letters, digits, _)")
    name, kind, raw = m.groups()
    if kind == "text":
        return name, raw
    if _NONFINITE.match(raw.strip()) and kind != "text":
        raise InputError(f"--param {item!r}: {raw.strip()} is not a finite number, and the "
                         f"engines disagree on it; write {name}:text={raw} to pass the text")
    if kind == "int" or (kind is None and _INT.match(raw.strip())):
        try:
            return name, int(raw)
        except ValueError:
            raise InputError(f"--param {item!r}: {raw!r} is not an integer") from None
    if kind == "float" or (kind is None and _FLOAT.match(raw.strip())):
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"--param {item!r}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"--param {item!r}: {raw!r} is not a finite number")
        return name, value
    return name, raw


def parse_params(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Every ``--param`` item through :func:`parse_param`; a name given twice is an error."""
    params: dict[str, Any] = {}
    for item in items:
        name, value = parse_param(item)
        if name in params:
            raise InputError(f"--param {name} given twice")
        params[name] = value
    return params


def _bound_text(statement: str, dialect: str, params: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    """``text()`` of the statement where only ``:name`` in code is a parameter."""
    names = sqlguard.param_names(statement, dialect)
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(f"query failed: no value for bind parameter '{missing[0]}' "
                         f"(give --param {missing[0]}=VALUE)")
    clause = text(sqlguard.escape_colons(statement, dialect))
    return clause.bindparams(*(bindparam(n) for n in names)), {n: params[n] for n in names}


def _fetch_postgres(conn: Connection, clause: Any, params: dict[str, Any]
                    ) -> tuple[list[tuple[Any, ...]], list[str]]:
    """PostgreSQL: the rows through a binary-format driver cursor.

    Binary results skip parsing every value from text, which took half the client time of
    a 12k-row answer (bench/RESULTS.md). SQLAlchemy still binds the named parameters.
    Numbers are sent without a type, as psycopg sends text: PostgreSQL then types them by
    context (``formula = :s`` with ``s=12`` compares text, ``natoms <= :n`` integers), as
    SQLite and MariaDB convert them, instead of failing on ``varchar = bigint``.
    """
    from psycopg.adapt import Dumper

    class UntypedNumber(Dumper):
        oid = 0  # unknown: the server infers the type

        def dump(self, obj: Any) -> bytes:
            return repr(obj).encode()

    compiled = clause.compile(dialect=conn.dialect)
    args = compiled.construct_params(params)
    with conn.connection.driver_connection.cursor(binary=True) as cur:  # type: ignore[union-attr]
        cur.adapters.register_dumper(int, UntypedNumber)
        cur.adapters.register_dumper(float, UntypedNumber)
        cur.execute(compiled.string, args)
        if cur.description is None:
            return [], []
        return cur.fetchall(), [d.name for d in cur.description]


def run_query(engine: Engine, sql: str, params: Mapping[str, Any] | None = None, *,
              timeout: float = DEFAULT_QUERY_TIMEOUT) -> pd.DataFrame:
    """Run one read-only statement inside a read-only transaction; return its rows.

    Raises :class:`InputError` for a refused or failing statement (one line), a
    :class:`~matplat.services.readonly.StatementTimeout` after ``timeout`` seconds.
    """
    dialect = _dialect(engine)
    statement = check_read_only(sql, dialect)
    clause, values = _bound_text(statement, dialect, dict(params or {}))

    def fetch() -> tuple[list[tuple[Any, ...]], list[str]]:
        with read_only(engine, timeout=timeout) as conn:
            if dialect == "postgresql":
                return _fetch_postgres(conn, clause, values)
            result = conn.execute(clause, values)
            # plain tuples: DataFrame.from_records over Row objects takes a slow path
            return [tuple(r) for r in result.fetchall()], list(result.keys())

    rows, columns = translate("query failed", fetch)
    import pandas as pd

    return pd.DataFrame.from_records(rows, columns=columns)


def select_ids(engine: Engine, where: str, *, table: str = "materials m",
               lo: int | None = None, hi: int | None = None,
               timeout: float = DEFAULT_QUERY_TIMEOUT) -> list[int]:
    """Ids of ``table`` rows matching a user ``--where`` condition (``lo..hi`` when given),
    selected in a read-only transaction: the condition is never part of a writing statement.
    """
    dialect = _dialect(engine)
    cond = check_condition(where, dialect)
    alias = table.split()[-1]
    rng = f" AND {alias}.id BETWEEN :lo AND :hi" if lo is not None else ""
    statement = f"SELECT {alias}.id FROM {table} WHERE ({cond}){rng} ORDER BY {alias}.id"
    check_read_only(statement, dialect)
    clause = text(sqlguard.escape_colons(statement, dialect))
    values = {"lo": lo, "hi": hi} if lo is not None else {}

    def fetch() -> list[int]:
        with read_only(engine, timeout=timeout) as conn:
            return [int(r[0]) for r in conn.execute(clause, values)]

    return translate(f"--where {where!r} is not a valid condition on {table}", fetch)
