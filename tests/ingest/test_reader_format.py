"""The dump reader on hand-made SQL: statements, escapes, literals, tiers and buffering."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from matplat.ingest import reader as reader_mod
from matplat.ingest import values
from matplat.ingest.batch import RowBatch
from matplat.ingest.reader import iter_dump, parse_create_table
from matplat.ingest.values import TableShape

HEADER = b"-- MySQL dump 10.13  Distrib 5.7.30\n"
TRAILER = b"-- Dump completed on 2020-01-01\n"


def read(text: bytes, **kw: object) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for b in iter_dump(io.BytesIO(text), **kw):  # type: ignore[arg-type]
        out.setdefault(b.table, []).extend(b.rows)
    return out


def test_statements_comments_delimiters_views_triggers() -> None:
    text = (
        HEADER
        + b"""/*M!999999\\- enable the sandbox mode */
# a hash comment; with a semicolon
--
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8 */;
SET @a = 'x;y', @b = "q;\\"z";
USE `qmdb`;
DROP TABLE IF EXISTS `t`;
CREATE TABLE `t` (
  `id` int(11) NOT NULL AUTO_INCREMENT COMMENT 'the id, (really)',
  `group` varchar(10) DEFAULT 'a,b' COMMENT 'x''s',
  `v` decimal(10,2) DEFAULT NULL,
  `e` enum('a','b)') DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `g` (`group`),
  KEY `v_idx` (`v`),
  CONSTRAINT `fk` FOREIGN KEY (`id`) REFERENCES `u` (`id`)
) ENGINE=InnoDB /*!50100 PARTITION BY HASH (id) PARTITIONS 2 */;
LOCK TABLES `t` WRITE;
/*!40000 ALTER TABLE `t` DISABLE KEYS */;
INSERT INTO `t` VALUES (1,'a',1.50,'a'),(2,NULL,-3,'b)');
INSERT IGNORE INTO `t` VALUES (3,'c',NULL,NULL);
REPLACE INTO qmdb.`t` (`v`, `id`) VALUES (7,4);
insert into t values (5, 'lower', 0, 'a') ;
/*!40000 ALTER TABLE `t` ENABLE KEYS */;
UNLOCK TABLES;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `trg` BEFORE INSERT ON `t`
FOR EACH ROW BEGIN SET NEW.v = 1; INSERT INTO log VALUES ('x;y'); END */;;
DELIMITER ;
/*!50001 DROP VIEW IF EXISTS `v`*/;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */
/*!50001 VIEW `v` AS select `t`.`id` AS `id` from `t` */;
DELIMITER $$
CREATE PROCEDURE p() BEGIN SELECT 1; END$$
DELIMITER ;
"""
        + TRAILER
    )
    got = read(text)
    assert got == {
        "t": [
            (1, "a", 1.5, "a"),
            (2, None, -3.0, "b)"),
            (3, "c", None, None),
            (7.0, 4),
            (5, "lower", 0.0, "a"),
        ]
    }
    batches = list(iter_dump(io.BytesIO(text)))
    assert [b.columns for b in batches][-2:] == [["v", "id"], ["id", "group", "v", "e"]]


def test_create_table_parsing() -> None:
    table, cols = parse_create_table(
        b"CREATE TABLE IF NOT EXISTS db.`we``ird` (`a` int(11), b double precision NOT NULL,"
        b" `c,d` varchar(5) DEFAULT ',', KEY k (a), CHECK (b > 0)) ENGINE=InnoDB"
    )
    assert table == "we`ird"
    assert cols == [
        ("a", "int(11)"),
        ("b", "double precision NOT NULL"),
        ("c,d", "varchar(5) DEFAULT ','"),
    ]
    assert parse_create_table(b"CREATE VIEW v AS SELECT 1") is None


ESCAPED = [
    (rb"'\0'", "\0"), (rb"'\''", "'"), (rb"'\"'", '"'), (rb"'\\'", "\\"), (rb"'\n'", "\n"),
    (rb"'\r'", "\r"), (rb"'\Z'", "\x1a"), (rb"'\b'", "\x08"), (rb"'\t'", "\t"),
    (b"'\t'", "\t"), (rb"'\%'", "\\%"), (rb"'\_'", "\\_"), (rb"'\x'", "x"), (b"''''", "'"),
    (b"'a''b'", "a'b"), (rb"'\\\''", "\\'"), (b"'NULL'", "NULL"), (b"NULL", None),
    (b"0x4142", "AB"), (b"X'4142'", "AB"), (b"x''", ""), (b"_binary 'A\\'B'", "A'B"),
    (b"_utf8mb4'\xc3\xa9'", "\u00e9"), (b"'\xff\xfe'", "\udcff\udcfe"), (b"12", "12"),
]  # fmt: skip


@pytest.mark.parametrize(("literal", "value"), ESCAPED)
def test_text_literals(literal: bytes, value: str | None) -> None:
    text = (
        b"CREATE TABLE `t` (`s` longtext);\nINSERT INTO `t` VALUES ("
        + literal
        + b"),("
        + literal
        + b");\n"
    )
    assert read(text) == {"t": [(value,), (value,)]}


@pytest.mark.parametrize(
    ("literal", "kind", "value"),
    [
        (b"0x00FF", "blob", b"\x00\xff"),
        (b"X'00ff'", "blob", b"\x00\xff"),
        (b"_binary '\\0\xff\\''", "blob", b"\x00\xff'"),
        (b"'\xff\x00\x80'", "longblob", b"\xff\x00\x80"),
        (b"''", "varbinary(3)", b""),
        (b"b'101'", "bit(3)", 5),
        (b"'\x05'", "bit(3)", 5),
        (b"0x05", "bit(3)", 5),
        (b"5e-324", "double", 5e-324),
        (b"-0", "double", -0.0),
        (b"1e308", "double", 1e308),
        (b"5", "double", 5.0),
        (b"1.500", "decimal(10,3)", 1.5),
        (b"-12", "int(11)", -12),
        (b"18446744073709551615", "bigint unsigned", 18446744073709551615),
        (b"1", "tinyint(1)", 1),
        (b"'2020-01-01 00:00:00'", "datetime", "2020-01-01 00:00:00"),
    ],
)
def test_typed_literals(literal: bytes, kind: str, value: object) -> None:
    text = (
        f"CREATE TABLE `t` (`v` {kind});\n".encode()
        + b"INSERT INTO `t` VALUES ("
        + literal
        + b");\n"
    )
    (got,) = read(text)["t"]
    assert type(got[0]) is type(value)
    if isinstance(value, float):
        assert struct.pack("<d", got[0]) == struct.pack("<d", value)
    else:
        assert got[0] == value


# -- the three tiers agree, on random nasty rows -----------------------------------------------
_ALPHABET = ["a", "Z", "0", "'", '"', "\\", "\0", "\n", "\r", "\t", "\x1a", "\x08", "(", ")", ",",
             ";", "),(", " ", "é", "漢", "%", "_", "NULL", "0x"]  # fmt: skip


def _sql_text(s: str) -> str:
    table = {
        "\\": "\\\\",
        "'": "\\'",
        "\0": "\\0",
        "\n": "\\n",
        "\r": "\\r",
        "\x1a": "\\Z",
        '"': '\\"',
    }
    return "'" + "".join(table.get(c, c) for c in s) + "'"


def _random_rows(rng: random.Random, n: int) -> tuple[list[tuple], list[str]]:
    rows, texts = [], []
    for i in range(n):
        s = (
            None
            if rng.random() < 0.1
            else "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))
        )
        f = (
            None
            if rng.random() < 0.1
            else rng.choice([rng.random(), 5e-324, -0.0, 1e308, 3.0, -1e-7])
        )
        k = None if rng.random() < 0.1 else rng.randint(-(2**62), 2**62)
        rows.append((i, s, f, k))
        fs = "NULL" if f is None else repr(f).removesuffix(".0")
        ss = "NULL" if s is None else _sql_text(s)
        texts.append(f"({i},{ss},{fs},{'NULL' if k is None else k})")
    return rows, texts


@pytest.mark.parametrize("seed", range(6))
def test_tiers_agree_on_random_rows(seed: int) -> None:
    rng = random.Random(seed)
    rows, texts = _random_rows(rng, 300)
    shape = TableShape("t", ["id", "s", "f", "k"], ["int", "str", "float", "int"])
    for sep in (",", ",\n"):
        body = sep.join(texts).encode()
        exact, n = values.parse_exact(shape, body)
        assert n == len(rows)
        assert list(zip(*exact, strict=True)) == rows
        regex = values.parse_regex(shape, body)
        assert regex is not None and regex[0] == exact
        arrow = values.parse_arrow(shape, [body])
        if arrow is not None:  # declines when escapes it cannot mirror are present
            assert [c.to_pylist() for c in arrow[0]] == exact
        # and through the reader, which picks a tier per statement
        sql = (
            b"CREATE TABLE `t` (`id` int, `s` text, `f` double, `k` bigint);\nINSERT INTO `t` VALUES "
            + body
            + b";\n"
        )
        got = read(sql)["t"]
        assert [
            tuple(struct.pack("<d", v) if isinstance(v, float) else v for v in r) for r in got
        ] == [tuple(struct.pack("<d", v) if isinstance(v, float) else v for v in r) for r in rows]


def test_arrow_tier_is_used_and_exact_on_numeric_rows() -> None:
    shape = TableShape("t", ["id", "x", "s"], ["int", "float", "str"])
    body = b"(1,0.1,'Fe'),(2,5e-324,'O'),(3,-0,'NULL'),(4,NULL,NULL),(5,1e308,'a\\'b\\\\')"
    res = values.parse_arrow(shape, [body, body])
    assert res is not None
    cols, counts = res
    assert counts == [5, 5]
    assert cols[0].to_pylist() == [1, 2, 3, 4, 5] * 2
    assert [struct.pack("<d", v) if v is not None else None for v in cols[1].to_pylist()[:5]] == [
        struct.pack("<d", v) if v is not None else None for v in (0.1, 5e-324, -0.0, None, 1e308)
    ]
    assert cols[2].to_pylist()[:5] == ["Fe", "O", "NULL", None, "a'b\\"]
    # declines where it could be wrong
    assert values.parse_arrow(shape, [b"(1,0.1,'a),(b')"]) is None  # separator inside a string
    assert values.parse_arrow(shape, [b"(1,0.1,'\\n')"]) is None  # an escape Arrow would drop
    assert values.parse_arrow(shape, [b"(1,0.1,0x41)"]) is None  # hex in a text column
    assert values.parse_arrow(shape, [b"(1,0.1,'a')x,(2,0.2,'b')"]) is None  # junk between rows
    assert values.parse_arrow(shape, [b"(1,0.1,notquoted)"]) is None  # unquoted text
    assert values.parse_arrow(shape, [b"(1,0.1,'a' 'b')"]) is None  # adjacent literals
    assert values.parse_arrow(shape, [b"(1,0.1,'a''b')"]) is None  # doubled quote
    assert values.parse_arrow(shape, [b"(1,0.1, 'a')"]) is None  # space before a quote


def test_tiny_chunks_and_giant_statements_give_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(42)
    rows, texts = _random_rows(rng, 2000)
    sql = HEADER + b"CREATE TABLE `t` (`id` int, `s` text, `f` double, `k` bigint);\n"
    sql += b"CREATE TABLE `skip` (`id` int, `s` text, `f` double, `k` bigint);\n"
    sql += b"INSERT INTO `t` VALUES " + ",".join(texts[:1000]).encode() + b";\n"
    sql += b"INSERT INTO `skip` VALUES " + ",".join(texts[1000:]).encode() + b";\n"
    sql += b"INSERT INTO `t` VALUES\n" + ",\n".join(texts[1000:]).encode() + b";\n" + TRAILER
    want = read(sql)
    assert len(want["t"]) == 2000
    monkeypatch.setattr(reader_mod, "_CHUNK", 97)
    monkeypatch.setattr(reader_mod, "_PART_MAX", 500)
    monkeypatch.setattr(reader_mod, "_HEAD_MAX", 64)
    got = read(sql, batch_rows=77)
    assert got["t"] == want["t"] and got["skip"] == want["skip"]
    batches = list(iter_dump(io.BytesIO(sql), {"t"}, batch_rows=77))
    assert all(len(b) <= 77 for b in batches)
    assert [b.offset for b in batches] == list(np.cumsum([0] + [len(b) for b in batches[:-1]]))


def test_skipping_a_giant_line_uses_little_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "big.sql"
    with open(path, "wb") as fh:
        fh.write(b"CREATE TABLE `big` (`id` int, `s` longtext);\nINSERT INTO `big` VALUES ")
        row = b"(1,'" + b"x" * 1000 + b"'),"
        for _ in range(40_000):
            fh.write(row)
        fh.write(b"(2,'y');\nCREATE TABLE `small` (`id` int);\nINSERT INTO `small` VALUES (7);\n")
    tracemalloc.start()
    got = [r for b in iter_dump(path, {"small"}) for r in b.rows]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert got == [(7,)]
    assert path.stat().st_size > 40_000_000
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB while skipping a 40 MB line"


def test_rowbatch_api() -> None:
    b = RowBatch("t", ["a", "s", "x"], [(1, "Fe", 0.5), (2, None, None), (3, "Fe", 2.0)], offset=10)
    assert len(b) == 3 and b.column("s") == ["Fe", None, "Fe"]
    assert np.array_equal(b.array("x"), [0.5, np.nan, 2.0], equal_nan=True)
    assert b.array("a", np.int64).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="NULL"):
        b.array("s", np.int64)
    codes, cats = b.codes("s")
    assert [cats[c] if c >= 0 else None for c in codes] == ["Fe", None, "Fe"]
    assert b.nulls("x").tolist() == [False, True, False]
    s = b.slice(1, 3)
    assert s.offset == 11 and s.rows == [(2, None, None), (3, "Fe", 2.0)]
    c = RowBatch.from_columns(
        "t", ["a", "s", "x"], [[1, 2, 3], ["Fe", None, "Fe"], [0.5, None, 2.0]], 10
    )
    assert c == b and c.rows == b.rows
    with pytest.raises(KeyError, match="no column"):
        b.column("nope")
    # Arrow-backed batches answer the same
    text = b"CREATE TABLE `t` (`a` int, `s` varchar(3), `x` double);\nINSERT INTO `t` VALUES (1,'Fe',0.5),(2,NULL,NULL),(3,'Fe',2);\n"
    (ab,) = list(iter_dump(io.BytesIO(text)))
    assert ab.rows == b.rows
    assert np.array_equal(ab.array("x"), b.array("x"), equal_nan=True)
    assert ab.array("a", np.int64, null=-1).tolist() == [1, 2, 3]
    ac, acats = ab.codes("s")
    assert [acats[k] if k >= 0 else None for k in ac] == ["Fe", None, "Fe"]
