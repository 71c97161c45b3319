"""Bulk writers on every engine: values bit-exact, NaN as NULL, idempotent predictions."""

from __future__ import annotations

import numpy as np
from factories import make_material, make_model_version
from sqlalchemy import text

from matplat.db.bulk import insert_columns, insert_ignore, upsert, write_predictions
from matplat.db.models import GraphRecipe
from matplat.db.session import transaction


def test_insert_columns_exact_floats_and_nulls(db) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
    awkward = np.array([5e-324, 1e308, -0.0, 0.1 + 0.2, np.nan, 1.0 / 3.0])
    with db.engine.begin() as conn:
        insert_columns(conn, "sites", {
            "structure_id": np.ones(6, np.int64),
            "site_index": np.arange(10, 16),
            "element": ["Na", "Cl", "O", "Na", "Cl", "O"],
            "atomic_number": np.array([11, 17, 8, 11, 17, 8]),
            "x": np.nan_to_num(awkward, nan=0.5), "y": np.full(6, 0.25),
            "z": np.arange(6) / 7.0,
        })
    with db.engine.connect() as conn:
        xs = [r[0] for r in conn.execute(text(
            "SELECT x FROM sites WHERE site_index >= 10 ORDER BY site_index"))]
        zs = [r[0] for r in conn.execute(text(
            "SELECT z FROM sites WHERE site_index >= 10 ORDER BY site_index"))]
    assert xs == np.nan_to_num(awkward, nan=0.5).tolist()
    assert zs == (np.arange(6) / 7.0).tolist()


def test_insert_columns_nan_becomes_null(db) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
        s.execute(text("DELETE FROM dft_properties"))
    with db.engine.begin() as conn:
        insert_columns(conn, "dft_properties", {
            "material_id": np.array([1]),
            "formation_energy": np.array([np.nan]), "volume_per_atom": np.array([1e-300]),
            "band_gap": [None], "magnetization": np.array([0.0]),
            "total_magnetization": np.array([5e-324]), "volume_deviation": np.array([np.nan]),
            "source_calculation_id": np.array([7]), "selection_rule": ["cgnn"],
        })
    with db.engine.connect() as conn:
        row = conn.execute(text(
            "SELECT formation_energy, volume_per_atom, band_gap, total_magnetization, "
            "volume_deviation FROM dft_properties")).one()
    assert row == (None, 1e-300, None, 5e-324, None)


def test_write_predictions_is_idempotent(db) -> None:
    with transaction(db.engine) as s:
        for i in range(1, 6):
            make_material(s, i, formula=f"X{i}", elements={"Na": 1})
        mv = make_model_version(s, "v1")
    ids = np.arange(1, 6)
    vals = np.array([0.1, 0.2, 0.3, 5e-324, -1e10])
    with db.engine.begin() as conn:
        write_predictions(conn, mv.id, ids, "band_gap", vals, None)
        write_predictions(conn, mv.id, ids[:3], "formation_energy", vals[:3], np.array([0.5, np.nan, 0.0]))
    with db.engine.begin() as conn:  # again: nothing changes, no error
        write_predictions(conn, mv.id, ids, "band_gap", vals * 2, None)
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT material_id, property, value, uncertainty FROM predictions "
            "ORDER BY property, material_id")).all()
    assert len(rows) == 8
    assert [r[2] for r in rows if r[1] == "band_gap"] == vals.tolist()
    fe = [r for r in rows if r[1] == "formation_energy"]
    assert [r[3] for r in fe] == [0.5, None, 0.0]


def test_insert_ignore_and_upsert(db) -> None:
    table = GraphRecipe.__table__
    row = {"name": "cgc", "params": {"a": 1}, "code_version": "1", "params_hash": "h1"}
    with db.engine.begin() as conn:
        insert_ignore(conn, table, [row])
        insert_ignore(conn, table, [row, {**row, "params_hash": "h2"}])
    with db.engine.begin() as conn:
        upsert(conn, table, [{**row, "name": "renamed"}], keys=["params_hash"], update=["name"])
    with db.engine.connect() as conn:
        names = conn.execute(text("SELECT params_hash, name FROM graph_recipes ORDER BY params_hash")).all()
    assert names == [("h1", "renamed"), ("h2", "cgc")]


def test_copy_binary_every_column_kind(db) -> None:
    """PostgreSQL binary COPY built with numpy: NULLs, NaN, short text of varying length,
    raw bytes, variable text and bytea (non-ASCII too), in row groups; values exact."""
    import pytest

    from matplat.db.bulk import copy_binary

    if db.kind != "postgresql":
        pytest.skip("binary COPY is PostgreSQL's")
    n = 7
    lattice = np.arange(n * 9, dtype="<f8").reshape(n, 9) / 7.0
    lattice[0, 8] = 0.0  # trailing zero bytes must survive (raw bytes, not text)
    sg = np.array([1, -1, 230, -1, 5, 6, 7], dtype=np.int16)
    with db.engine.begin() as conn:
        copy_binary(conn, "materials", {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "source": np.full(n, b"oqmd", dtype="S4"),
            "source_id": np.array([b"1", b"22", b"333", b"4", b"55", b"6666", b"7"]),
            "formula": ["NaCl", "Fe2(SO4)3", "O2", "Ünïcode", "", "H2O", "C"],
            "composition": ["Na1 Cl1", "Fe2 S3 O12", "O2", "X1", "Y1", "H2 O1", "C60"],
            "natoms": np.arange(1, n + 1, dtype=np.int32),
            "spacegroup": np.ma.masked_array(sg, mask=sg < 0),
            "prototype": ["NaCl", None, "", None, "é", "x" * 63, None],
            "content_hash": np.array([f"{i:064x}".encode() for i in range(n)], dtype="S64"),
            "ingest_run_id": np.ma.masked_array(np.zeros(n, np.int64), mask=True),
        })
        copy_binary(conn, "structures", {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "material_id": np.arange(1, n + 1, dtype=np.int64),
            "source_structure_id": np.arange(100, 100 + n, dtype=np.int64),
            "natoms": np.arange(1, n + 1, dtype=np.int32),
            "volume": np.array([5e-324, 1e308, -0.0, 0.1 + 0.2, 1.0, 2.0, 1 / 3]),
            "lattice": lattice.view("V72").reshape(-1),
            "frac_coords": [bytes([i] * (24 * (i + 1))) for i in range(n)],
            "atomic_numbers": [b"\x00\x01" * (i + 1) for i in range(n)],
        })
        copy_binary(conn, "dft_properties", {
            "material_id": np.arange(1, n + 1, dtype=np.int64),
            "formation_energy": np.array([np.nan, 1.0, -2.5, np.nan, 5e-324, 0.0, 3.0]),
            "volume_per_atom": np.full(n, 10.0),
            "band_gap": np.array([0.0, np.nan, 1.0, np.nan, 2.0, 3.0, np.nan]),
            "magnetization": np.full(n, np.nan),
            "total_magnetization": np.zeros(n),
            "volume_deviation": np.linspace(0, 1, n),
            "source_calculation_id": np.arange(n, dtype=np.int64),
            "selection_rule": np.full(n, b"cgnn", dtype="S4"),
        })
    with db.engine.connect() as conn:
        m = conn.execute(text(
            "SELECT id, source, source_id, formula, composition, natoms, spacegroup, prototype, "
            "content_hash, ingest_run_id FROM materials ORDER BY id")).all()
        s = conn.execute(text(
            "SELECT volume, lattice, frac_coords, atomic_numbers FROM structures ORDER BY id")).all()
        d = conn.execute(text(
            "SELECT formation_energy, band_gap, magnetization, volume_deviation, selection_rule "
            "FROM dft_properties ORDER BY material_id")).all()
    assert [r[2] for r in m] == ["1", "22", "333", "4", "55", "6666", "7"]
    assert [r[3] for r in m] == ["NaCl", "Fe2(SO4)3", "O2", "Ünïcode", "", "H2O", "C"]
    assert [r[6] for r in m] == [1, None, 230, None, 5, 6, 7]
    assert [r[7] for r in m] == ["NaCl", None, "", None, "é", "x" * 63, None]
    assert [r[8] for r in m] == [f"{i:064x}" for i in range(n)]
    assert {r[1] for r in m} == {"oqmd"} and {r[9] for r in m} == {None}
    assert [r[0] for r in s] == [5e-324, 1e308, -0.0, 0.1 + 0.2, 1.0, 2.0, 1 / 3]
    assert [bytes(r[1]) for r in s] == [lattice[i].tobytes() for i in range(n)]
    assert [bytes(r[2]) for r in s] == [bytes([i] * (24 * (i + 1))) for i in range(n)]
    assert [bytes(r[3]) for r in s] == [b"\x00\x01" * (i + 1) for i in range(n)]
    assert [r[0] for r in d] == [None, 1.0, -2.5, None, 5e-324, 0.0, 3.0]
    assert [r[1] for r in d] == [0.0, None, 1.0, None, 2.0, 3.0, None]
    assert {r[2] for r in d} == {None} and {r[4] for r in d} == {"cgnn"}
    assert [r[3] for r in d] == np.linspace(0, 1, n).tolist()
