"""Read the OQMD tables from a live qmdb MySQL/MariaDB server, as the dump reader would."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import create_engine, inspect, text
from sqlalchemy import exc as sa_exc

from matplat.db.session import parse_url
from matplat.errors import DatabaseError, InputError
from matplat.ingest.batch import RowBatch


def iter_server_tables(
    url: str, tables: Iterable[str], batch_rows: int = 50_000
) -> Iterator[RowBatch]:
    """Yield :class:`RowBatch` of each wanted table in alphabetical order (as a dump has them),
    rows in primary-key order, streamed with a server-side cursor."""
    parsed = parse_url(url)
    engine = create_engine(parsed, future=True)
    try:
        try:
            present = set(inspect(engine).get_table_names())
        except sa_exc.DBAPIError as e:
            reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            raise DatabaseError(
                f"cannot read qmdb server {parsed.render_as_string(hide_password=True)}: {reason}"
            ) from e
        wanted = sorted(set(tables) & present)
        if not wanted:
            raise InputError(
                f"{parsed.render_as_string(hide_password=True)}: no OQMD tables found "
                f"(expected {', '.join(sorted(tables))})"
            )
        for table in wanted:
            columns = [c["name"] for c in inspect(engine).get_columns(table)]
            pk = inspect(engine).get_pk_constraint(table)["constrained_columns"] or columns[:1]
            with engine.connect().execution_options(stream_results=True) as conn:
                result = conn.execute(
                    text(
                        f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM `{table}` "
                        f"ORDER BY {', '.join(f'`{c}`' for c in pk)}"
                    )
                )
                offset = 0
                while rows := result.fetchmany(batch_rows):
                    yield RowBatch(table, columns, [tuple(r) for r in rows], offset)
                    offset += len(rows)
    finally:
        engine.dispose()
