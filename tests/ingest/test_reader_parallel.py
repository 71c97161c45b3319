"""The reader with a parse worker process gives the same rows and the same errors."""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import pytest

import matplat.ingest.reader as reader_module
from matplat.ingest.oqmd import NEEDED_COLUMNS
from matplat.ingest.parallel import ParseWorker
from matplat.ingest.reader import DumpFormatError, iter_dump
from matplat.ingest.sample import write_sample_dump


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dumps") / "par.sql"
    write_sample_dump(path, 150, seed=5)
    return path


def rows(path: Path, parallel: bool, **kw: object) -> dict[str, list]:
    out: dict[str, list] = {}
    for b in iter_dump(path, parallel=parallel, batch_rows=97, **kw):  # type: ignore[arg-type]
        out.setdefault(b.table, []).extend(
            tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r)
            for r in b.rows
        )
    return out


def error(path: Path, parallel: bool) -> str:
    with pytest.raises(DumpFormatError) as info:
        for _ in iter_dump(path, parallel=parallel, batch_rows=7):
            pass
    return str(info.value)


def test_same_rows_plain_gzip_and_projected(
    dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed_there: list[int] = []

    class Counting(ParseWorker):
        def result(self, job):  # type: ignore[no-untyped-def]
            res = super().result(job)
            parsed_there.append(res is not None)
            return res

    monkeypatch.setattr(reader_module, "ParseWorker", Counting)
    want = rows(dump, False)
    assert sum(len(v) for v in want.values()) > 1000
    assert rows(dump, True) == want
    assert sum(parsed_there) >= 2  # the worker did parse part of it
    gz = tmp_path / "par.sql.gz"
    gz.write_bytes(gzip.compress(dump.read_bytes()))  # the worker gets bytes, not offsets
    assert rows(gz, True) == want
    proj = {"columns": {t: list(c) for t, c in NEEDED_COLUMNS.items()}}
    assert rows(dump, True, tables=set(NEEDED_COLUMNS), **proj) == rows(
        dump, False, tables=set(NEEDED_COLUMNS), **proj
    )


@pytest.mark.parametrize(
    "row", [b"(4,'d' 'e')", b"(4)", b"(4,notavalue)", b"(4,'d')junk", b"(4,,'d')"]
)
def test_same_error_for_a_corrupt_row(tmp_path: Path, row: bytes) -> None:
    good = b"INSERT INTO `t` VALUES " + b",".join(b"(%d,'v%d')" % (i, i) for i in range(50))
    stmt = b"INSERT INTO `t` VALUES (1,'a'),(2,'b'),(3,'c')," + row + b",(5,'e');\n"
    path = tmp_path / "bad.sql"
    path.write_bytes(
        b"CREATE TABLE `t` (`id` int, `s` varchar(9));\n" + (good + b";\n") * 30 + stmt
        + (good + b";\n") * 5
    )
    msg = error(path, True)
    assert msg == error(path, False) and "row 4 of the INSERT" in msg


def test_same_error_when_truncated(dump: Path, tmp_path: Path) -> None:
    data = dump.read_bytes()
    cut = tmp_path / "cut.sql"
    for frac in (0.3, 0.55, 0.8, 0.97):
        at = int(len(data) * frac)
        cut.write_bytes(data[:at])
        msg = error(cut, True)
        assert msg == error(cut, False) and "truncated" in msg
        assert max(int(x) for x in re.findall(r"byte (\d+)", msg)) <= at


def test_a_dying_worker_only_costs_speed(dump: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Dying(ParseWorker):
        def submit(self, shape, source):  # type: ignore[no-untyped-def]
            job = super().submit(shape, source)
            if job == 3:
                self.kill()
            return job

    want = rows(dump, False)
    monkeypatch.setattr(reader_module, "ParseWorker", Dying)
    assert rows(dump, True) == want
