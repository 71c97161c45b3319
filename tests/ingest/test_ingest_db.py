"""`platform ingest` into SQLite, PostgreSQL and MariaDB: exact values, idempotence, updates,
and every error path leaving the database exactly as before."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from matplat.cli import cli
from matplat.ingest.loader import load_chunks
from matplat.ingest.oqmd import extract_dump

TABLES = ("materials", "structures", "sites", "material_elements", "dft_properties", "ingest_runs")


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)


def counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def snapshot(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2")).all() for t in TABLES[:-1]]


def schema(engine) -> dict:  # type: ignore[no-untyped-def]
    """Indexes, unique constraints, foreign keys and primary keys of the ingest's tables."""
    insp = inspect(engine)
    out = {}
    for t in TABLES:
        out[t] = (
            sorted(repr(sorted(i.items())) for i in insp.get_indexes(t)),
            sorted(repr(sorted(u.items())) for u in insp.get_unique_constraints(t)),
            sorted(repr(sorted(f.items())) for f in insp.get_foreign_keys(t)),
            repr(sorted(insp.get_pk_constraint(t).items())),
        )
    return out


def expected_chunks(path: Path, rule: str, tmp: Path) -> list:
    return list(extract_dump(path, rule, workdir=tmp))


@pytest.mark.parametrize("rule", ["cgnn", "oqmd-api"])
def test_ingest_reproduces_every_value_exactly(
    db, sample_dump: Path, tmp_path: Path, rule: str
) -> None:
    r = run(db.url, "ingest", str(sample_dump), "--rule", rule)
    assert r.exit_code == 0, r.output
    chunks = expected_chunks(sample_dump, rule, tmp_path)
    n = sum(len(c) for c in chunks)
    assert n > 50
    with db.engine.connect() as conn:
        rows = {
            sid: row
            for sid, *row in conn.execute(
                text(
                    "SELECT m.source_id, m.formula, m.natoms, s.lattice, s.frac_coords, s.atomic_numbers,"
                    " s.volume, d.formation_energy, d.band_gap, d.magnetization, d.volume_per_atom, "
                    "d.volume_deviation, d.selection_rule, m.id FROM materials m "
                    "JOIN structures s ON s.material_id = m.id "
                    "JOIN dft_properties d ON d.material_id = m.id"
                )
            )
        }
        site_count = conn.execute(text("SELECT count(*) FROM sites")).scalar_one()
    assert len(rows) == n
    total_sites = 0
    for c in chunks:
        for i, sid in enumerate(c.source_id):
            row = rows[str(int(sid))]
            a, b = c.site_offsets[i], c.site_offsets[i + 1]
            total_sites += b - a
            assert row[0] == c.formula[i] and row[1] == c.natoms[i]
            assert bytes(row[2]) == np.ascontiguousarray(c.lattice[i], "<f8").tobytes()
            assert bytes(row[3]) == np.ascontiguousarray(c.frac_coords[a:b], "<f8").tobytes()
            assert bytes(row[4]) == np.ascontiguousarray(c.atomic_numbers[a:b], "<i2").tobytes()
            assert row[5] == c.volume[i]
            for k, name in enumerate(
                (
                    "formation_energy",
                    "band_gap",
                    "magnetization",
                    "volume_per_atom",
                    "volume_deviation",
                )
            ):
                want = float(getattr(c, name)[i])
                got = row[6 + k]
                assert (got is None and np.isnan(want)) or got == want, (sid, name, got, want)
            assert row[11] == rule
    assert site_count == total_sites


def test_sites_and_elements_match_structures(db, sample_dump: Path) -> None:
    assert run(db.url, "ingest", str(sample_dump)).exit_code == 0
    with db.engine.connect() as conn:
        s = conn.execute(
            text("SELECT id, frac_coords, atomic_numbers FROM structures ORDER BY id LIMIT 5")
        ).all()
        for sid, frac, z in s:
            sites = conn.execute(
                text(
                    "SELECT site_index, atomic_number, x, y, z FROM sites "
                    "WHERE structure_id = :s ORDER BY site_index"
                ),
                {"s": sid},
            ).all()
            f = np.frombuffer(frac, "<f8").reshape(-1, 3)
            assert [r[1] for r in sites] == np.frombuffer(z, "<i2").tolist()
            assert np.array([r[2:] for r in sites]).tolist() == f.tolist()
        bad = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT e.material_id FROM material_elements e "
                "GROUP BY e.material_id HAVING SUM(e.count) <> (SELECT natoms FROM materials m "
                "WHERE m.id = e.material_id)) x"
            )
        ).scalar_one()
    assert bad == 0


def test_reingest_and_newer_dump(db, sample_dump: Path, tmp_path: Path) -> None:
    assert run(db.url, "ingest", str(sample_dump)).exit_code == 0
    before = counts(db.engine)
    r = run(db.url, "ingest", str(sample_dump))
    assert "already ingested" in r.output and counts(db.engine) == before
    r = run(db.url, "ingest", str(sample_dump), "--force")
    assert "nothing changed" in r.output
    assert counts(db.engine)["materials"] == before["materials"]
    # a "newer dump": same entries, one formation energy changed (content hash changes)
    chunks = expected_chunks(sample_dump, "cgnn", tmp_path)
    c = chunks[0]
    c.formation_energy = c.formation_energy.copy()
    c.formation_energy[0] += 0.125
    c.content_hash = list(c.content_hash)
    c.content_hash[0] = "f" * 64
    summary = load_chunks(db.engine, chunks, rule="cgnn", source_name="newer.sql")
    assert (summary.added, summary.updated) == (0, 1)
    assert summary.unchanged == before["materials"] - 1
    with db.engine.connect() as conn:
        fe = conn.execute(
            text(
                "SELECT d.formation_energy FROM dft_properties d JOIN materials m "
                "ON m.id = d.material_id WHERE m.source_id = :s"
            ),
            {"s": str(int(c.source_id[0]))},
        ).scalar_one()
    assert fe == c.formation_energy[0]
    assert counts(db.engine)["sites"] == before["sites"]


def test_truncated_dump_fails_and_changes_nothing(db, sample_dump: Path, tmp_path: Path) -> None:
    assert run(db.url, "ingest", str(sample_dump)).exit_code == 0
    before = snapshot(db.engine)
    raw = gzip.decompress(sample_dump.read_bytes())
    cut = tmp_path / "truncated.sql"
    cut.write_bytes(raw[: int(len(raw) * 0.9)])
    r = CliRunner().invoke(cli, ["--db", db.url, "ingest", str(cut), "--force"])
    assert r.exit_code == 1
    assert "truncated.sql" in r.output and "byte " in r.output and "truncated" in r.output
    assert snapshot(db.engine) == before
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, this is not a dump\n")
    r = CliRunner().invoke(cli, ["--db", db.url, "ingest", str(junk)])
    assert r.exit_code == 1 and "notes.txt" in r.output
    assert snapshot(db.engine) == before


def test_dry_run_and_limit(db, sample_dump: Path, tmp_path: Path) -> None:
    r = run(db.url, "ingest", str(sample_dump), "--dry-run")
    assert r.exit_code == 0 and "nothing was written" in r.output
    assert counts(db.engine)["materials"] == 0 and counts(db.engine)["ingest_runs"] == 0
    r = run(
        db.url,
        "ingest",
        str(sample_dump),
        "--limit",
        "10",
        "--rejects",
        str(tmp_path / "rejects.tsv"),
    )
    assert r.exit_code == 0
    assert counts(db.engine)["materials"] <= 10
    assert (tmp_path / "rejects.tsv").read_text().startswith("source_id\treason")


def test_interrupt_rolls_back(db, sample_dump: Path, tmp_path: Path) -> None:
    """Ctrl-C in the middle of a load leaves the database as before."""
    assert run(db.url, "ingest", str(sample_dump), "--limit", "5").exit_code == 0
    before = snapshot(db.engine)

    def interrupted():  # type: ignore[no-untyped-def]
        for i, chunk in enumerate(
            extract_dump(sample_dump, "cgnn", workdir=tmp_path, chunk_size=20)
        ):
            if i == 2:
                raise KeyboardInterrupt
            yield chunk

    with pytest.raises(KeyboardInterrupt):
        load_chunks(db.engine, interrupted(), rule="cgnn", source_name="x")
    assert snapshot(db.engine) == before


def test_first_ingest_keeps_the_schema(db, sample_dump: Path) -> None:
    """A first load may set constraints and indexes aside (PostgreSQL): they all come back,
    validated, after success, and after a failure or Ctrl-C nothing at all has changed."""
    migrated = schema(db.engine)
    empty = snapshot(db.engine)
    raw = gzip.decompress(sample_dump.read_bytes())
    cut = sample_dump.parent / "first-truncated.sql"
    cut.write_bytes(raw[: int(len(raw) * 0.95)])
    r = CliRunner().invoke(cli, ["--db", db.url, "ingest", str(cut)])
    assert r.exit_code == 1 and "truncated" in r.output
    assert snapshot(db.engine) == empty and schema(db.engine) == migrated
    assert counts(db.engine)["ingest_runs"] == 0

    def interrupted(tmp: Path):  # type: ignore[no-untyped-def]
        for i, chunk in enumerate(extract_dump(sample_dump, "cgnn", workdir=tmp, chunk_size=20)):
            if i == 2:
                raise KeyboardInterrupt
            yield chunk

    with pytest.raises(KeyboardInterrupt):
        load_chunks(db.engine, interrupted(sample_dump.parent), rule="cgnn", source_name="x")
    assert snapshot(db.engine) == empty and schema(db.engine) == migrated

    assert run(db.url, "ingest", str(sample_dump)).exit_code == 0
    assert schema(db.engine) == migrated
    assert counts(db.engine)["materials"] > 50


def test_duplicate_materials_in_a_first_load_fail_and_change_nothing(
    db, sample_dump: Path, tmp_path: Path
) -> None:
    """The per-chunk lookup is skipped on a first load; the unique constraint still holds."""
    chunks = expected_chunks(sample_dump, "cgnn", tmp_path)
    empty = snapshot(db.engine)
    migrated = schema(db.engine)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        load_chunks(db.engine, [chunks[0], chunks[0]], rule="cgnn", source_name="dup")
    assert snapshot(db.engine) == empty and schema(db.engine) == migrated
    assert counts(db.engine)["ingest_runs"] == 0


def test_first_load_still_checks_foreign_keys(
    db, sample_dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first load may check foreign keys once at the end instead of per row (SQLite,
    PostgreSQL): a violation still fails the ingest and leaves nothing behind."""
    from matplat.ingest import writers

    if db.kind in ("mysql", "mariadb"):
        pytest.skip("MariaDB checks every row as it is written")
    restore = writers.ChunkWriter.restore_constraints

    def orphan_then_restore(self):  # type: ignore[no-untyped-def]
        self.conn.execute(text(
            "INSERT INTO sites (structure_id, site_index, element, atomic_number, x, y, z) "
            "VALUES (999999999, 0, 'Fe', 26, 0, 0, 0)"
        ))
        restore(self)

    monkeypatch.setattr(writers.ChunkWriter, "restore_constraints", orphan_then_restore)
    empty = snapshot(db.engine)
    chunks = expected_chunks(sample_dump, "cgnn", tmp_path)
    with pytest.raises(Exception, match="(?i)foreign key"):
        load_chunks(db.engine, chunks, rule="cgnn", source_name="orphan")
    assert snapshot(db.engine) == empty
    with db.engine.connect() as conn:
        if db.kind == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
