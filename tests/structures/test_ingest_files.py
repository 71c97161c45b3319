"""`platform ingest FILES…` on SQLite, PostgreSQL and MariaDB: every format, provenance,
rejects one by one, --strict, --properties, idempotent re-ingest, updates, and the export
round trip (content hashes equal)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import structfiles as sf
from click.testing import CliRunner
from sqlalchemy import text

from matplat.cli import cli

TABLES = ("materials", "structures", "sites", "material_elements", "dft_properties",
          "material_files", "ingest_runs")


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)


def counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def rows(engine, sql: str, **params):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def snapshot(engine) -> list:  # type: ignore[no-untyped-def]
    return [rows(engine, f"SELECT * FROM {t} ORDER BY 1, 2") for t in TABLES[:-1]]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "my_structures"
    sf.write_good(d)
    sf.write_bad(d / "bad")
    return d


def test_every_format_with_rejects_one_by_one(db, folder: Path, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    r = run(db.url, "ingest", str(folder), "--rejects", str(rejects))
    assert r.exit_code == 0, r.output
    c = counts(db.engine)
    assert c["materials"] == 12 and c["material_files"] == 12 and c["ingest_runs"] == 1
    assert c["sites"] == 8 + 2 + 6 + 2 + 2 + 2 + 6 + 8 + 6 + 2 + 6 + 8
    with open(rejects, newline="") as f:
        listed = {row["file"]: row for row in csv.DictReader(f)}
    assert set(listed) == {f"bad/{n}" for n in sf.write_bad(tmp_path / "again")}
    assert "partial occupancy" in listed["bad/mixed.cif"]["reason"]
    assert listed["bad/mixed.cif"]["block"] == "mixed"
    got = {sid: (src, formula, sg, fe, gap) for sid, src, formula, sg, fe, gap in rows(
        db.engine, "SELECT source_id, source, formula, spacegroup, formation_energy, band_gap "
        "FROM material_properties")}
    assert got["nacl.cif"] == ("my_structures", "NaCl", 225, None, None)
    assert got["two.cif#rutile"][1:3] == ("TiO2", 136)
    assert got["frames.xyz#1"][3:] == (-3.1, 1.8)
    assert got["entries.json#1"][3] == -3.2
    assert got["set.db"][4] == 5.0
    prov = {sid: (f, b, fmt, sha) for sid, f, b, fmt, sha in rows(
        db.engine, "SELECT m.source_id, p.file, p.block, p.file_format, p.file_sha256 "
        "FROM materials m JOIN material_files p ON p.material_id = m.id")}
    sha = hashlib.sha256((folder / "two.cif").read_bytes()).hexdigest()
    assert prov["two.cif#bcc_fe"] == ("two.cif", "bcc_fe", "cif", sha)
    assert prov["run1/POSCAR"][:3] == ("run1/POSCAR", None, "poscar")
    assert prov["frames.xyz#0"][1:3] == ("0", "extxyz")
    # the OQMD-shaped rows: one structure per material, elements counted per cell
    assert rows(db.engine, "SELECT e.element, e.count FROM material_elements e JOIN materials m "
                "ON m.id = e.material_id WHERE m.source_id = 'two.cif#rutile' ORDER BY 1") == [
        ("O", 4), ("Ti", 2)]


def test_reingest_changes_nothing_and_a_changed_file_updates(db, folder: Path) -> None:
    assert run(db.url, "ingest", str(folder)).exit_code == 0
    before = snapshot(db.engine)
    r = run(db.url, "ingest", str(folder))
    assert r.exit_code == 0 and "nothing changed" in r.output
    assert snapshot(db.engine) == before
    ids = dict(rows(db.engine, "SELECT source_id, id FROM materials"))
    poscar = folder / "run1" / "POSCAR"
    poscar.write_text(poscar.read_text().replace("2.87", "2.90"))
    r = run(db.url, "ingest", str(folder))
    assert r.exit_code == 0, r.output
    assert rows(db.engine, "SELECT n_added, n_updated, n_unchanged FROM ingest_runs "
                "ORDER BY id DESC")[0] == (0, 1, 11)
    assert dict(rows(db.engine, "SELECT source_id, id FROM materials")) == ids
    (vol,) = rows(db.engine, "SELECT volume_per_atom FROM material_properties "
                  "WHERE source_id = 'run1/POSCAR'")[0]
    assert vol == pytest.approx(2.90**3 / 2)
    new_sha = hashlib.sha256(poscar.read_bytes()).hexdigest()
    assert rows(db.engine, "SELECT p.file_sha256 FROM material_files p JOIN materials m "
                "ON m.id = p.material_id WHERE m.source_id = 'run1/POSCAR'") == [(new_sha,)]
    assert counts(db.engine)["material_files"] == 12


def test_strict_writes_nothing(db, folder: Path, tmp_path: Path) -> None:
    rejects = tmp_path / "r.csv"
    r = run(db.url, "ingest", str(folder), "--strict", "--rejects", str(rejects))
    assert r.exit_code == 1
    assert "--strict: nothing was written" in r.output and "Traceback" not in r.output
    assert counts(db.engine) == dict.fromkeys(TABLES, 0)
    assert len(rejects.read_text().splitlines()) == 1 + 9
    # without the bad ones --strict goes through
    r = run(db.url, "ingest", str(folder / "run1"), str(folder / "nacl.cif"), "--strict",
            "--source", "strictly")
    assert r.exit_code == 0, r.output
    assert rows(db.engine, "SELECT source_id FROM materials ORDER BY 1") == [
        ("nacl.cif",), ("run1/POSCAR",)]


def test_properties_file_and_sources(db, folder: Path, tmp_path: Path) -> None:
    props = tmp_path / "dft.csv"
    props.write_text("name,formation_energy,band_gap,comment\n"
                     "nacl.cif,-2.1,5.2,x\nbcc_fe,0.0,,metal\nvasp4,-1.5,3.0,stem\n")
    r = run(db.url, "ingest", str(folder / "nacl.cif"), str(folder / "two.cif"),
            str(folder / "vasp4.vasp"), "--properties", str(props), "--source", "mine")
    assert r.exit_code == 0, r.output
    got = dict((s, (fe, gap)) for s, fe, gap in rows(
        db.engine, "SELECT source_id, formation_energy, band_gap FROM material_properties "
        "WHERE source = 'mine'"))
    assert got == {"nacl.cif": (-2.1, 5.2), "two.cif#bcc_fe": (0.0, None),
                   "two.cif#rutile": (None, None), "vasp4.vasp": (-1.5, 3.0)}
    # errors: one line, exit 1, nothing written
    before = counts(db.engine)
    bad_props = tmp_path / "bad.csv"
    bad_props.write_text("file,band_gap\nx,1\n")
    for args, message in (
        (["--source", "s" * 33], "at most 32"),
        (["--source", "oqmd"], "reserved"),
        (["--properties", str(bad_props)], "no 'name' column"),
        (["--rejects", str(tmp_path / "nowhere" / "r.csv")], "does not exist"),
    ):
        r = run(db.url, "ingest", str(folder / "nacl.cif"), *args)
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output
    r = run(db.url, "ingest", str(tmp_path / "missing.cif"), str(folder / "nacl.cif"))
    assert r.exit_code == 1 and "no such file" in r.output
    assert counts(db.engine) == before
    # a long folder name becomes a 32-character source
    long = tmp_path / ("a_very_long_folder_name_of_relaxations_" * 2)
    long.mkdir()
    (long / "x.cif").write_text(sf.MULTI_CIF)
    assert run(db.url, "ingest", str(long)).exit_code == 0
    assert rows(db.engine, "SELECT DISTINCT source FROM materials WHERE source_id LIKE 'x.cif%'") \
        == [(long.name[:32],)]


@pytest.mark.parametrize("fmt", ["cif", "poscar", "extxyz", "json"])
def test_export_round_trip_keeps_content_hashes(db, folder: Path, tmp_path: Path,
                                                fmt: str) -> None:
    assert run(db.url, "ingest", str(folder), "--source", "orig").exit_code == 0
    out = tmp_path / f"out_{fmt}"
    r = run(db.url, "export", "structures", str(out), "--format", fmt, "--source", "orig")
    assert r.exit_code == 0 and "wrote 12 structures" in r.output, r.output
    args = ["--properties", str(out / "properties.csv")] if fmt in ("cif", "poscar") else []
    r = run(db.url, "ingest", str(out), "--source", "back", *args)
    assert r.exit_code == 0, r.output
    hashes = {s: sorted(h for (h,) in rows(db.engine, "SELECT content_hash FROM materials "
                                            "WHERE source = :s", s=s)) for s in ("orig", "back")}
    assert len(hashes["orig"]) == 12 and hashes["back"] == hashes["orig"]
    props = {s: sorted(rows(db.engine, "SELECT formula, formation_energy, band_gap, spacegroup "
                            "FROM material_properties WHERE source = :s", s=s), key=repr)
             for s in ("orig", "back")}
    assert props["back"] == props["orig"]


def test_graphs_train_predict_and_views_take_file_materials(db, folder: Path,
                                                            sample_dump: Path) -> None:
    """Training on OQMD and file materials together; every view has the file ones."""
    assert run(db.url, "ingest", str(sample_dump)).exit_code == 0
    assert run(db.url, "ingest", str(folder)).exit_code == 0
    for args in (["graphs", "build", "--workers", "1"],
                 ["--device", "cpu", "train", "--model-tag", "files", "--epochs", "1",
                  "--batch-size", "4"],
                 ["--device", "cpu", "predict", "--model-tag", "files"]):
        r = run(db.url, *args)
        assert r.exit_code == 0, r.output
    assert rows(db.engine, "SELECT count(*) FROM crystal_graphs g JOIN structures s ON "
                "s.id = g.structure_id JOIN materials m ON m.id = s.material_id "
                "WHERE m.source = 'my_structures' AND g.status = 'ok'") == [(12,)]
    got = rows(db.engine, "SELECT r.source_id, r.property, r.predicted, r.dft "
               "FROM prediction_results r JOIN materials m ON m.id = r.material_id "
               "WHERE r.model_tag = 'files' AND r.property = 'formation_energy' "
               "AND m.source = 'my_structures' ORDER BY r.source_id")
    assert len(got) == 12
    dft = {sid: d for sid, _, _, d in got}
    assert dft["frames.xyz#1"] == -3.1 and dft["nacl.cif"] is None
    assert all(p is not None for _, _, p, _ in got)
    n = rows(db.engine, "SELECT count(*) FROM material_predictions p JOIN materials m "
             "ON m.id = p.material_id WHERE p.model_tag = 'files' AND m.source = 'my_structures'")
    assert n == [(12,)]
    # the split of the model holds the labelled file materials like any other
    assert rows(db.engine, "SELECT count(*) FROM material_predictions p JOIN materials m "
                "ON m.id = p.material_id WHERE p.model_tag = 'files' "
                "AND m.source = 'my_structures' AND p.split IS NOT NULL")[0][0] >= 1


def test_interrupt_in_the_pool_leaves_the_database_as_before(db, tmp_path: Path) -> None:
    """Ctrl-C (KeyboardInterrupt in the main process) while a process pool parses: the
    transaction rolls back and the pool stops; the next run ingests everything."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from structures import write_cifs

    from matplat.ingest.structures.ingest import ingest_structures

    write_cifs(tmp_path / "many", 160, seed=3)

    def interrupt(done: int, total: int) -> None:
        if done >= 64:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_structures(db.engine, [str(tmp_path / "many")], workers=2, progress=interrupt)
    assert counts(db.engine) == dict.fromkeys(TABLES, 0)
    s = ingest_structures(db.engine, [str(tmp_path / "many")], workers=2)
    assert s.load.added == 160 and counts(db.engine)["material_files"] == 160


def test_structure_options_are_refused_for_a_dump(db, sample_dump: Path) -> None:
    r = run(db.url, "ingest", str(sample_dump), "--source", "x")
    assert r.exit_code == 2 and "structure files" in r.output
