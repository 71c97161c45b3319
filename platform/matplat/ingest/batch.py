"""`RowBatch`: rows of one table, as read from a dump (or from a live server).

A batch is columnar inside: the dump reader parses whole INSERT statements into one
array per column (Arrow arrays on the fast path, Python lists otherwise), and consumers
such as :mod:`matplat.ingest.oqmd` take numpy arrays straight from those columns
(:meth:`RowBatch.array`, :meth:`RowBatch.codes`) without building a Python tuple per row.
``rows`` (a list of tuples, values typed as the reader documents) is built lazily, so code
that wants rows gets rows, and code that builds batches from rows (a MySQL cursor) passes
``rows`` to the constructor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RowBatch"]


def _is_arrow(col: Any) -> bool:
    return hasattr(col, "to_pylist") and hasattr(col, "null_count")


class RowBatch:
    """Consecutive rows of one table.

    Attributes:
        table: table name (unqualified, as written in the dump).
        columns: column names, in the order of the values in each row.
        rows: list of tuples (built on first access when the batch is columnar).
        offset: index of the batch's first row among all rows of ``table`` read so far
            (0-based), so ``offset + i`` numbers a row within its table.
        byte_offset: position of the INSERT statement holding the first row in the
            (uncompressed) dump, or None when the batch did not come from a dump.
    """

    __slots__ = ("table", "columns", "offset", "byte_offset", "_rows", "_cols", "_n")

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple] | None = None,
        offset: int = 0,
        byte_offset: int | None = None,
    ) -> None:
        self.table = table
        self.columns = list(columns)
        self.offset = offset
        self.byte_offset = byte_offset
        self._rows = list(rows) if rows is not None else []
        self._cols: list[Any] | None = None
        self._n = len(self._rows)

    @classmethod
    def from_columns(
        cls,
        table: str,
        columns: Sequence[str],
        data: Sequence[Any],
        offset: int = 0,
        byte_offset: int | None = None,
        *,
        nrows: int | None = None,
    ) -> RowBatch:
        """Build a batch from one sequence per column (lists, numpy or Arrow arrays).

        ``nrows`` is only needed for a batch without columns (an empty projection).
        """
        if len(data) != len(columns):
            raise ValueError(f"{len(columns)} column names but {len(data)} columns of data")
        lengths = {len(c) for c in data}
        if nrows is not None:
            lengths.add(nrows)
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        batch = cls(table, columns, None, offset, byte_offset)
        batch._rows = None  # type: ignore[assignment]
        batch._cols = list(data)
        batch._n = lengths.pop() if lengths else 0
        return batch

    # -- row view -----------------------------------------------------------------
    @property
    def rows(self) -> list[tuple]:
        """The rows as tuples (int, float, str, bytes or None per value)."""
        if self._rows is None:
            lists = [self._as_list(c) for c in self._cols or []]
            self._rows = list(zip(*lists, strict=True)) if lists else [() for _ in range(self._n)]
        return self._rows

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        return iter(self.rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RowBatch):
            return NotImplemented
        return (
            self.table == other.table
            and self.columns == other.columns
            and self.offset == other.offset
            and self.rows == other.rows
        )

    def __repr__(self) -> str:
        return (
            f"RowBatch(table={self.table!r}, columns={self.columns!r}, rows=<{self._n} rows>, "
            f"offset={self.offset}, byte_offset={self.byte_offset})"
        )

    # -- column access ------------------------------------------------------------
    def index(self, name: str) -> int:
        """Position of column ``name``; KeyError naming the table when absent."""
        try:
            return self.columns.index(name)
        except ValueError:
            raise KeyError(f"table {self.table!r} has no column {name!r}") from None

    def _raw(self, name: str) -> Any:
        i = self.index(name)
        if self._cols is not None:
            return self._cols[i]
        return [r[i] for r in self._rows]

    @staticmethod
    def _as_list(col: Any) -> list:
        if _is_arrow(col):
            return col.to_pylist()
        if isinstance(col, np.ndarray):
            return col.tolist()
        return list(col)

    def column(self, name: str) -> list:
        """Values of one column as a Python list (None for NULL)."""
        return self._as_list(self._raw(name))

    def nulls(self, name: str) -> np.ndarray:
        """Boolean mask of the NULLs of one column."""
        col = self._raw(name)
        if _is_arrow(col):
            if col.null_count == 0:
                return np.zeros(len(col), dtype=bool)
            import pyarrow.compute as pc

            return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
        return np.fromiter((v is None for v in col), dtype=bool, count=len(col))

    def array(self, name: str, dtype: Any = np.float64, null: Any = None) -> np.ndarray:
        """One column as a numpy array of ``dtype``.

        NULL becomes ``null``; when ``null`` is None, NULL becomes NaN for float dtypes and
        raises ValueError for other dtypes (so a NULL is never silently turned into 0).
        """
        dt = np.dtype(dtype)
        col = self._raw(name)
        fill = null
        if fill is None and dt.kind == "f":
            fill = np.nan
        if _is_arrow(col):
            if col.null_count:
                if fill is None:
                    raise ValueError(f"column {self.table}.{name} holds NULL")
                import pyarrow as pa
                import pyarrow.compute as pc

                arrow_fill = pa.scalar(fill, type=pa.float64() if dt.kind == "f" else col.type)
                if dt.kind == "f" and not pa.types.is_floating(col.type):
                    col = col.cast(pa.float64())
                col = pc.fill_null(col, arrow_fill)
            out = col.to_numpy(zero_copy_only=False)
            return out.astype(dt, copy=not out.flags.writeable)
        values = list(col)
        if any(v is None for v in values):
            if fill is None:
                raise ValueError(f"column {self.table}.{name} holds NULL")
            values = [fill if v is None else v for v in values]
        return np.array(values, dtype=dt) if values else np.zeros(0, dtype=dt)

    def codes(self, name: str) -> tuple[np.ndarray, list]:
        """Dictionary-encode a column: (int32 codes with -1 for NULL, distinct values).

        Meant for low-cardinality text columns (element symbols, labels, fit names):
        ``categories[codes[i]]`` is row i's value.
        """
        col = self._raw(name)
        if _is_arrow(col):
            import pyarrow as pa

            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            enc = col.dictionary_encode()
            idx = enc.indices
            if idx.null_count:
                import pyarrow.compute as pc

                idx = pc.fill_null(idx, -1)
            return idx.to_numpy(zero_copy_only=False).astype(np.int32), enc.dictionary.to_pylist()
        lookup: dict[Any, int] = {}
        cats: list = []
        out = np.empty(len(col), dtype=np.int32)
        for i, v in enumerate(col):
            if v is None:
                out[i] = -1
                continue
            if isinstance(v, bytes):
                v = v.decode("utf-8", "surrogateescape")
            code = lookup.get(v)
            if code is None:
                code = lookup[v] = len(cats)
                cats.append(v)
            out[i] = code
        return out, cats

    def slice(self, start: int, stop: int) -> RowBatch:
        """Rows ``start:stop`` as a new batch (offset adjusted)."""
        stop = min(stop, self._n)
        if self._cols is not None:
            data = [c[start:stop] for c in self._cols]
            return RowBatch.from_columns(
                self.table,
                self.columns,
                data,
                self.offset + start,
                self.byte_offset,
                nrows=max(0, stop - start),
            )
        return RowBatch(
            self.table, self.columns, self._rows[start:stop], self.offset + start, self.byte_offset
        )
