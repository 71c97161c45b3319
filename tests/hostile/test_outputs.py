"""Output paths and file systems (issue 11, items 7 and 8), on SQLite, PostgreSQL and
MariaDB: a path that cannot be written is refused before any work, a write that fails
midway (full device, read-only pseudo-filesystem) is one error line and leaves no partial
file, and JSON output is strict JSON whatever the values."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import make_material, make_model_version
from sqlalchemy import text

from hostile.inputs import dataset_folder, fill, one_error_line, tiny_filesystem
from matplat.cli import cli
from matplat.db.session import transaction

FULL = Path("/dev/full")


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args])


def count(db, table: str) -> int:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def fails_with(r, *words: str, code: int = 1) -> str:  # type: ignore[no-untyped-def]
    assert r.exit_code == code, r.output
    line = one_error_line(r.output)
    for w in words:
        assert w in line, line
    return line


def full_file(tmp_path: Path, name: str) -> Path:
    """A file name with the right suffix whose writes fail with ENOSPC."""
    if not FULL.exists():
        pytest.skip("no /dev/full on this system")
    link = tmp_path / name
    link.symlink_to(FULL)
    return link


def test_rejects_path_is_checked_before_the_ingest(db, sample_dump: Path,
                                                   tmp_path: Path) -> None:
    r = run(db.url, "ingest", str(sample_dump), "--rejects", str(tmp_path / "nodir/rej.tsv"))
    fails_with(r, "--rejects", "nodir", "does not exist")
    assert count(db, "ingest_runs") == 0 and count(db, "materials") == 0
    r = run(db.url, "ingest", str(sample_dump), "--rejects", str(tmp_path))
    fails_with(r, "is a directory", code=2)  # click's own check of the option
    assert count(db, "ingest_runs") == 0


def test_query_output_paths_and_full_device(db, tmp_path: Path) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
    sql = "SELECT formula FROM material_properties"
    fails_with(run(db.url, "query", sql, "-o", str(tmp_path / "nodir/x.csv")), "nodir")
    fails_with(run(db.url, "query", sql, "--format", "parquet", "-o",
                   str(tmp_path / "nodir/x.parquet")), "nodir")
    fails_with(run(db.url, "query", sql, "--format", "csv", "-o", str(FULL)),
               "No space left on device")
    fails_with(run(db.url, "query", sql, "--format", "parquet", "-o",
                   str(full_file(tmp_path, "x.parquet"))), "cannot write")
    fails_with(run(db.url, "query", sql, "-o", "/proc/x.csv"), "/proc/x.csv")
    assert not (tmp_path / "nodir").exists()
    ok = run(db.url, "query", sql, "--format", "csv", "-o", str(tmp_path / "x.csv"))
    assert ok.exit_code == 0 and (tmp_path / "x.csv").read_text() == "formula\nNaCl\n"


def test_model_export_paths_and_full_device(db, tmp_path: Path) -> None:
    with transaction(db.engine) as s:
        make_model_version(s, "m1")
    fails_with(run(db.url, "models", "export", "m1", str(tmp_path / "nodir/x.zip")), "nodir")
    fails_with(run(db.url, "models", "export", "m1", str(FULL)), "No space left on device")
    fails_with(run(db.url, "models", "export", "m1", "/sys/m1.zip"), "/sys/m1.zip")
    fails_with(run(db.url, "models", "show", "m1", "--plot", "/proc/plots"), "--plot",
               "/proc/plots")
    fails_with(run(db.url, "export", "predictions", "--model-tag", "m1",
                   str(tmp_path / "nodir/p.csv")), "nodir")
    for name in ("p.csv", "p.parquet"):
        fails_with(run(db.url, "export", "predictions", "--model-tag", "m1",
                       str(full_file(tmp_path, name))), "cannot write")
    fails_with(run(db.url, "export", "predictions", "--model-tag", "m1",
                   str(tmp_path / "p.txt")), ".csv or .parquet")
    fails_with(run(db.url, "export", "cgnn-dataset", "/proc/dataset"), "/proc/dataset")
    fails_with(run(db.url, "export", "cgnn-dataset", "/sys/dataset"), "/sys/dataset")
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("test.db"))
    assert left == ["p.csv", "p.parquet"]  # the links to /dev/full, nothing else


def test_full_temporary_directory_during_ingest(db, sample_dump: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with tiny_filesystem(tmp_path / "tmpfs", "64k") as small:
        fill(small)
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        r = run(db.url, "ingest", str(sample_dump))
        fails_with(r, "temporary directory", str(small), "TMPDIR")
    assert count(db, "materials") == 0 and count(db, "ingest_runs") == 0


def test_json_output_is_strict_json(db) -> None:
    def strict(s: str):  # type: ignore[no-untyped-def]
        def refuse(c: str) -> None:
            raise AssertionError(f"not JSON: {c}")

        return json.loads(s, parse_constant=refuse)

    queries = {
        "sqlite": "SELECT 1e999 AS x, -1e999 AS y, X'FF00' AS b, 0.5 AS z",
        "postgresql": "SELECT CAST('Infinity' AS float8) AS x, CAST('-Infinity' AS float8) AS y,"
                      " CAST('\\xff00' AS bytea) AS b, 0.5 AS z, CAST('NaN' AS float8) AS n,"
                      " CAST('NaN' AS numeric) AS d",
        "mariadb": "SELECT NULL AS x, NULL AS y, X'FF00' AS b, 0.5 AS z",
    }
    r = run(db.url, "query", queries[db.kind], "--format", "json")
    assert r.exit_code == 0, r.output
    row = strict(r.stdout)[0]  # stderr may hold the superuser warning
    assert row["x"] is None and row["y"] is None and row["b"] == "ff00" and row["z"] == 0.5
    if db.kind == "postgresql":
        assert row["n"] is None and row["d"] is None


BAD_FOLDERS = {
    "config-not-json": ({"config": b"{not json"}, "not JSON"),
    "config-not-utf8": ({"config": b"\xff\xfe{}"}, "not UTF-8"),
    "config-no-species": ({"config": b'{"atomic_numbers": "abc"}'}, "atomic_numbers"),
    "targets-binary": ({"targets": b"\xff\xfe\x00\x01garbage\x00"}, "targets.csv"),
    "split-not-json": ({"split": b"\x00\x01"}, "split.json"),
    "split-wrong-shape": ({"split": b'["train"]'}, "split.json"),
    "split-bad-index": ({"split": b'{"train": ["x"]}'}, "malformed CGNN data set"),
}


def test_garbled_dataset_folders_are_one_line(db, tmp_path: Path) -> None:
    for case, (files, words) in sorted(BAD_FOLDERS.items()):
        folder = dataset_folder(tmp_path / case, **files)
        fails_with(run(db.url, "ingest", str(folder)), words)
    assert count(db, "graph_recipes") == 0 and count(db, "crystal_graphs") == 0
    assert count(db, "materials") == 0
