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


def _fixed_field(arr: np.ndarray) -> tuple[str, np.ndarray | None]:
    """Big-endian COPY dtype of a fixed-width numpy column and its NULL mask (or None)."""
    kind = arr.dtype.kind
    if kind == "V":
        return f"V{arr.dtype.itemsize}", None
    if kind in _PG_FIXED and arr.dtype.itemsize in _PG_FIXED[kind]:
        null = np.isnan(arr) if kind == "f" else None
        if null is not None and not null.any():
            null = None
        return _PG_FIXED[kind][arr.dtype.itemsize], null
    raise TypeError(f"dtype {arr.dtype} has no fixed-width COPY field")


def copy_binary(conn: Connection, table: str, columns: dict[str, Any]) -> int:
    """PostgreSQL binary COPY of a mix of fixed- and variable-width columns, built with numpy.

    :func:`binary_payload` then :func:`copy_payload`; the columns are described there.
    """
    parts = binary_payload(columns)
    if parts:
        copy_payload(conn, table, list(columns), parts)
    return len(next(iter(columns.values()))) if columns else 0


def copy_payload(conn: Connection, table: str, names: list[str], parts: list[bytes]) -> None:
    """Send a payload made by :func:`binary_payload` with ``COPY table (names) FROM STDIN``."""
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as cp,
    ):
        for part in parts:
            cp.write(part)


def binary_payload(columns: dict[str, Any]) -> list[bytes]:
    """The PostgreSQL binary COPY data of the rows given column-wise (no database needed).

    Columns, all of the same length:

    - numpy int16/int32/int64 (smallint/integer/bigint) and float64 (double precision)
      arrays; NaN in a float column is NULL; a ``numpy.ma`` masked array has NULLs where
      masked;
    - ``S{n}`` arrays: short text of varying length (element symbols, digit strings): rows
      are grouped by the lengths of their values, so each group has fixed width;
    - ``V{n}`` arrays: exactly n raw bytes per row (bytea);
    - lists (or object arrays) of ``str``/``bytes``/None: variable-length text or bytea, str
      encoded as UTF-8, None as NULL.

    Rows with the same NULL pattern and ``S`` lengths are built as one numpy structured
    array (no Python code per row); variable-length values are spliced in between the
    fixed parts with one ``bytes.join``. Row order in the table is not preserved across
    groups (no caller relies on heap order). Returns the payload's parts; [] for no rows.
    """
    names = list(columns)
    if not names:
        return []
    n = len(columns[names[0]])
    if n == 0:
        return []
    # Normalise: ("fixed", be dtype, values, null mask) | ("text", values S, lengths) | ("var", list)
    cols: list[tuple] = []
    group_keys: list[np.ndarray] = []
    for name in names:
        col = columns[name]
        if isinstance(col, np.ma.MaskedArray):
            mask = np.ma.getmaskarray(col)
            data = np.ma.getdata(col)
            dt, null = _fixed_field(data)
            null = mask if null is None else (mask | null)
            cols.append(("fixed", dt, data, null if null.any() else None))
        elif isinstance(col, np.ndarray) and col.dtype.kind == "S":
            lengths = np.char.str_len(col).astype(np.int64)
            cols.append(("text", None, col, lengths))
            group_keys.append(lengths)
            continue
        elif isinstance(col, np.ndarray) and col.dtype.kind != "O":
            dt, null = _fixed_field(col)
            cols.append(("fixed", dt, col, null))
        else:
            values = [v.encode() if isinstance(v, str) else v for v in col]
            cols.append(("var", None, values, None))
            continue
        if cols[-1][3] is not None:
            group_keys.append(cols[-1][3].astype(np.int64))
        if len(cols[-1][2]) != n:
            raise ValueError(f"column {name!r} has {len(cols[-1][2])} rows, expected {n}")
    groups: list[np.ndarray | None] = [None]
    if group_keys:
        radices = [int(k.max()) + 1 for k in group_keys]
        if math.prod(radices) < 1 << 62:  # one int64 key: mixed radix over the columns' keys
            key = np.zeros(n, dtype=np.int64)
            for k, r in zip(group_keys, radices, strict=True):
                key = key * r + k
        else:
            _, key = np.unique(np.stack(group_keys, axis=1), axis=0, return_inverse=True)
            key = key.reshape(-1)
        if key.min() != key.max():
            order = np.argsort(key, kind="stable")
            cuts = np.flatnonzero(np.diff(key[order])) + 1
            groups = np.split(order, cuts)
    payload = [_PG_EPOCH_HEADER]
    for rows in groups:
        payload.append(_binary_rows(cols, rows, n))
    payload.append(b"\xff\xff")
    return payload


def _binary_rows(cols: list[tuple], rows: np.ndarray | None, n: int) -> bytes:
    """Binary COPY rows of one group (same NULL pattern and text lengths): bytes."""
    first = 0 if rows is None else int(rows[0])
    m = n if rows is None else len(rows)

    def take(a: Any) -> Any:
        return a if rows is None else a[rows]

    segments: list[np.ndarray] = []
    pieces: list[list[bytes]] = []
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    values: dict[str, Any] = {"nfields": len(cols)}
    for k, (kind, dt, data, extra) in enumerate(cols):
        if kind == "var":
            vals = data if rows is None else [data[i] for i in rows.tolist()]
            fields.append((f"len{k}", ">i4"))
            values[f"len{k}"] = np.fromiter(
                (-1 if v is None else len(v) for v in vals), dtype=np.int64, count=m
            )
            segments.append(_segment(fields, values, m))
            pieces.append([b"" if v is None else v for v in vals])
            fields, values = [], {}
            continue
        if kind == "text":
            width = int(extra[first])
            fields.append((f"len{k}", ">i4"))
            if width:
                fields.append((f"v{k}", f"S{width}"))
            values[f"len{k}"] = width
            if width:
                values[f"v{k}"] = take(data)
            continue
        if extra is not None and extra[first]:  # NULL in this whole group
            fields.append((f"len{k}", ">i4"))
            values[f"len{k}"] = -1
            continue
        fields += [(f"len{k}", ">i4"), (f"v{k}", dt)]
        values[f"len{k}"] = np.dtype(dt).itemsize
        values[f"v{k}"] = take(data)
    if not pieces:
        return _segment(fields, values, m).tobytes()
    segments.append(_segment(fields, values, m))
    sliced = []
    for seg in segments:
        raw, w = seg.tobytes(), seg.dtype.itemsize
        sliced.append([raw[i : i + w] for i in range(0, len(raw), w)] if w else [b""] * m)
    parts: list[list[bytes]] = [sliced[0]]
    for var, seg in zip(pieces, sliced[1:], strict=True):
        parts += [var, seg]
    return b"".join([b for row in zip(*parts, strict=True) for b in row])


def _segment(fields: list[tuple[str, str]], values: dict[str, Any], m: int) -> np.ndarray:
    rec = np.empty(m, dtype=np.dtype(fields)) if fields else np.empty(m, dtype=np.dtype([]))
    for name, _ in fields:
        rec[name] = values[name]
    return rec


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
