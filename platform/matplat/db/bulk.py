"""Bulk writers per engine: PostgreSQL COPY, MySQL multi-row INSERT, SQLite executemany.

All writers work on an open SQLAlchemy ``Connection`` inside the caller's transaction, so a
failed or interrupted load rolls back with everything else. Columns arrive as sequences
(lists or numpy arrays) of equal length; ``None`` and float NaN in float columns become NULL.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

Column = Sequence[Any] | np.ndarray

_PG_EPOCH_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)


def _py_values(col: Column) -> list[Any]:
    """Column → list of Python values with NaN floats turned into None."""
    if isinstance(col, np.ndarray):
        if col.dtype.kind == "f":
            out = col.astype(float).tolist()
            return [None if v != v else v for v in out]
        if col.dtype.kind in "iub":
            return col.tolist()
        return list(col)
    return [None if isinstance(v, float) and math.isnan(v) else v for v in col]


def _rows(columns: dict[str, Column]) -> list[tuple[Any, ...]]:
    cols = [_py_values(c) for c in columns.values()]
    return list(zip(*cols, strict=True))


#: numpy kinds that map to PostgreSQL binary COPY fields (big-endian, fixed width).
_PG_FIXED = {"i": {8: ">i8", 4: ">i4", 2: ">i2"}, "f": {8: ">f8"}}


def copy_fixed_width(conn: Connection, table: str, columns: dict[str, np.ndarray]) -> int:
    """PostgreSQL binary COPY of NULL-free columns, the whole payload built with numpy.

    Columns are int64/int32/int16 (bigint/integer/smallint), float64 (double precision) or
    fixed-length bytes ``S{n}`` (text whose values all have n bytes; split rows by length
    first). One structured array holds every row, so no Python code runs per row.
    """
    n = len(next(iter(columns.values())))
    if n == 0:
        return 0
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    for k, (name, arr) in enumerate(columns.items()):
        kind = arr.dtype.kind
        if kind == "S":
            dt = f"S{arr.dtype.itemsize}"
        elif kind in _PG_FIXED and arr.dtype.itemsize in _PG_FIXED[kind]:
            dt = _PG_FIXED[kind][arr.dtype.itemsize]
        else:
            raise TypeError(f"column {name!r}: dtype {arr.dtype} has no fixed-width COPY field")
        fields += [(f"len{k}", ">i4"), (name, dt)]
    rec = np.empty(n, dtype=np.dtype(fields))
    rec["nfields"] = len(columns)
    for k, (name, arr) in enumerate(columns.items()):
        rec[f"len{k}"] = rec.dtype[name].itemsize
        rec[name] = arr
    payload = _PG_EPOCH_HEADER + rec.tobytes() + b"\xff\xff"
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    ) as cp:
        cp.write(payload)
    return n


def insert_columns(
    conn: Connection,
    table: str,
    columns: dict[str, Column],
) -> int:
    """Insert rows given column-wise into ``table`` with the engine's fast path.

    """
    if not columns:
        return 0
    n = len(next(iter(columns.values())))
    if n == 0:
        return 0
    names = list(columns)
    backend = conn.dialect.name
    if backend == "postgresql":
        raw = conn.connection.driver_connection  # psycopg.Connection
        with raw.cursor() as cur, cur.copy(
            f"COPY {table} ({', '.join(names)}) FROM STDIN"
        ) as cp:
            for row in _rows(columns):
                cp.write_row(row)
        return n
    placeholders = (
        ", ".join(["%s"] * len(names))
        if backend in ("mysql", "mariadb")
        else ", ".join(["?"] * len(names))
    )
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})"
    rows = _rows(columns)
    dbapi_conn = conn.connection.driver_connection
    cur = dbapi_conn.cursor()
    try:
        if backend in ("mysql", "mariadb"):
            # PyMySQL rewrites executemany of INSERT … VALUES into multi-row INSERTs;
            # batches stay under max_allowed_packet.
            step = 5000
            for i in range(0, len(rows), step):
                cur.executemany(sql, rows[i : i + step])
        else:
            cur.executemany(sql, rows)
    finally:
        cur.close()
    return n


def insert_ignore(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping those whose primary key exists (idempotent writes).

    ``table`` is a SQLAlchemy ``Table``. Returns the number of rows offered.
    """
    if not rows:
        return 0
    backend = conn.dialect.name
    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing()
    elif backend in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as my_insert

        stmt = my_insert(table).prefix_with("IGNORE")
    else:
        from sqlalchemy.dialects.sqlite import insert as lite_insert

        stmt = lite_insert(table).on_conflict_do_nothing()
    conn.execute(stmt, rows)
    return len(rows)


def upsert(
    conn: Connection, table: Any, rows: list[dict[str, Any]], keys: list[str], update: list[str]
) -> int:
    """Insert rows, or update ``update`` columns where the ``keys`` already exist."""
    if not rows:
        return 0
    backend = conn.dialect.name
    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
    elif backend in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as my_insert

        stmt = my_insert(table)
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
    else:
        from sqlalchemy.dialects.sqlite import insert as lite_insert

        stmt = lite_insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
    conn.execute(stmt, rows)
    return len(rows)


def write_predictions(
    conn: Connection,
    model_version_id: int,
    material_ids: np.ndarray,
    prop: str,
    values: np.ndarray,
    uncertainty: np.ndarray | None,
) -> int:
    """Insert predictions of one property, skipping rows that exist (idempotent).

    PostgreSQL: binary COPY (built with numpy) into a temporary staging table, then
    ``INSERT … SELECT … ON CONFLICT DO NOTHING``. MySQL: multi-row ``INSERT IGNORE``.
    SQLite: ``INSERT OR IGNORE`` with executemany. NaN values become NULL uncertainty.
    """
    n = len(material_ids)
    if n == 0:
        return 0
    values = np.asarray(values, dtype=np.float64)
    unc = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    backend = conn.dialect.name
    if backend == "postgresql":
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS stage_predictions (model_version_id bigint, "
            "material_id bigint, property varchar(32), value double precision, "
            "uncertainty double precision) ON COMMIT DELETE ROWS"
        )
        conn.exec_driver_sql("TRUNCATE stage_predictions")
        mids = np.asarray(material_ids, dtype=np.int64)
        has = np.zeros(n, bool) if unc is None else ~np.isnan(unc)
        for part in (~has, has):  # rows without, then with an uncertainty (no NULLs in COPY)
            if not part.any():
                continue
            cols = {
                "model_version_id": np.full(int(part.sum()), model_version_id, np.int64),
                "material_id": mids[part],
                "property": np.full(int(part.sum()), prop.encode()),
                "value": values[part],
            }
            if part is has:
                cols["uncertainty"] = unc[part]  # type: ignore[index]
            copy_fixed_width(conn, "stage_predictions", cols)
        conn.exec_driver_sql(
            "INSERT INTO predictions (model_version_id, material_id, property, value, uncertainty) "
            "SELECT model_version_id, material_id, property, value, uncertainty "
            "FROM stage_predictions ON CONFLICT DO NOTHING"
        )
        return n
    mids = np.asarray(material_ids, dtype=np.int64).tolist()
    vals = values.tolist()
    uncs = [None] * n if unc is None else [None if u != u else u for u in unc.tolist()]
    rows = list(zip([model_version_id] * n, mids, [prop] * n, vals, uncs, strict=True))
    verb = "INSERT IGNORE" if backend in ("mysql", "mariadb") else "INSERT OR IGNORE"
    mark = "%s" if backend in ("mysql", "mariadb") else "?"
    sql = (
        f"{verb} INTO predictions (model_version_id, material_id, property, value, uncertainty)"
        f" VALUES ({', '.join([mark] * 5)})"
    )
    cur = conn.connection.driver_connection.cursor()
    try:
        for i in range(0, n, 5000):
            cur.executemany(sql, rows[i : i + 5000])
    finally:
        cur.close()
    return n
