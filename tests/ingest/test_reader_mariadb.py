"""The dump reader against REAL ``mariadb-dump`` output of awkward values.

Every value read back is compared with what the server holds (and, for text and blobs,
with what was inserted), for each dump layout a user may have.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import math
import struct
from pathlib import Path

import pytest
from qmdb_testutil import MariaDB, create_qmdb_schema

from matplat.ingest.reader import iter_dump

AWKWARD_DDL = """CREATE TABLE `awkward` (
  `id` int NOT NULL PRIMARY KEY,
  `i` int NULL, `big` bigint NULL, `tiny` tinyint(1) NULL,
  `d` double NULL, `f` float NULL, `dec` decimal(20,6) NULL,
  `s` varchar(200) NULL, `t` longtext NULL,
  `b` longblob NULL, `vb` varbinary(64) NULL, `bits` bit(10) NULL,
  `when` datetime NULL
) CHARACTER SET utf8mb4"""

NASTY = [
    "plain",
    "it's",
    'say "hi"',
    "back\\slash",
    "nul\0byte",
    "new\nline",
    "cr\rhere",
    "tab\there",
    "ctrl-z\x1a",
    "bs\x08",
    "NULL",
    "",
    "é 漢字 😀 Ångström",
    "),(",
    "x);\nINSERT INTO `awkward` VALUES (9);\n",
    "\\0 \\n \\' literal backslash escapes",
    "100% \\% and \\_ like",
    "''doubled''",
    "-- not a comment",
    "/* not a comment */",
    "0x41",
    "_binary 'x'",
]
DOUBLES = [5e-324, 1e308, -0.0, 0.0, 5.0, -7.0, 0.1, 1 / 3, 2.2250738585072014e-308,
           1.7976931348623157e308, -1e-300, 123456789012345680.0, 6.02214076e23]  # fmt: skip


def _rows() -> list[tuple]:
    rows = []
    blob_all = bytes(range(256))
    for k in range(60):
        s = NASTY[k % len(NASTY)]
        rows.append(
            (
                k + 1,
                None if k % 7 == 3 else (-1) ** k * k * 1000,
                None if k % 5 == 2 else (2**62 + k) * (-1) ** k,
                None if k % 9 == 4 else k % 2,
                None if k % 11 == 5 else DOUBLES[k % len(DOUBLES)],
                None if k % 13 == 6 else 1.5 * k,
                None if k % 6 == 1 else decimal.Decimal(f"{k}.{k:06d}"),
                None if k % 10 == 9 else s,
                None if k % 8 == 7 else s * (k + 1),
                None if k % 4 == 3 else blob_all[k % 7 :] + s.encode() + b"\xff\xfe\x00\x80",
                None if k % 3 == 2 else bytes([k, 0, 255, 39, 92]),
                None if k % 5 == 0 else k * 37 % 1024,
                None
                if k % 12 == 0
                else dt.datetime(2000 + k % 30, 1 + k % 12, 1 + k % 28, k % 24, k % 60, k % 60),
            )
        )
    rows.append((1000, 0, 0, 0, 0.0, 0.0, decimal.Decimal("0"), "h" * 200, "é" * 1_500_000,
                 b"\0" * 2_000_000, b"", 0, None))  # fmt: skip
    return rows


def _expected(row: tuple) -> tuple:
    """What the reader must return for what the server returns."""
    out = []
    for v in row:
        if isinstance(v, decimal.Decimal):
            v = float(v)
        elif isinstance(v, dt.datetime):
            v = v.strftime("%Y-%m-%d %H:%M:%S")
        out.append(v)
    return tuple(out)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _fill(db: MariaDB) -> list[tuple]:
    db.execute(AWKWARD_DDL)
    rows = _rows()
    db.executemany("INSERT INTO awkward VALUES (" + ",".join(["%s"] * 13) + ")", rows)
    server = db.query(
        "SELECT id,i,big,tiny,d,f,`dec`,s,t,b,vb,CAST(bits AS UNSIGNED),`when` FROM awkward ORDER BY id"
    )
    for sent, got in zip(rows, server, strict=True):  # text and blobs stored unchanged
        assert got[7] == sent[7] and got[8] == sent[8] and got[9] == sent[9] and got[10] == sent[10]
    return [_expected(r) for r in server]


def _read_all(data: bytes | Path, **kw: object) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    src = data if isinstance(data, Path) else None
    if src is None:
        import io

        src = io.BytesIO(data)  # type: ignore[assignment]
    for b in iter_dump(src, **kw):  # type: ignore[arg-type]
        out.setdefault(b.table, []).extend(b.rows)
    return out


def _check(read: list[tuple], expected: list[tuple]) -> None:
    assert len(read) == len(expected)
    for got, want in zip(read, expected, strict=True):
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert _same(g, w), f"row id={want[0]} column {k}: read {g!r:.80}, server has {w!r:.80}"


def _mysql_layout(dump: bytes) -> bytes:
    """MariaDB puts each row on its own line; MySQL 5.7 writes a statement per line."""
    return dump.replace(b" VALUES\n(", b" VALUES (").replace(b"),\n(", b"),(")


@pytest.mark.parametrize(
    "options",
    [
        (),
        ("--skip-extended-insert",),
        ("--complete-insert",),
        ("--hex-blob",),
        ("--hex-blob", "--complete-insert", "--skip-extended-insert"),
        ("--net-buffer-length=16384",),
        ("--compact",),
        ("--skip-comments", "--insert-ignore"),
        ("--replace",),
    ],
)
def test_every_value_of_every_layout(mariadb: MariaDB, options: tuple[str, ...]) -> None:
    expected = _fill(mariadb)
    dump = mariadb.dump(*options)
    assert b"INSERT" in dump or b"REPLACE" in dump
    _check(_read_all(dump)["awkward"], expected)
    _check(_read_all(_mysql_layout(dump))["awkward"], expected)


def test_one_line_per_statement_and_gzip(mariadb: MariaDB, tmp_path: Path) -> None:
    expected = _fill(mariadb)
    dump = _mysql_layout(mariadb.dump())
    assert max(len(line) for line in dump.split(b"\n")) > 1_000_000  # MySQL-style long lines
    plain = tmp_path / "d.sql"
    plain.write_bytes(dump)
    gz = tmp_path / "d.sql.gz"
    gz.write_bytes(gzip.compress(dump))
    _check(_read_all(plain)["awkward"], expected)
    _check(_read_all(gz)["awkward"], expected)


def test_no_create_info_uses_schema(mariadb: MariaDB) -> None:
    expected = _fill(mariadb)
    dump = mariadb.dump("--no-create-info")
    with pytest.raises(Exception, match="columns are unknown"):
        _read_all(dump)
    schema = {
        "awkward": [
            ("id", "int"), ("i", "int"), ("big", "bigint"), ("tiny", "tinyint(1)"),
            ("d", "double"), ("f", "float"), ("dec", "decimal(20,6)"), ("s", "varchar(200)"),
            ("t", "longtext"), ("b", "longblob"), ("vb", "varbinary(64)"), ("bits", "bit(10)"),
            ("when", "datetime"),
        ]
    }  # fmt: skip
    _check(_read_all(dump, schema=schema)["awkward"], expected)


def test_projection_and_table_filter(mariadb: MariaDB) -> None:
    expected = _fill(mariadb)
    mariadb.execute("CREATE TABLE other (id int, x double)")
    mariadb.execute("INSERT INTO other VALUES (1, 0.5), (2, NULL)")
    dump = mariadb.dump()
    got = _read_all(dump, tables={"awkward"}, columns={"awkward": ["s", "d", "id"]})
    assert set(got) == {"awkward"}
    _check(got["awkward"], [(r[7], r[4], r[0]) for r in expected])
    assert _read_all(dump, tables={"other"})["other"] == [(1, 0.5), (2, None)]


def test_qmdb_tables_round_trip(mariadb: MariaDB) -> None:
    create_qmdb_schema(mariadb, {"atoms", "structures"})
    atoms = [(i, i // 3, None, ["Fe", "O", "NULL"][i % 3], None, i / 7, 0.5, 1e-5 * i, None, None,
              None, -2.5 if i % 2 else None, None, None, 1.0, None) for i in range(1, 3000)]  # fmt: skip
    mariadb.executemany("INSERT INTO atoms VALUES (" + ",".join(["%s"] * 16) + ")", atoms)
    dump = mariadb.dump()
    server = mariadb.query("SELECT * FROM atoms ORDER BY id")
    for layout in (dump, _mysql_layout(dump)):
        read = _read_all(layout, tables={"atoms"}, batch_rows=700)["atoms"]
        _check(read, [tuple(r) for r in server])
