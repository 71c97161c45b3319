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
