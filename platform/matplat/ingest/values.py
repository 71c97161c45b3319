"""Parsing the VALUES of INSERT statements into typed columns.

Three tiers, fastest first; each returns the same values or declines:

1. **Arrow** (``pyarrow.csv``, C++): the rows of one or more statements are turned into CSV
   lines by replacing the row separators ``),(`` (MySQL: a statement on one line) or
   ``),\\n(`` (MariaDB: a row per line) with newlines, and parsed with ``'`` as quote and
   ``\\`` as escape character, exact float parsing, ``NULL`` unquoted as null and ``'NULL'``
   as text. It is only used where it is provably exact: no raw CR, no escapes whose meaning
   differs from "drop the backslash" (``\\0 \\b \\n \\r \\t \\Z \\% \\_``), no hex/bit/
   introducer literals, only int/float/text columns, and the number of rows Arrow returns
   equals the number of separators + 1 (a separator inside a quoted string would make Arrow
   return fewer rows, since ``newlines_in_values`` keeps a newline inside quotes).
2. **Regex** (``re.findall`` with one group per wanted column and a catch-all group that
   flags any byte not covered by a row), then a C-level ``map(int|float, column)`` per
   column with a per-value fallback for NULL and quoted/hex forms.
3. **Exact tokenizer**: one value at a time, positions known, for error messages; it is the
   reference the other two must agree with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "INT",
    "FLOAT",
    "STR",
    "BYTES",
    "BITS",
    "AUTO",
    "column_kind",
    "TableShape",
    "ValuesError",
    "parse_values",
    "unescape",
]

INT, FLOAT, STR, BYTES, BITS, AUTO = "int", "float", "str", "bytes", "bits", "auto"

_INT_TYPES = {
    "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean",
    "serial", "year", "int1", "int2", "int3", "int4", "int8", "middleint",
}  # fmt: skip
_FLOAT_TYPES = {"float", "double", "real", "decimal", "numeric", "dec", "fixed", "float4", "float8"}
_BYTES_TYPES = {
    "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
    "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection",
}  # fmt: skip


def column_kind(sql_type: str) -> str:
    """Map an SQL column type (``int(11)``, ``double precision``, ``longtext``...) to a kind."""
    t = sql_type.strip().lower()
    m = re.match(r"[a-z0-9_]+", t)
    base = m.group(0) if m else t
    if base in _INT_TYPES:
        return INT
    if base in _FLOAT_TYPES:
        return FLOAT
    if base == "bit":
        return BITS
    if base in _BYTES_TYPES or re.search(r"\b(character set|charset)\s+binary\b", t):
        return BYTES
    return STR


class ValuesError(Exception):
    """A syntax error inside VALUES: ``pos`` within the body, ``row`` (0-based) in it."""

    def __init__(self, message: str, pos: int, row: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.row = row


# -- literals --------------------------------------------------------------------------
_ESCAPES: dict[bytes, bytes] = {b"\\" + bytes([c]): bytes([c]) for c in range(256)}
_ESCAPES.update(
    {
        b"\\0": b"\x00",
        b"\\b": b"\x08",
        b"\\n": b"\n",
        b"\\r": b"\r",
        b"\\t": b"\t",
        b"\\Z": b"\x1a",
        b"\\%": b"\\%",  # MySQL keeps the backslash before % and _ (LIKE escapes)
        b"\\_": b"\\_",
        b"''": b"'",
        b'""': b'"',
    }
)
_ESC_RE = re.compile(rb"\\[\s\S]|''")
_ESC_DQ_RE = re.compile(rb'\\[\s\S]|""')


def unescape(s: bytes, quote: int = 39) -> bytes:
    """Content of a quoted literal (without its quotes) with MySQL escapes applied."""
    if b"\\" not in s and (b"''" not in s if quote == 39 else b'""' not in s):
        return s
    rx = _ESC_RE if quote == 39 else _ESC_DQ_RE
    return rx.sub(lambda m: _ESCAPES[m.group(0)], s)


_SQ = rb"'[^'\\]*(?:(?:\\[\s\S]|'')[^'\\]*)*'"
_DQ = rb'"[^"\\]*(?:(?:\\[\s\S]|"")[^"\\]*)*"'
_NUM = rb"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# Hex before numbers: a match must not stop at the "0" of "0x1F".
_VALUE = (
    rb"NULL|" + _SQ + rb"|0[xX][0-9a-fA-F]*|" + _NUM + rb"|[xX]'[0-9a-fA-F]*'|[bB]'[01]*'"
    rb"|_[A-Za-z0-9]+\s*(?:" + _SQ + rb"|0[xX][0-9a-fA-F]*)|" + _DQ
)
_VALUE_RE = re.compile(_VALUE)
_NUM_RE = re.compile(_NUM)
_WS_RE = re.compile(rb"\s*")
_INTRODUCER_RE = re.compile(rb"_[A-Za-z0-9]+\s*")


def _literal_bytes(v: bytes) -> bytes | None:
    """Decode a literal to raw bytes; None for NULL. Numbers come back as their text."""
    c = v[:1]
    if c == b"'":
        return unescape(v[1:-1])
    if v == b"NULL":
        return None
    if c == b"0" and v[1:2] in (b"x", b"X"):
        h = v[2:]
        return bytes.fromhex((b"0" + h if len(h) % 2 else h).decode())
    if c in (b"x", b"X") and v[1:2] == b"'":
        return bytes.fromhex(v[2:-1].decode())
    if c in (b"b", b"B") and v[1:2] == b"'":
        bits = v[2:-1]
        n = int(bits, 2) if bits else 0
        return n.to_bytes((len(bits) + 7) // 8, "big")
    if c == b"_":
        m = _INTRODUCER_RE.match(v)
        return _literal_bytes(v[m.end() :]) if m else v
    if c == b'"':
        return unescape(v[1:-1], 34)
    return v


def _is_number(v: bytes) -> bool:
    m = _NUM_RE.fullmatch(v)
    return m is not None


def conv_int(v: bytes) -> int | None:
    """Literal → int (None for NULL); ValueError when it is not an integer."""
    if v == b"NULL":
        return None
    c = v[:1]
    if (
        c in (b"b", b"B")
        or (c == b"0" and v[1:2] in (b"x", b"X"))
        or (c in (b"x", b"X") and v[1:2] == b"'")
    ):
        return int.from_bytes(_literal_bytes(v) or b"", "big")
    raw = _literal_bytes(v)
    assert raw is not None
    try:
        return int(raw)
    except ValueError:
        f = float(raw)
        if f.is_integer():
            return int(f)
        raise ValueError(f"not an integer: {raw[:40]!r}") from None


def conv_float(v: bytes) -> float | None:
    """Literal → float (None for NULL), correctly rounded like the server's strtod."""
    if v == b"NULL":
        return None
    raw = _literal_bytes(v)
    assert raw is not None
    c = v[:1]
    if c in (b"b", b"B") or (c == b"0" and v[1:2] in (b"x", b"X")):
        return float(int.from_bytes(raw, "big"))
    return float(raw)


def conv_str(v: bytes) -> str | None:
    """Literal → str (UTF-8, undecodable bytes kept as surrogates); None for NULL."""
    if v[:1] == b"'":
        s = v[1:-1]
        if b"\\" in s or b"''" in s:
            s = unescape(s)
        return s.decode("utf-8", "surrogateescape")
    raw = _literal_bytes(v)
    return None if raw is None else raw.decode("utf-8", "surrogateescape")


def conv_bytes(v: bytes) -> bytes | None:
    """Literal → bytes; None for NULL."""
    return _literal_bytes(v)


def conv_bits(v: bytes) -> int | None:
    """BIT column literal (``b'101'``, ``0x05`` or a raw byte string) → int."""
    if v == b"NULL":
        return None
    if _is_number(v):
        return int(v)
    raw = _literal_bytes(v)
    return int.from_bytes(raw or b"", "big")


def conv_auto(v: bytes) -> Any:
    """Literal of a column of unknown type: numbers by form, text as str, hex as bytes."""
    if v == b"NULL":
        return None
    c = v[:1]
    if c in (b"'", b'"', b"_"):
        return conv_str(v)
    if (c == b"0" and v[1:2] in (b"x", b"X")) or (c in (b"x", b"X", b"b", b"B") and v[1:2] == b"'"):
        return _literal_bytes(v)
    try:
        return int(v)
    except ValueError:
        return float(v)


_CONVERTERS: dict[str, Callable[[bytes], Any]] = {
    INT: conv_int,
    FLOAT: conv_float,
    STR: conv_str,
    BYTES: conv_bytes,
    BITS: conv_bits,
    AUTO: conv_auto,
}


def _convert_column(kind: str, col: Sequence[bytes]) -> list:
    """Convert one column of literal texts; C-level ``map`` when every value is plain."""
    if kind == INT:
        try:
            return list(map(int, col))
        except ValueError:
            pass
    elif kind == FLOAT:
        try:
            return list(map(float, col))
        except ValueError:
            pass
    conv = _CONVERTERS[kind]
    return [conv(v) for v in col]


# -- table shapes and per-table patterns -------------------------------------------
@dataclass
class TableShape:
    """Columns of a table as the reader needs them, with compiled per-table parsers."""

    name: str
    columns: list[str]
    kinds: list[str]
    wanted: list[int] | None = None  # indices of the columns returned; None: all
    row_bytes: int = 100  # running estimate of bytes per row, for batching
    _regex: re.Pattern[bytes] | None = field(default=None, repr=False)
    _arrow: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.wanted is None:
            self.wanted = list(range(len(self.columns)))

    @property
    def out_columns(self) -> list[str]:
        return [self.columns[i] for i in self.wanted]

    @property
    def out_kinds(self) -> list[str]:
        return [self.kinds[i] for i in self.wanted]

    def regex(self) -> re.Pattern[bytes]:
        """``(v1,...,vn)`` rows with separators; the last group catches any other byte."""
        if self._regex is None:
            wanted = set(self.wanted)
            parts = []
            for i in range(len(self.columns)):
                parts.append((b"(" if i in wanted else b"(?:") + _VALUE + b")")
            row = rb"\(\s*" + rb"\s*,\s*".join(parts) + rb"\s*\)"
            self._regex = re.compile(row + rb"\s*(?:,\s*(?=\()|\Z)|([\s\S])")
        return self._regex


# -- tier 3: exact tokenizer -----------------------------------------------------------
def parse_exact(shape: TableShape, body: bytes) -> tuple[list[list], int]:
    """Parse ``(…),(…)`` exactly; returns (columns, nrows) or raises ValuesError."""
    n = len(body)
    ncols = len(shape.columns)
    wanted = shape.wanted
    convs = [_CONVERTERS[shape.kinds[i]] for i in wanted]
    out: list[list] = [[] for _ in wanted]
    i = 0
    row = 0
    ws = _WS_RE.match
    while True:
        i = ws(body, i).end()
        if i >= n:
            raise ValuesError("expected '(' to start a row, found the end of the statement", i, row)
        if body[i] != 40:  # (
            raise ValuesError(f"expected '(' to start a row, found {body[i : i + 20]!r}", i, row)
        i += 1
        values: list[bytes] = []
        while True:
            i = ws(body, i).end()
            m = _VALUE_RE.match(body, i)
            if m is None:
                if i >= n:
                    what = "found the end of the statement inside a row"
                elif body[i] in (39, 34):
                    what = "unterminated string literal"
                else:
                    what = f"expected a value (number, 'string', NULL, 0x…), found {body[i : i + 20]!r}"
                raise ValuesError(what, i, row)
            values.append(m.group())
            i = ws(body, m.end()).end()
            if i < n and body[i] == 44:  # ,
                i += 1
                continue
            if i < n and body[i] == 41:  # )
                i += 1
                break
            found = "the end of the statement" if i >= n else repr(body[i : i + 20])
            raise ValuesError(f"expected ',' or ')' after a value, found {found}", i, row)
        if len(values) != ncols:
            raise ValuesError(
                f"row has {len(values)} values but table `{shape.name}` has {ncols} columns", i, row
            )
        for k, j in enumerate(wanted):
            try:
                out[k].append(convs[k](values[j]))
            except (ValueError, UnicodeError) as exc:
                raise ValuesError(
                    f"column `{shape.columns[j]}` ({shape.kinds[j]}): cannot convert "
                    f"{values[j][:40]!r}: {exc}",
                    i,
                    row,
                ) from None
        row += 1
        i = ws(body, i).end()
        if i >= n:
            return out, row
        if body[i] != 44:
            raise ValuesError(
                f"expected ',' and the next row after this row, found {body[i : i + 20]!r}",
                i,
                row - 1,
            )
        i += 1


# -- tier 2: regex ---------------------------------------------------------------------
def parse_regex(shape: TableShape, body: bytes) -> tuple[list[list], int] | None:
    """Parse with the table's row pattern; None when any byte is not part of a row."""
    found = shape.regex().findall(body)
    if not found:
        return None
    nw = len(shape.wanted)
    if nw == 0:
        # Only the catch-all group: a string per match, empty for rows.
        if any(found):
            return None
        return [], len(found)
    cols = list(zip(*found, strict=True))
    if any(cols[-1]):
        return None
    # Groups come in column order; the caller wants them in projection order.
    by_col = dict(zip(sorted(shape.wanted), cols[:-1], strict=True))
    try:
        out = [_convert_column(shape.kinds[i], by_col[i]) for i in shape.wanted]
    except (ValueError, UnicodeError):
        return None
    return out, len(found)


# -- tier 1: Arrow ---------------------------------------------------------------------
try:  # pyarrow is a declared dependency; without it tiers 2 and 3 still work
    import pyarrow as _pa
    import pyarrow.compute as _pc
    import pyarrow.csv as _pacsv
except ImportError:  # pragma: no cover - exercised only where pyarrow is missing
    _pa = None
    _pc = None
    _pacsv = None

_ARROW_ESC_RE = re.compile(rb"\\[0bnrtZ%_]")
# Literal forms Arrow would read as plain text when they stand in a text column,
# or with whitespace around a quoted value, which Arrow would keep as part of the text.
_ODD_TEXT = r"""^(?:0[xX]|[xXbB]'|_[A-Za-z0-9]+\s*'|")|^\s|\s$"""
_ODD_TEXT_RE = re.compile(_ODD_TEXT)
_ARROW_BLOCK = 1 << 20


def arrow_available() -> bool:
    """Whether the Arrow tier can be used in this environment."""
    return _pa is not None


def _arrow_options(shape: TableShape) -> Any:
    if shape._arrow is None:
        # Two extra fields per line: what lies between ")" and "," and between "," and "(".
        names = [f"c{i}" for i in range(len(shape.columns))] + ["_sep1", "_sep2"]
        types = {"_sep1": _pa.string(), "_sep2": _pa.string()}
        for i in shape.wanted:
            k = shape.kinds[i]
            types[names[i]] = (
                _pa.int64() if k == INT else _pa.float64() if k == FLOAT else _pa.string()
            )
        # Every text column is read (unwanted ones as raw binary) to count its values.
        text = [names[i] for i, k in enumerate(shape.kinds) if k == STR]
        for name in text:
            types.setdefault(name, _pa.binary())
        include = [names[i] for i in shape.wanted] + ["_sep1", "_sep2"]
        include += [n for n in text if n not in include]
        shape._arrow = (
            _pacsv.ReadOptions(column_names=names, block_size=_ARROW_BLOCK, use_threads=False),
            _pacsv.ParseOptions(
                quote_char="'",
                escape_char="\\",
                double_quote=True,
                newlines_in_values=True,
                ignore_empty_lines=True,
            ),
            _pacsv.ConvertOptions(
                column_types=types,
                null_values=["NULL"],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                include_columns=include,
                check_utf8=True,
            ),
            text,
        )
    return shape._arrow


def arrow_eligible(shape: TableShape) -> bool:
    """Arrow handles tables whose columns are all int, float or text, with at least one wanted."""
    return (
        _pa is not None and bool(shape.wanted) and all(k in (INT, FLOAT, STR) for k in shape.kinds)
    )


def _arrow_lines(bodies: Sequence[bytes]) -> tuple[Any, list[int], int] | None:
    """The rows of the bodies as CSV lines in one buffer, rows per body, delimiting quotes.

    ``(1,2),(3,4)`` becomes ``\\n1,2,,\\n3,4,,`` by a byte substitution (``(`` → newline,
    ``)`` → comma), done with numpy over one buffer that holds every body followed by a
    comma: each row becomes a line with two extra, empty fields, and the MariaDB layout
    ``),\\n(`` only adds empty lines. A parenthesis inside a string would also be
    substituted, so the bodies must hold exactly one ``(`` and one ``)`` per row: the caller
    checks that Arrow found as many rows as there are ``(`` (a substituted ``(`` inside
    quotes stays inside the value) and that the extra fields are empty.

    The quotes that open or close a string (all ``'`` but those escaped by an odd run of
    backslashes) must number two per non-NULL text value: that rules out unquoted text,
    adjacent literals and doubled quotes, which Arrow would accept.
    """
    total = 0
    for body in bodies:
        if len(body) < 2 or body[0] != 40 or body[-1] != 41:
            return None
        if b"\r" in body or (b"\\" in body and _ARROW_ESC_RE.search(body)):
            return None
        total += len(body) + 1
    buf = np.empty(total, dtype=np.uint8)
    starts = []
    pos = 0
    for body in bodies:
        starts.append(pos)
        buf[pos : pos + len(body)] = np.frombuffer(body, dtype=np.uint8)
        pos += len(body)
        buf[pos] = 44  # ","
        pos += 1
    starts.append(pos)
    # Parentheses are sparse (two per row): substitute them at their positions.
    opening = np.flatnonzero(buf == 40)
    counts = np.diff(np.searchsorted(opening, starts)).tolist()
    buf[opening] = 10
    closing = np.flatnonzero(buf == 41)
    if len(closing) != len(opening):
        return None
    buf[closing] = 44
    quote = buf == 39
    quotes = int(np.count_nonzero(quote))
    for body, start in zip(bodies, starts, strict=False):
        if quotes and b"\\" in body:
            bs = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 92)
            brk = np.flatnonzero(np.diff(bs) != 1)
            first = bs[np.r_[0, brk + 1]]
            last = bs[np.r_[brk, len(bs) - 1]]
            escaped = last[(last - first) % 2 == 0] + 1  # after an odd run of backslashes
            escaped = escaped[escaped < len(body)]
            quotes -= int(np.count_nonzero(quote[start + escaped]))
    return buf, counts, quotes


def _all_empty(col: Any) -> bool:
    """Whether every value of a string column is '' (not NULL), read off its offsets."""
    if col.null_count:
        return False
    for chunk in col.chunks:
        if len(chunk):
            offsets = np.frombuffer(
                chunk.buffers()[1], dtype=np.int32, count=len(chunk) + 1, offset=4 * chunk.offset
            )
            if offsets[-1] != offsets[0]:
                return False
    return True


def _text_column_ok(col: Any, bodies: Sequence[bytes]) -> bool:
    """False when a text column may hold a hex/bit/introducer literal or an empty field."""
    if len(col) > 64:
        col = col.unique()  # element symbols, labels: a few distinct values to check
    if len(col) <= 4096:  # Python's \s is a superset of RE2's: never laxer
        values = [v for v in col.to_pylist() if v is not None]
        if any(_ODD_TEXT_RE.search(v) for v in values):
            return False
        empty = "" in values
    else:
        if _pc.any(_pc.match_substring_regex(col, _ODD_TEXT)).as_py():
            return False
        empty = bool(_pc.any(_pc.equal(col, "")).as_py())
    if empty:
        # '' is fine; an unquoted empty field (",,") is a syntax error Arrow would accept.
        return not any(b",," in b or b"(," in b or b",)" in b for b in bodies)
    return True


def parse_arrow(shape: TableShape, bodies: Sequence[bytes]) -> tuple[list, list[int]] | None:
    """Parse bodies of one table in one Arrow call: (columns, rows per body) or None.

    None means "not provably exact here": the caller falls back to the other tiers.
    """
    if not arrow_eligible(shape):
        return None
    conv = _arrow_lines(bodies)
    if conv is None:
        return None
    data, counts, quotes = conv
    ro, po, co, text = _arrow_options(shape)
    try:
        table = _pacsv.read_csv(
            _pa.BufferReader(_pa.py_buffer(data)),
            read_options=ro,
            parse_options=po,
            convert_options=co,
        )
    except (_pa.ArrowInvalid, _pa.ArrowNotImplementedError, _pa.ArrowTypeError):
        return None
    if table.num_rows != sum(counts):
        return None
    for sep in ("_sep1", "_sep2"):  # anything between rows but "," is a syntax error
        if not _all_empty(table.column(sep)):
            return None
    text_values = sum(table.num_rows - table.column(n).null_count for n in text)
    if quotes != 2 * text_values:
        return None
    cols = []
    for i in shape.wanted:
        col = table.column(f"c{i}")
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        if shape.kinds[i] == STR and not _text_column_ok(col, bodies):
            return None
        cols.append(col)
    return cols, counts


# -- entry point -------------------------------------------------------------------------
def parse_values(shape: TableShape, body: bytes) -> tuple[list, int]:
    """Parse one body, regex tier first, exact tier when it declines (raises ValuesError)."""
    res = parse_regex(shape, body)
    if res is not None:
        return res
    return parse_exact(shape, body)
