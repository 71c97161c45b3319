"""Inputs trusted too far (issue 11, item 6), on SQLite, PostgreSQL and MariaDB: dump volumes
that contradict the lattice, prototype names that are not UTF-8, and model tags or aliases
that the registry's columns or a terminal cannot hold."""

from __future__ import annotations

import math
from pathlib import Path

from click.testing import CliRunner
from factories import make_model_version
from sqlalchemy import text

from hostile.inputs import (
    export_zip,
    one_error_line,
    read_dump,
    with_bad_prototype,
    with_structure_volume,
)
from matplat.cli import cli
from matplat.db.session import transaction
from workers.training import pack_ensemble


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args])


def count(db, table: str) -> int:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_oqmd_api_rejects_volumes_that_contradict_the_lattice(db, sample_dump: Path,
                                                              tmp_path: Path) -> None:
    bad = {2: b"-34.86", 3: b"0", 5: b"10.5", 6: b"1e300"}  # negative, zero, off, huge
    dump = tmp_path / "bad-volume.sql"
    dump.write_bytes(with_structure_volume(read_dump(sample_dump), bad))
    rejects = tmp_path / "rejects.tsv"
    r = run(db.url, "ingest", str(dump), "--rule", "oqmd-api", "--rejects", str(rejects))
    assert r.exit_code == 0, r.output
    reasons = dict(line.split("\t", 1) for line in rejects.read_text().splitlines()[1:])
    for entry in bad:
        assert "disagrees with its lattice" in reasons[str(entry)], reasons
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT volume_per_atom, volume_deviation FROM dft_properties")).all()
        stored = {str(r[0]) for r in conn.execute(text("SELECT source_id FROM materials"))}
    assert len(rows) > 50 and not stored & {str(e) for e in bad}
    for vpa, vdev in rows:
        assert vpa is not None and vpa > 0
        assert vdev is None or math.isfinite(vdev)


def test_cgnn_rule_takes_the_volume_from_the_lattice(db, sample_dump: Path,
                                                     tmp_path: Path) -> None:
    dump = tmp_path / "bad-volume.sql"
    dump.write_bytes(with_structure_volume(read_dump(sample_dump), {2: b"-34.86"}))
    r = run(db.url, "ingest", str(dump))
    assert r.exit_code == 0, r.output
    with db.engine.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM material_properties WHERE volume_per_atom <= 0"
        )).scalar_one() == 0


def test_prototype_that_is_not_utf8_is_one_error_with_file_and_offset(
        db, sample_dump: Path, tmp_path: Path) -> None:
    dump = tmp_path / "bad-prototype.sql"
    dump.write_bytes(with_bad_prototype(read_dump(sample_dump)))
    r = run(db.url, "ingest", str(dump))
    assert r.exit_code == 1
    line = one_error_line(r.output)
    assert "bad-prototype.sql" in line and "byte " in line and "prototype_id" in line
    assert "UTF-8" in line
    assert count(db, "materials") == 0 and count(db, "ingest_runs") == 0


BAD_TAGS = ["", "x" * 129, "a b", "v3\n", "v3\nforged line", "\x1b[31mred\x1b[0m", "-v3",
            "v3;", "../v3", "ü", "v3\t"]


def test_bad_tags_are_refused_before_any_work(db, tmp_path: Path) -> None:
    with transaction(db.engine) as s:
        make_model_version(s, "m1")
    export = export_zip(tmp_path / "ok.zip", pack_ensemble([b"x"]), tag="fine")
    for tag in BAD_TAGS:
        for args in (
            ["train", "--model-tag", tag, "--epochs", "1"],
            ["predict", "--model-tag", tag],
            ["predict", "--alias", tag],
            ["models", "show", tag],
            ["models", "export", tag, str(tmp_path / "x.zip")],
            ["models", "refresh", tag],
            ["models", "alias", tag, "production"],
            ["models", "alias", "m1", tag],
            ["models", "import", str(export), "--tag", tag],
            ["export", "predictions", "--model-tag", tag, str(tmp_path / "p.csv")],
        ):
            r = run(db.url, *args)
            assert r.exit_code in (1, 2), (args, r.output)  # 2: "-v3" reads as an option
            line = one_error_line(r.output)
            if r.exit_code == 1:
                assert "characters" in line or "use only" in line or "empty" in line, line
            assert "\x1b" not in r.output and "forged" not in r.output.split("'")[0]
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "p.csv").exists()
    assert count(db, "jobs") == 0 and count(db, "model_versions") == 1
    assert count(db, "model_aliases") == 0


def test_a_300_character_tag_in_an_export_file_is_refused(db, tmp_path: Path) -> None:
    path = export_zip(tmp_path / "long.zip", pack_ensemble([b"x"]), tag="t" * 300)
    r = run(db.url, "models", "import", str(path))
    assert r.exit_code == 1
    assert "at most 128" in one_error_line(r.output)
    assert count(db, "model_versions") == 0


def test_good_tags_and_aliases_are_accepted(db) -> None:
    with transaction(db.engine) as s:
        make_model_version(s, "v3.1_rc+2-x")
    r = run(db.url, "models", "alias", "v3.1_rc+2-x", "prod-2026.1")
    assert r.exit_code == 0, r.output
    long_alias = "a" * 65
    r = run(db.url, "models", "alias", "v3.1_rc+2-x", long_alias)
    assert r.exit_code == 1 and "at most 64" in one_error_line(r.output)
    assert count(db, "model_aliases") == 1
