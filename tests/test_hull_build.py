"""`platform hull build` on SQLite, PostgreSQL and MariaDB: pymatgen's numbers, incremental
rebuilds that touch exactly the affected systems, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from pymatgen.core import Element
from sqlalchemy import text, update
from stability_data import build, hull_rows, insert_rows, pymatgen_reference, random_entries

from matplat.cli.main import cli
from matplat.db.models import DftProperty


def test_build_equals_pymatgen(db) -> None:
    engine = db.engine
    _, rows = random_entries(0, n=160)
    insert_rows(engine, rows)
    ref = pymatgen_reference(rows)
    plan, job = build(engine, chunk_size=40)
    assert len(plan.tasks) > 1  # several tasks, each a set of whole owner groups
    got = hull_rows(engine)
    assert set(got) == set(ref)  # the two materials without a formation energy are left out
    for mid, (ehull, _decomp) in ref.items():
        assert got[mid][0] == pytest.approx(ehull, abs=1e-6), mid
        assert bool(got[mid][1]) == (ehull <= 1e-8)
    with engine.connect() as conn:
        dec = conn.execute(text(
            "SELECT material_id, product_material_id, product_formula, fraction "
            "FROM hull_decompositions ORDER BY material_id, position")).all()
        b = conn.execute(text("SELECT status, left_out, systems_total, systems_recomputed "
                              "FROM hull_builds")).one()
        view = conn.execute(text(
            "SELECT COUNT(*), SUM(CASE WHEN is_stable THEN 1 ELSE 0 END) FROM material_stability "
            "WHERE e_above_hull IS NOT NULL")).one()
    assert b[0] == "succeeded" and '"no formation energy": 2' in b[1] and b[2] == b[3]
    assert view[0] == len(ref) and view[1] == sum(1 for v in ref.values() if v[0] <= 1e-8)
    fractions: dict[int, float] = {}
    for mid, product, formula, frac in dec:
        fractions[mid] = fractions.get(mid, 0.0) + frac
        assert product is not None or Element.is_valid_symbol(formula)
        assert ref[mid][0] > 1e-8
    assert fractions and all(abs(v - 1) < 1e-9 for v in fractions.values())
    # Unstable materials with a unique decomposition: pymatgen's products and amounts.
    for mid, (_, decomp) in ref.items():
        ours = {(p if p is not None else -Element(f).Z): fr for m, p, f, fr in dec if m == mid}
        if ours and set(ours) == set(decomp):
            assert all(abs(ours[k] - decomp[k]) < 1e-6 for k in ours)


def test_incremental_rebuild_touches_exactly_the_affected_systems(db) -> None:
    engine = db.engine
    _, rows = random_entries(1, n=120)
    ids = insert_rows(engine, rows)
    plan1, _ = build(engine)
    before = hull_rows(engine)
    with engine.connect() as conn:
        systems = {r[0]: r[1] for r in conn.execute(text(
            "SELECT chemical_system, hull_build_id FROM hull_systems"))}
    # Nothing changed: no job.
    plan, job = build(engine)
    assert job is None and plan.systems_dirty == 0
    # A new Li-O compound far below the hull, and a changed Cu-Ni energy.
    insert_rows(engine, [({3: 2, 8: 1}, -3.0)], first_id=10_000)
    cu_ni = next(i for i, (c, e) in zip(ids, rows, strict=True)
                 if set(c) == {28, 29} and np.isfinite(e))
    with engine.begin() as conn:
        conn.execute(update(DftProperty).where(DftProperty.material_id == cu_ni)
                     .values(formation_energy=-2.5))
    plan2, job2 = build(engine)
    with engine.connect() as conn:
        after_sys = {r[0]: r[1] for r in conn.execute(text(
            "SELECT chemical_system, hull_build_id FROM hull_systems"))}
    recomputed = {s for s, b in after_sys.items() if b == plan2.build_id}
    expected = {s for s in after_sys if {"Li", "O"} <= set(s.split("-"))
                or {"Cu", "Ni"} <= set(s.split("-"))}
    assert recomputed == expected and "Li-O" in recomputed
    assert all(after_sys[s] == systems[s] for s in systems if s not in expected)
    after = hull_rows(engine)
    untouched = [m for m, r in before.items() if r[2] not in expected]
    assert untouched and all(after[m] == before[m] for m in untouched)
    assert after[10_000][0] == 0.0 and after[cu_ni][0] == 0.0
    # The incremental result equals a full rebuild.
    ref = pymatgen_reference(rows[:ids.index(cu_ni)] + [(rows[ids.index(cu_ni)][0], -2.5)]
                             + rows[ids.index(cu_ni) + 1:] + [({3: 2, 8: 1}, -3.0)])
    remap = {i + 1: mid for i, mid in enumerate([*ids, 10_000])}
    for label, (ehull, _) in ref.items():
        assert after[remap[label]][0] == pytest.approx(ehull, abs=1e-6)
    # A new material above its hull moves no hull: only its own system is recomputed.
    insert_rows(engine, [({3: 1, 14: 1}, 0.5)], first_id=10_001)
    plan4, _ = build(engine)
    with engine.connect() as conn:
        again = {r[0] for r in conn.execute(text(
            "SELECT chemical_system FROM hull_systems WHERE hull_build_id = :b"),
            {"b": plan4.build_id})}
    assert again == {"Li-Si"} and plan4.hulls_moved == 0
    assert hull_rows(engine)[10_001][0] > 0.4
    # Deleting a stable material moves its hull: its system and those above it.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM materials WHERE id = 10000"))
    plan3, _ = build(engine)
    assert plan3.systems_dirty == len([s for s in after_sys if {"Li", "O"} <= set(s.split("-"))])


def test_cli(db, monkeypatch) -> None:
    monkeypatch.setenv("PLATFORM_DATABASE_URL", db.url)
    _, rows = random_entries(2, n=40)
    insert_rows(db.engine, rows)
    runner = CliRunner()
    r = runner.invoke(cli, ["hull", "build"])
    assert r.exit_code == 0, r.output
    assert "chemical systems recomputed" in r.output and "left out: 2 no formation energy" in r.output
    r = runner.invoke(cli, ["hull", "build"])
    assert r.exit_code == 0 and "nothing to do" in r.output
    r = runner.invoke(cli, ["hull", "build", "--source", "nope"])
    assert r.exit_code == 1 and r.output.strip().startswith("error: no materials of source 'nope'")
    r = runner.invoke(cli, ["hull", "list", "--format", "csv"])
    assert r.exit_code == 0 and r.output.count("\n") == 3


def test_two_databases_in_one_process_keep_their_own_data(tmp_path) -> None:
    """Hull builds are numbered per database: the process cache must not hand build 1 of one
    database to a task of build 1 of another (a worker or a test run may serve several)."""
    from dbutil import create_database

    from matplat.db.session import dispose_engines
    from workers.hull_data import cached_source, load_source

    dbs = []
    for name, seed, n in (("a", 1, 60), ("b", 2, 90)):
        (tmp_path / name).mkdir()
        d = create_database("sqlite", tmp_path / name)
        d.upgrade()
        insert_rows(d.engine, random_entries(seed, n=n)[1])
        dbs.append(d)
    try:
        first, second = (d.engine for d in dbs)
        assert len(cached_source(first, "oqmd", 1).formulas) == len(load_source(first, "oqmd")
                                                                   .formulas)
        # the same (source, build id) in the other database reads that database
        assert len(cached_source(second, "oqmd", 1).formulas) == len(
            load_source(second, "oqmd").formulas) != len(load_source(first, "oqmd").formulas)
    finally:
        dispose_engines()
