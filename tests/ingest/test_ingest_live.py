"""`platform ingest mysql+pymysql://…/qmdb` (a live, restored qmdb) equals ingesting the dump."""

from __future__ import annotations

import gzip
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from matplat.cli import cli


def contents(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [
            conn.execute(
                text(
                    "SELECT m.source_id, m.formula, m.composition, m.natoms, m.spacegroup, "
                    "m.prototype, m.content_hash, s.lattice, s.frac_coords, s.atomic_numbers, "
                    "s.volume, d.formation_energy, d.band_gap, d.magnetization, d.volume_per_atom, "
                    "d.volume_deviation, d.source_calculation_id FROM materials m "
                    "JOIN structures s ON s.material_id = m.id "
                    "JOIN dft_properties d ON d.material_id = m.id ORDER BY m.source_id"
                )
            ).all(),
            conn.execute(text("SELECT count(*) FROM sites")).scalar_one(),
        ]


def test_live_server_equals_dump(db, mariadb, sample_dump: Path, tmp_path: Path) -> None:
    plain = tmp_path / "dump.sql"
    plain.write_bytes(gzip.decompress(sample_dump.read_bytes()))
    mariadb.run_script(plain)  # restore the dump, as OQMD users do
    r = CliRunner().invoke(
        cli, ["--db", db.url, "ingest", str(sample_dump)], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    from_dump = contents(db.engine)
    with db.engine.begin() as conn:
        for t in (
            "sites",
            "material_elements",
            "dft_properties",
            "structures",
            "materials",
            "ingest_runs",
        ):
            conn.execute(text(f"DELETE FROM {t}"))
    url = f"mysql+pymysql://root@127.0.0.1:3306/{mariadb.name}"
    r = CliRunner().invoke(cli, ["--db", db.url, "ingest", url], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    from_server = contents(db.engine)
    assert len(from_dump[0]) > 50
    assert from_server == from_dump


def test_live_server_errors(db) -> None:
    r = CliRunner().invoke(cli, ["--db", db.url, "ingest", "mysql+pymysql://root@127.0.0.1:1/qmdb"])
    assert r.exit_code == 1 and "cannot read qmdb server" in r.output
