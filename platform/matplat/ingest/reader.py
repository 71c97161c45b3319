"""Streaming reader for ``mysqldump`` / ``mariadb-dump`` output.

``iter_dump(path, {"atoms", "structures"})`` yields :class:`RowBatch` es of the wanted tables
in file order, reading the file in 4 MiB chunks: memory is bounded by the chunk size, one
INSERT statement (MySQL writes ~1 MB per statement; a statement longer than
``_PART_MAX`` is handed over in pieces cut at row boundaries found by a quote-aware scan)
and one batch of rows, whatever the file size or line length.

Statements understood: ``-- `` and ``#`` comments, ``/* */`` and ``/*!40101 … */`` comments
(also around view and trigger bodies, which are skipped), ``DELIMITER``, ``SET``, ``USE``,
``LOCK/UNLOCK TABLES``, ``DROP``, ``CREATE TABLE`` (column names and types, backticks),
``INSERT [IGNORE] INTO t [(cols)] VALUES …`` and ``REPLACE``, extended or one row per
statement, MySQL (one line per statement) or MariaDB (one row per line) layout.

Statement ends: an INSERT ends at the first ``;`` + newline after its header. mysqldump
escapes line breaks inside values (``\\n``), so a raw newline never occurs inside a value;
the value parser then checks that every byte up to there is part of a well-formed row, so
a violated assumption is reported, never silently misread. Other statements (small) are
scanned quote- and comment-aware. Tables not asked for are skipped with ``bytes.find``
only (no value parsing).

Values are typed from the CREATE TABLE column types (see :mod:`matplat.ingest.values`):
integer types → int, float/double/decimal → float (``5`` → 5.0, ``5e-324`` exact), text →
str (UTF-8, undecodable bytes as surrogates), blob/binary → bytes, bit → int, NULL → None,
the text ``'NULL'`` → ``"NULL"``.

Errors: truncation (end of file inside a statement, a value or a comment, or a file that
began with mysqldump's header comment but lacks its ``-- Dump completed`` trailer),
malformed syntax and non-dump files raise :class:`DumpFormatError` naming the file, the
byte offset (in the decompressed stream for compressed files), the table and row where
known, and what was expected.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

from matplat.ingest.batch import RowBatch
from matplat.ingest.dumpio import (
    DumpFormatError,
    ThreadedDecompressor,
    open_dump,
    sniff_stream,
    source_position,
)
from matplat.ingest.parallel import ParseWorker
from matplat.ingest.values import (
    AUTO,
    TableShape,
    ValuesError,
    arrow_eligible,
    column_kind,
    parse_arrow,
    parse_exact,
    parse_regex,
)

__all__ = ["DumpFormatError", "RowBatch", "iter_dump", "open_dump", "parse_create_table"]

_CHUNK = 1 << 22  # bytes read per fill
_PART_MAX = 1 << 25  # a kept INSERT longer than this is handed over in row-aligned pieces
_HEAD_MAX = 1 << 16  # room for an INSERT header with a column list
_PARALLEL_MIN = 1 << 26  # start the parse worker once this many bytes were read (auto mode)
_MAX_INFLIGHT = 3  # parse jobs started but not yet handed out; the oldest is waited for beyond

_IDENT = rb"`(?:[^`]|``)+`|[A-Za-z0-9_$]+"
_WS_RE = re.compile(rb"[ \t\r\n\f\v]*")
_WORD_RE = re.compile(rb"[A-Za-z_]+")
_INSERT_RE = re.compile(
    rb"(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?"
    rb"(" + _IDENT + rb")(?:\s*\.\s*(" + _IDENT + rb"))?\s*(?:\(([^)]*)\)\s*)?VALUES?\s*(?=\()",
    re.I,
)
_CREATE_TABLE_RE = re.compile(
    rb"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rb"(" + _IDENT + rb")(?:\s*\.\s*(" + _IDENT + rb"))?\s*\(",
    re.I,
)
_DEF_TOKEN_RE = re.compile(
    rb"'(?:[^'\\]|\\[\s\S]|'')*'|\"(?:[^\"\\]|\\[\s\S]|\"\")*\"|`(?:[^`]|``)*`|[(),]|[^'\"`(),]+"
)
_NOT_COLUMNS = {
    "PRIMARY", "KEY", "INDEX", "UNIQUE", "CONSTRAINT", "FOREIGN", "FULLTEXT", "SPATIAL",
    "CHECK", "PERIOD", "SYSTEM", "VECTOR",
}  # fmt: skip
_KNOWN_STATEMENTS = {
    b"SET", b"USE", b"LOCK", b"UNLOCK", b"DROP", b"ALTER", b"START", b"BEGIN", b"COMMIT",
    b"ROLLBACK", b"SAVEPOINT", b"RELEASE", b"DELETE", b"TRUNCATE", b"UPDATE", b"FLUSH",
    b"GRANT", b"REVOKE", b"RENAME", b"SELECT", b"CHANGE", b"RESET", b"ANALYZE", b"OPTIMIZE",
    b"DO", b"CALL", b"PREPARE", b"EXECUTE", b"DEALLOCATE", b"XA", b"INSTALL", b"UNINSTALL",
    b"HANDLER", b"LOAD", b"SHOW", b"STOP", b"PURGE", b"CHECKSUM", b"REPAIR", b"CHECK",
}  # fmt: skip
_QUOTE_RUN = {
    b"'": re.compile(rb"[^'\\]*"),
    b'"': re.compile(rb'[^"\\]*'),
    b"`": re.compile(rb"[^`]*"),
}
_HEADER_MARKS = (b"-- MySQL dump", b"-- MariaDB dump")
_TRAILER_MARK = b"-- Dump completed"
_OUT_RE = re.compile(rb"['\"]|\)\s*,")


def _ident(raw: bytes) -> str:
    if raw[:1] == b"`":
        raw = raw[1:-1].replace(b"``", b"`")
    return raw.decode("utf-8", "surrogateescape")


def _split_column_list(raw: bytes) -> list[str]:
    names = []
    for tok in re.findall(_IDENT, raw):
        names.append(_ident(tok))
    return names


def parse_create_table(text: bytes) -> tuple[str, list[tuple[str, str]]] | None:
    """``(table, [(column, sql type), …])`` from a CREATE TABLE statement; None otherwise."""
    m = _CREATE_TABLE_RE.match(text)
    if m is None:
        return None
    table = _ident(m.group(2) or m.group(1))
    defs: list[bytes] = []
    cur: list[bytes] = []
    depth = 0
    for tok in _DEF_TOKEN_RE.findall(text, m.end()):
        if tok == b"(":
            depth += 1
        elif tok == b")":
            if depth == 0:
                break
            depth -= 1
        elif tok == b"," and depth == 0:
            defs.append(b"".join(cur))
            cur = []
            continue
        cur.append(tok)
    else:
        return None  # no closing parenthesis
    defs.append(b"".join(cur))
    columns: list[tuple[str, str]] = []
    for d in defs:
        d = d.strip()
        if not d:
            continue
        nm = re.match(_IDENT, d)
        if nm is None:
            continue
        word = nm.group()
        if word[:1] != b"`" and word.decode("ascii", "replace").upper() in _NOT_COLUMNS:
            continue
        sql_type = d[nm.end() :].strip().decode("utf-8", "surrogateescape")
        columns.append((_ident(word), sql_type))
    return table, columns


class _QuoteScan:
    """Incremental quote-aware scan of a giant INSERT body for row boundaries ``),``."""

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.quote: bytes | None = None
        self.last_cut = -1  # index of the ')' of the last row boundary seen

    def shift(self, n: int) -> None:
        self.pos -= n
        if self.last_cut >= 0:
            self.last_cut -= n

    def advance(self, buf: bytes, limit: int) -> None:
        i = self.pos
        while i < limit:
            if self.quote is None:
                m = _OUT_RE.search(buf, i, limit)
                if m is None:
                    i = limit
                    break
                if m.group()[:1] == b")":
                    self.last_cut = m.start()
                else:
                    self.quote = m.group()
                i = m.end()
            else:
                i = _QUOTE_RUN[self.quote].match(buf, i, limit).end()
                if i >= limit:
                    break
                if buf[i : i + 1] == b"\\":
                    if i + 1 >= limit:
                        break
                    i += 2
                    continue
                if i + 1 >= limit:
                    break  # maybe a doubled quote: decide when more data is there
                if buf[i + 1 : i + 2] == self.quote:
                    i += 2
                    continue
                self.quote = None
                i += 1
        self.pos = i


class _Reader:
    """One pass over one dump; ``__iter__`` yields the batches."""

    def __init__(
        self,
        stream: IO[bytes],
        name: str,
        *,
        tables: set[str] | None,
        columns: Mapping[str, Sequence[str]] | None,
        schema: Mapping[str, Sequence[tuple[str, str]]] | None,
        batch_rows: int,
        progress: Callable[[int], Any] | None,
        parallel: bool | None = None,
        path: str | None = None,
        size_hint: int = 0,
    ) -> None:
        self.read = stream.read
        self.stream = stream
        self.name = name
        self.compressed = isinstance(stream, ThreadedDecompressor)
        self.want = None if tables is None else set(tables)
        self.proj = {k: list(v) for k, v in (columns or {}).items()}
        self.schema = {k: list(v) for k, v in (schema or {}).items()}
        self.batch_rows = batch_rows
        self.progress = progress
        self.buf = b""
        self.pos = 0
        self.base = 0
        self.consumed = 0
        self.eof = False
        self.delim = b";"
        self._special: re.Pattern[bytes] | None = None
        self.defs: dict[str, list[tuple[str, str]]] = {}
        self.shapes: dict[tuple, TableShape] = {}
        self.rows_seen: dict[str, int] = {}
        self.saw_header = False
        self.saw_trailer = False
        self.statements = 0
        self.p_shape: TableShape | None = None
        self.p_parts: list[tuple[int, bytes]] = []
        self.p_rows = 0
        # Parallel parsing (see matplat.ingest.parallel): None = once the input is large.
        self.parallel = parallel if (os.cpu_count() or 1) > 1 else False
        self.path = path  # the plain file being read, which the worker can pread itself
        self.worker: ParseWorker | None = None
        self.inflight: deque[list] = deque()  # [shape, parts, job id | None, result]
        if self.parallel is not False and size_hint >= _PARALLEL_MIN:
            self.worker = ParseWorker()  # a large file: start it now, ready when needed

    # -- buffer ---------------------------------------------------------------------
    def _fill(self, keep: int) -> int:
        """Drop ``buf[:keep]`` and append the next chunk; returns ``keep`` (the shift)."""
        data = b"" if self.eof else self.read(_CHUNK)
        if data:
            self.buf = self.buf[keep:] + data
            self.consumed += len(data)
            if self.progress is not None:
                self.progress(source_position(self.stream, self.consumed))
        else:
            self.eof = True
            self.buf = self.buf[keep:]
        self.base += keep
        self.pos -= keep
        return keep

    def _ensure(self, n: int) -> None:
        while len(self.buf) - self.pos < n and not self.eof:
            self._fill(self.pos)

    def _where(self, pos: int) -> str:
        kind = "byte" if not self.compressed else "decompressed byte"
        return f"{self.name}: {kind} {self.base + pos}"

    def _at(self, abs_pos: int) -> str:
        kind = "byte" if not self.compressed else "decompressed byte"
        return f"{self.name}: {kind} {abs_pos}"

    # -- driver ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[RowBatch]:
        self._ensure(1)
        if not self.buf:
            raise DumpFormatError(f"{self.name}: empty file, not a mysqldump")
        try:
            while self._skip_ignorable():
                yield from self._statement()
        except DumpFormatError:
            # Rows parsed in parallel come before the error, and so does an error in them.
            yield from self._drain(0)
            raise
        yield from self._flush()
        yield from self._drain(0)
        if self.statements == 0:
            raise DumpFormatError(
                f"{self._where(len(self.buf))}: the file holds no SQL statement, only comments "
                f"or blanks: not a mysqldump file, or one truncated within its header"
            )
        if self.saw_header and not self.saw_trailer:
            raise DumpFormatError(
                f"{self._where(len(self.buf))}: the file ends without mysqldump's closing "
                f"'-- Dump completed' comment although it began with mysqldump's header: "
                f"the dump is truncated"
            )
        if self.progress is not None:
            self.progress(source_position(self.stream, self.consumed))

    def _skip_ignorable(self) -> bool:
        """Skip whitespace, comments and empty statements; False at end of file."""
        while True:
            self._ensure(max(3, len(self.delim)))
            buf = self.buf
            pos = _WS_RE.match(buf, self.pos).end()
            self.pos = pos
            if pos >= len(buf):
                if self.eof:
                    return False
                self._fill(pos)
                continue
            c = buf[pos]
            if c == 45 and buf.startswith(b"--", pos):  # '-'
                nxt = buf[pos + 2 : pos + 3]
                if nxt in (b"", b" ", b"\t", b"\n", b"\r"):
                    self._skip_line_comment()
                    continue
                return True
            if c == 35:  # '#'
                self._skip_line_comment()
                continue
            if c == 47 and buf.startswith(b"/*", pos):  # '/'
                self._skip_block_comment()
                continue
            if buf.startswith(self.delim, pos):
                self.pos = pos + len(self.delim)
                continue
            return True

    def _skip_line_comment(self) -> None:
        self._ensure(32)
        head = self.buf[self.pos : self.pos + 32]
        if head.startswith(_HEADER_MARKS):
            self.saw_header = True
        elif head.startswith(_TRAILER_MARK):
            self.saw_trailer = True
        while True:
            j = self.buf.find(b"\n", self.pos)
            if j >= 0:
                self.pos = j + 1
                return
            if self.eof:
                self.pos = len(self.buf)
                return
            self.pos = len(self.buf)
            self._fill(self.pos)

    def _skip_block_comment(self) -> None:
        start_abs = self.base + self.pos
        i = self.pos + 2
        while True:
            j = self.buf.find(b"*/", i)
            if j >= 0:
                self.pos = j + 2
                return
            if self.eof:
                raise DumpFormatError(
                    f"{self._where(len(self.buf))}: unexpected end of file inside the /* comment "
                    f"that began at byte {start_abs}: expected '*/'; the dump is truncated"
                )
            self.pos = max(i, len(self.buf) - 1)
            self._fill(self.pos)
            i = self.pos

    def _statement(self) -> Iterator[RowBatch]:
        self._ensure(64)
        m = _WORD_RE.match(self.buf, self.pos)
        word = m.group().upper() if m else b""
        if word in (b"INSERT", b"REPLACE"):
            self.statements += 1
            yield from self._insert()
        elif word == b"CREATE":
            self.statements += 1
            self._create()
        elif word == b"DELIMITER":
            self.statements += 1
            self._delimiter()
        elif word in _KNOWN_STATEMENTS:
            self.statements += 1
            self.pos = self._scan_statement_end()
        else:
            found = self.buf[self.pos : self.pos + 24]
            rest = self.buf[self.pos :]
            if self.eof and b"\n" not in rest and self.delim not in rest:
                maybe = (
                    ""
                    if (self.statements or self.saw_header)
                    else "this does not look like a mysqldump file, or "
                )
                raise DumpFormatError(
                    f"{self._where(len(self.buf))}: unexpected end of file inside a statement "
                    f"that began with {found!r}: {maybe}the dump is truncated"
                )
            if self.statements == 0 and not self.saw_header:
                raise DumpFormatError(
                    f"{self._where(self.pos)}: this does not look like a mysqldump file: "
                    f"expected SQL comments or statements (SET, CREATE TABLE, INSERT …), "
                    f"found {found!r}"
                )
            raise DumpFormatError(
                f"{self._where(self.pos)}: expected an SQL statement (INSERT, CREATE TABLE, "
                f"SET, LOCK TABLES …), found {found!r}"
            )

    # -- generic statements -----------------------------------------------------------
    def _special_re(self) -> re.Pattern[bytes]:
        if self._special is None:
            self._special = re.compile(rb"['\"`]|/\*|" + re.escape(self.delim))
        return self._special

    def _eof_in_statement(self, start_abs: int, what: str) -> DumpFormatError:
        head = (
            self.buf[start_abs - self.base : start_abs - self.base + 40]
            if start_abs >= self.base
            else b""
        )
        return DumpFormatError(
            f"{self._where(len(self.buf))}: unexpected end of file inside the statement that "
            f"began at byte {start_abs} ({head!r}…): expected {what}; the dump is truncated"
        )

    def _scan_statement_end(self) -> int:
        """Index just past the delimiter of the statement at ``pos`` (quote/comment aware)."""
        delim = self.delim
        special = self._special_re()
        start_abs = self.base + self.pos
        i = self.pos
        state: bytes | None = None
        while True:
            buf = self.buf
            if state is None:
                m = special.search(buf, i)
                if m is None:
                    if self.eof:
                        raise self._eof_in_statement(start_abs, f"{delim.decode()!r}")
                    i = max(i, len(buf) - max(len(delim), 2) + 1)
                    i -= self._fill(self.pos)
                    continue
                tok = m.group()
                if tok == delim:
                    return m.end()
                i = m.end()
                state = b"*/" if tok == b"/*" else tok
            elif state == b"*/":
                j = buf.find(b"*/", i)
                if j < 0:
                    if self.eof:
                        raise self._eof_in_statement(start_abs, "'*/'")
                    i = max(i, len(buf) - 1)
                    i -= self._fill(self.pos)
                    continue
                i, state = j + 2, None
            else:
                i = _QUOTE_RUN[state].match(buf, i).end()
                if i + 1 >= len(buf) and not self.eof:
                    i -= self._fill(self.pos)
                    continue
                if i >= len(buf):
                    raise self._eof_in_statement(start_abs, f"a closing {state.decode()}")
                if (buf[i] == 92 and state != b"`") or buf[i + 1 : i + 2] == state:
                    i += 2  # a backslash escape or a doubled quote
                else:
                    i, state = i + 1, None

    def _delimiter(self) -> None:
        while True:
            j = self.buf.find(b"\n", self.pos)
            if j >= 0 or self.eof:
                end = j if j >= 0 else len(self.buf)
                break
            self._fill(self.pos)
        line = self.buf[self.pos : end].split()
        if len(line) != 2:
            raise DumpFormatError(f"{self._where(self.pos)}: expected 'DELIMITER <string>'")
        self.delim = line[1]
        self._special = None
        self.pos = end + 1 if j >= 0 else end

    def _create(self) -> None:
        end = self._scan_statement_end()  # may shift the buffer: read pos afterwards
        text = self.buf[self.pos : end]
        self.pos = end
        parsed = parse_create_table(text)
        if parsed is not None and parsed[1]:
            table, cols = parsed
            self.defs[table] = cols

    # -- INSERT -----------------------------------------------------------------------
    def _shape(self, table: str, col_list: bytes | None, start_abs: int) -> TableShape:
        defs = self.defs.get(table) or self.schema.get(table)
        if col_list is not None:
            names = _split_column_list(col_list)
            known = dict(defs or [])
            kinds = [column_kind(known[n]) if n in known else AUTO for n in names]
        elif defs:
            names = [c for c, _ in defs]
            kinds = [column_kind(t) for _, t in defs]
        else:
            raise DumpFormatError(
                f"{self._at(start_abs)}: INSERT INTO `{table}`: the table's columns are unknown "
                f"(no CREATE TABLE before it and no column list in the INSERT)"
            )
        key = (table, tuple(names), tuple(kinds))
        shape = self.shapes.get(key)
        if shape is None:
            wanted: list[int] = []
            if table in self.proj:
                for col in self.proj[table]:
                    if col not in names:
                        raise DumpFormatError(
                            f"{self._at(start_abs)}: table `{table}` has no column `{col}` "
                            f"(its columns: {', '.join(names)})"
                        )
                    wanted.append(names.index(col))
            else:
                wanted = list(range(len(names)))
            shape = TableShape(table, names, kinds, wanted)
            self.shapes[key] = shape
        return shape

    def _insert(self) -> Iterator[RowBatch]:
        start_abs = self.base + self.pos
        self._ensure(_HEAD_MAX)
        m = _INSERT_RE.match(self.buf, self.pos)
        if m is None:
            if self.eof and len(self.buf) - self.pos < _HEAD_MAX:
                raise self._eof_in_statement(start_abs, "INSERT INTO `table` … VALUES (…)")
            raise DumpFormatError(
                f"{self._where(self.pos)}: malformed INSERT statement: expected "
                f"INSERT INTO `table` [(`column`, …)] VALUES (…), found "
                f"{self.buf[self.pos : self.pos + 60]!r}"
            )
        table = _ident(m.group(2) or m.group(1))
        self.pos = m.end()
        if self.want is not None and table not in self.want:
            self._skip_insert(table, start_abs)
            return
        shape = self._shape(table, m.group(3), start_abs)
        yield from self._read_insert(shape, start_abs)

    def _final_delim_end(self, i: int) -> int:
        """At EOF: end of a body closed by the delimiter without a newline, or -1."""
        tail = self.buf.rstrip()
        if tail.endswith(self.delim) and len(tail) - len(self.delim) >= i:
            body = tail[: len(tail) - len(self.delim)].rstrip()
            if body.endswith(b")"):  # else the file was cut right after a ';' inside a value
                return len(tail) - len(self.delim)
        return -1

    def _check_row_end(self, j: int, table: str, start_abs: int) -> None:
        buf = self.buf
        k = j - 1
        while k >= 0 and buf[k] in b" \t\r\n":
            k -= 1
        if k < 0 or buf[k] != 41:  # ')'
            raise DumpFormatError(
                f"{self._where(j)}: INSERT INTO `{table}` that began at byte {start_abs}: expected "
                f"')' before the ';' that ends the statement, found "
                f"{self.buf[max(0, j - 20) : j + 1]!r} (a raw line break inside a value?)"
            )

    def _skip_insert(self, table: str, start_abs: int) -> None:
        term = self.delim + b"\n"
        dl = len(self.delim)
        i = self.pos
        while True:
            # As in _read_insert: a statement per line (MySQL) ends at the first newline,
            # found with memchr; otherwise (MariaDB, a row per line) search the terminator.
            buf = self.buf
            j = buf.find(b"\n", i)
            if j >= 0:
                if j - dl >= i and buf[j - dl : j] == self.delim:
                    j -= dl
                else:
                    j = buf.find(term, max(i, j - dl))
            if j >= 0:
                self._check_row_end(j, table, start_abs)
                self.pos = j + len(term)
                return
            if self.eof:
                end = self._final_delim_end(i)
                if end >= 0:
                    self._check_row_end(end, table, start_abs)
                    self.pos = len(self.buf)
                    return
                raise DumpFormatError(
                    f"{self._where(len(self.buf))}: unexpected end of file inside INSERT INTO "
                    f"`{table}` that began at byte {start_abs}: expected more rows or ';'; "
                    f"the dump is truncated"
                )
            # Keep a few bytes in case the terminator straddles the chunk boundary.
            self.pos = max(i, len(self.buf) - len(term) - 64)
            self._fill(self.pos)
            i = self.pos

    def _read_insert(self, shape: TableShape, start_abs: int) -> Iterator[RowBatch]:
        term = self.delim + b"\n"
        start = self.pos
        i = start
        scan: _QuoteScan | None = None
        while True:
            buf = self.buf
            # MySQL writes a statement per line: one memchr finds its end. MariaDB writes a
            # row per line: then search for the terminator itself.
            dl = len(self.delim)
            j = buf.find(b"\n", i)
            if j >= 0:
                if j - dl >= i and buf[j - dl : j] == self.delim:
                    j -= dl
                else:
                    j = buf.find(term, max(i, j - dl))
            if j >= 0:
                end = j
                self._check_row_end(j, shape.name, start_abs)
                self.pos = j + len(term)
                break
            if self.eof:
                end = self._final_delim_end(i)
                if end >= 0:
                    self._check_row_end(end, shape.name, start_abs)
                    self.pos = len(buf)
                    break
                yield from self._drain(0)  # so that rows_seen counts every row before
                raise self._truncated_insert(shape, start_abs, start)
            if len(buf) - start > _PART_MAX:
                # A giant statement: hand over the complete rows read so far.
                if scan is None:
                    scan = _QuoteScan(start)
                scan.advance(buf, len(buf) - 8)
                if scan.last_cut > start:
                    cut = scan.last_cut
                    yield from self._add_part(shape, buf[start : cut + 1], self.base + start)
                    nxt = buf.index(b",", cut) + 1
                    start = _WS_RE.match(buf, nxt).end()
                    scan.last_cut = -1
            i = max(start, len(buf) - len(term) + 1)
            self.pos = start
            shift = self._fill(start)
            start -= shift
            i -= shift
            if scan is not None:
                scan.shift(shift)
        body = self.buf[start:end].rstrip()
        yield from self._add_part(shape, body, self.base + start)

    def _truncated_insert(self, shape: TableShape, start_abs: int, start: int) -> DumpFormatError:
        body = self.buf[start:].rstrip()
        row0 = self.rows_seen.get(shape.name, 0) + self.p_rows
        detail = "expected more rows or ';'"
        try:
            _, n = parse_exact(shape, body)
            detail = f"after {n} complete rows of it, expected ',' and more rows or ';'"
        except ValuesError as exc:
            detail = f"in row {exc.row + 1} of it (about row {row0 + exc.row + 1} of the table): {exc.message}"
        return DumpFormatError(
            f"{self._where(len(self.buf))}: unexpected end of file inside INSERT INTO "
            f"`{shape.name}` that began at byte {start_abs}, {detail}; the dump is truncated"
        )

    # -- batching -----------------------------------------------------------------------
    def _add_part(self, shape: TableShape, body: bytes, abs_off: int) -> Iterator[RowBatch]:
        if self.p_shape is not shape and self.p_parts:
            yield from self._flush()
        # Rows estimated from the bytes per row seen so far (counting separators costs a
        # pass over the text); batches are cut at exact row counts after parsing anyway.
        est = max(1, len(body) // shape.row_bytes)
        if self.p_parts and self.p_rows + est > self.batch_rows:
            yield from self._flush()
        self.p_shape = shape
        self.p_parts.append((abs_off, body))
        self.p_rows += est
        if self.p_rows >= self.batch_rows:
            yield from self._flush()

    def _parse_part(
        self, shape: TableShape, abs_off: int, body: bytes, row0: int, arrow_tried: bool = False
    ) -> tuple[list, int]:
        arrow = None if arrow_tried else parse_arrow(shape, [body])
        if arrow is not None:
            return arrow[0], arrow[1][0]
        res = parse_regex(shape, body)
        if res is not None:
            return res
        try:
            return parse_exact(shape, body)
        except ValuesError as exc:
            raise DumpFormatError(
                f"{self._at(abs_off + exc.pos)}: table `{shape.name}`, row {row0 + exc.row + 1} "
                f"(row {exc.row + 1} of the INSERT whose values begin at byte {abs_off}): "
                f"{exc.message}"
            ) from None

    def _flush(self) -> Iterator[RowBatch]:
        parts, shape = self.p_parts, self.p_shape
        self.p_parts, self.p_shape, self.p_rows = [], None, 0
        if not parts or shape is None:
            return
        worker = self._worker_for(shape)
        if worker is not None:
            if self.path is not None:
                source: tuple = ("file", self.path, [(off, len(b)) for off, b in parts])
            else:
                source = ("bytes", [b for _, b in parts])
            self.inflight.append([shape, parts, worker.submit(shape, source), None])
        else:
            self.inflight.append([shape, parts, None, parse_arrow(shape, [b for _, b in parts])])
        yield from self._drain(_MAX_INFLIGHT)

    def _worker_for(self, shape: TableShape) -> ParseWorker | None:
        """The parse worker if it should take this job (it has fewer than two), else None."""
        if self.parallel is False or not arrow_eligible(shape):
            return None
        if self.worker is None:
            if not self.parallel and self.consumed < _PARALLEL_MIN:
                return None
            self.worker = ParseWorker()  # auto mode parses here until it is ready
            if not self.parallel:
                return None
            self.worker.wait_ready()
        if not self.worker.available:
            return None
        busy = sum(1 for j in self.inflight if j[2] is not None and not self.worker.done(j[2]))
        return self.worker if busy < 2 else None

    def _drain(self, keep: int) -> Iterator[RowBatch]:
        """Hand out parsed jobs in file order; wait for the oldest while more than ``keep``."""
        while self.inflight:
            shape, parts, job, res = self.inflight[0]
            if job is not None:
                assert self.worker is not None
                if len(self.inflight) <= keep and not self.worker.done(job):
                    return
                res = self.worker.result(job)
            self.inflight.popleft()
            yield from self._emit(shape, parts, res)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def _emit(
        self, shape: TableShape, parts: list[tuple[int, bytes]], res: tuple | None
    ) -> Iterator[RowBatch]:
        """Batches of one parsed job; ``res`` None: parse here with every tier (exact errors)."""
        table = shape.name
        row0 = self.rows_seen.get(table, 0)
        if res is not None:
            cols, counts = res
        else:
            per = []
            done = row0
            for abs_off, body in parts:
                c, n = self._parse_part(shape, abs_off, body, done, len(parts) == 1)
                per.append((c, n))
                done += n
            counts = [n for _, n in per]
            cols = _concat_columns([c for c, _ in per], len(shape.wanted))
        total = sum(counts)
        if total:
            shape.row_bytes = max(8, sum(len(b) for _, b in parts) // total)
        self.rows_seen[table] = row0 + total
        names = shape.out_columns
        first = 0  # index of the part holding row a
        seen = 0  # rows in parts before `first`
        for a in range(0, total, self.batch_rows):
            b = min(a + self.batch_rows, total)
            while seen + counts[first] <= a:
                seen += counts[first]
                first += 1
            data = cols if (a, b) == (0, total) else [c[a:b] for c in cols]
            yield RowBatch.from_columns(table, names, data, row0 + a, parts[first][0], nrows=b - a)


def _concat_columns(parts: list[list], ncols: int) -> list:
    """Join the per-part columns (Arrow arrays or lists) into one column each."""
    if len(parts) == 1:
        return parts[0]
    out = []
    for k in range(ncols):
        segs = [p[k] for p in parts]
        if all(hasattr(s, "to_pylist") for s in segs):
            import pyarrow as pa

            out.append(pa.concat_arrays(segs))
        else:
            col: list = []
            for s in segs:
                col.extend(s.to_pylist() if hasattr(s, "to_pylist") else s)
            out.append(col)
    return out


def iter_dump(
    path_or_stream: str | os.PathLike[str] | IO[bytes],
    tables: set[str] | None = None,
    *,
    batch_rows: int = 50_000,
    progress: Callable[[int], Any] | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
    schema: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    parallel: bool | None = None,
) -> Iterator[RowBatch]:
    """Yield the rows of the wanted tables of a mysqldump file as :class:`RowBatch` es.

    Args:
        path_or_stream: a path (``.sql``, compressed, or ``-`` for stdin) or a binary stream.
        tables: table names to read; None reads every table. Others are skipped unparsed.
        batch_rows: at most this many rows per batch; a batch never spans two tables.
        progress: called after each chunk with the bytes of the underlying file consumed
            so far (compressed bytes for a compressed file), for a bar against its size.
        columns: optional projection ``{table: [column, …]}``: only these columns are
            converted and returned, in this order (much faster on wide tables).
        schema: column definitions ``{table: [(column, sql type), …]}`` used for a table
            whose CREATE TABLE is not in the dump (``--no-create-info``).
        parallel: parse in a second process as well (:mod:`matplat.ingest.parallel`):
            True, False, or None to do so once 64 MB were read on a machine with two or
            more cores. The rows, their order and any error are the same either way; only
            where batches are cut may differ (the cut follows a running bytes-per-row
            estimate).
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    is_path = isinstance(path_or_stream, (str, os.PathLike))
    plain: str | None = None
    size_hint = 0
    if is_path and str(path_or_stream) != "-":
        stream, size = open_dump(path_or_stream)  # type: ignore[arg-type]
        name = str(path_or_stream)
        if isinstance(stream, io.BufferedReader):  # not compressed: offsets are file offsets
            plain = os.path.abspath(name)
            size_hint = size or 0
        else:
            size_hint = 3 * (size or 0)  # a compressed dump inflates at least threefold
    else:
        # stdin or a caller's stream: decompress if needed, but never close it.
        raw = sys.stdin.buffer if is_path else path_or_stream
        name = "<stdin>" if is_path else str(getattr(raw, "name", "<stream>"))
        stream = sniff_stream(raw, name, close_raw=False)  # type: ignore[arg-type]
    reader = _Reader(
        stream,
        name,
        tables=tables,
        columns=columns,
        schema=schema,
        batch_rows=batch_rows,
        progress=progress,
        parallel=parallel,
        path=plain,
        size_hint=size_hint,
    )
    try:
        yield from reader
    finally:
        reader.close()
        stream.close()
