"""Errors of the dump reader: truncation, corruption, non-dump files; gzip, stdin, progress."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from matplat.errors import InputError
from matplat.ingest.reader import DumpFormatError, iter_dump, open_dump
from matplat.ingest.sample import write_sample_dump

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dumps") / "small.sql"
    write_sample_dump(path, 40, seed=3)
    return path


def _consume(src: object, tables: set[str] | None = None) -> list:
    return [r for b in iter_dump(src, tables) for r in b.rows]  # type: ignore[arg-type]


def test_truncated_anywhere_is_an_error_with_the_offset(small_dump: Path, tmp_path: Path) -> None:
    data = small_dump.read_bytes()
    end = data.rindex(b"-- Dump completed")
    # Evenly spaced cuts plus cuts at the most delicate places: inside values, strings,
    # escapes, right after a row, right before the terminator, inside comments.
    cuts = set(range(1, end, max(1, end // 150)))
    for marker in (
        b"),(",
        b"\\'",
        b"'",
        b";\n",
        b"VALUES ",
        b"/*!",
        b"-- ",
        b"CREATE TABLE",
        b"e-",
    ):
        for m in list(re.finditer(re.escape(marker), data))[:6]:
            cuts.update({m.start(), m.start() + 1, m.end()})
    cut_path = tmp_path / "cut.sql"
    for cut in sorted(c for c in cuts if 0 < c < end):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(DumpFormatError) as info:
            _consume(cut_path)
        msg = str(info.value)
        assert str(cut_path) in msg
        offsets = [int(x) for x in re.findall(r"byte (\d+)", msg)]
        assert offsets and max(offsets) <= cut, msg
        assert "truncated" in msg, msg
        # also when only some tables are read (the others are skipped unparsed)
        with pytest.raises(DumpFormatError):
            _consume(cut_path, {"entries"})


def test_truncated_kept_insert_names_table_and_row(tmp_path: Path) -> None:
    sql = b"CREATE TABLE `t` (`id` int, `s` text);\nINSERT INTO `t` VALUES (1,'a'),(2,'b'),(3,'unterminated"
    path = tmp_path / "t.sql"
    path.write_bytes(sql)
    with pytest.raises(DumpFormatError, match=r"`t`.*row 3 of it.*unterminated string.*truncated"):
        _consume(path)


def test_truncated_gzip(small_dump: Path, tmp_path: Path) -> None:
    gz = gzip.compress(small_dump.read_bytes())
    path = tmp_path / "cut.sql.gz"
    path.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DumpFormatError, match="truncated"):
        _consume(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "does not look like a mysqldump"),
        (b'{"entries": [1, 2, 3]}', "does not look like a mysqldump"),
        (b"id,formula,energy\n1,NaCl,-3.2\n", "does not look like a mysqldump"),
        (b"", "empty file"),
        (gzip.compress(b"hello world, not sql\n"), "does not look like a mysqldump"),
        (b"PK\x03\x04\x14\x00\x00\x00", "does not look like a mysqldump"),
        (os.urandom(4096).replace(b"\x1f", b" "), "does not look like a mysqldump"),
    ],
)
def test_not_a_dump(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "input.sql"
    path.write_bytes(content)
    with pytest.raises(DumpFormatError, match=expected) as info:
        _consume(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, InputError)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        _consume(tmp_path / "nope.sql")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (b"(4,'d' 'e')", r"row 4 .*expected ',' or '\)'"),
        (b"(4)", r"row 4 .*1 values but table `t` has 2 columns"),
        (b"(4,'d',5)", r"row 4 .*3 values"),
        (b"(4,notavalue)", r"row 4 .*expected a value"),
        (b"(x,'d')", r"row 4 .*expected a value"),
        (b"(4,'d')junk", r"row 4 .*expected ',' and the next row"),
        (b"(4,,'d')", r"row 4 .*expected a value"),
    ],
)
def test_corrupt_rows_name_table_row_and_offset(tmp_path: Path, row: bytes, message: str) -> None:
    head = b"CREATE TABLE `t` (`id` int, `s` varchar(9));\nINSERT INTO `t` VALUES (0,'z');\n"
    stmt = b"INSERT INTO `t` VALUES (1,'a'),(2,'b'),(3,'c')," + row + b",(5,'e');\n"
    path = tmp_path / "bad.sql"
    path.write_bytes(head + stmt)
    with pytest.raises(DumpFormatError, match=message) as info:
        _consume(path)
    msg = str(info.value)
    assert "table `t`" in msg and str(path) in msg
    offset = int(re.search(r"byte (\d+)", msg).group(1))  # type: ignore[union-attr]
    assert len(head) < offset <= len(head) + len(stmt)
    # "row 4" is the table's fifth row counting the earlier statement: say both
    assert "row 5 " in msg or "row 4 of the INSERT" in msg


def test_raw_line_break_inside_a_value_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "nl.sql"
    path.write_bytes(b"CREATE TABLE `t` (`s` text);\nINSERT INTO `t` VALUES ('a;\nb');\n")
    with pytest.raises(DumpFormatError, match="raw line break"):
        _consume(path)


def test_unknown_statement_after_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.sql"
    path.write_bytes(b"SET @a = 1;\nFROBNICATE everything;\n")
    with pytest.raises(DumpFormatError, match="expected an SQL statement"):
        _consume(path)


def test_missing_trailer_after_header(tmp_path: Path) -> None:
    path = tmp_path / "x.sql"
    path.write_bytes(b"-- MySQL dump 10.13\nSET @a = 1;\n")
    with pytest.raises(DumpFormatError, match="Dump completed"):
        _consume(path)


@pytest.mark.parametrize("codec", ["gzip", "bz2", "xz", "gzip-multimember"])
def test_compressed_equals_plain_and_progress_reaches_file_size(
    small_dump: Path, tmp_path: Path, codec: str
) -> None:
    data = small_dump.read_bytes()
    if codec == "gzip":
        comp = gzip.compress(data)
    elif codec == "gzip-multimember":
        half = len(data) // 2
        comp = gzip.compress(data[:half]) + gzip.compress(data[half:])
    elif codec == "bz2":
        comp = bz2.compress(data)
    else:
        comp = lzma.compress(data)
    path = tmp_path / "d.sql.x"  # the format is sniffed, not taken from the name
    path.write_bytes(comp)
    seen: list[int] = []
    got = [r for b in iter_dump(path, progress=seen.append) for r in b.rows]
    assert got == _consume(small_dump)
    assert seen == sorted(seen) and seen[-1] == len(comp)
    stream, size = open_dump(path)
    try:
        assert size == len(comp) and stream.read() == data
    finally:
        stream.close()


def test_plain_progress_reaches_file_size(small_dump: Path) -> None:
    seen: list[int] = []
    _ = [b for b in iter_dump(small_dump, {"entries"}, progress=seen.append)]
    assert seen[-1] == small_dump.stat().st_size


def test_stdin_plain_and_gzip(small_dump: Path, tmp_path: Path) -> None:
    gz = tmp_path / "d.sql.gz"
    gz.write_bytes(gzip.compress(small_dump.read_bytes()))
    code = (
        "import sys; from matplat.ingest.reader import iter_dump; "
        "print(sum(len(b) for b in iter_dump('-', {'atoms'})))"
    )
    expected = str(len(_consume(small_dump, {"atoms"})))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}{os.pathsep}{ROOT}"}
    for src in (small_dump, gz):
        with open(src, "rb") as fh:
            res = subprocess.run(
                [sys.executable, "-c", code], stdin=fh, capture_output=True, env=env
            )
        assert res.returncode == 0, res.stderr.decode()
        assert res.stdout.decode().strip() == expected


def test_stream_argument_is_not_closed(small_dump: Path) -> None:
    buf = io.BytesIO(gzip.compress(small_dump.read_bytes()))
    assert _consume(buf, {"entries"})
    assert not buf.closed


def test_stopping_early_stops_the_decompression_thread(small_dump: Path, tmp_path: Path) -> None:
    import threading

    gz = tmp_path / "d.sql.gz"
    gz.write_bytes(gzip.compress(small_dump.read_bytes() * 150, compresslevel=1))  # > the queue
    it = iter_dump(gz, {"atoms"}, batch_rows=10)
    assert len(next(it)) == 10
    assert any(t.name.startswith("matplat-gzip") for t in threading.enumerate())
    it.close()
    assert not any(t.name.startswith("matplat-gzip") for t in threading.enumerate())
