"""ORM round trip of every model and the public views, on all three engines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import (
    make_material,
    make_model_version,
    make_prediction,
    make_recipe,
    make_split,
)
from sqlalchemy import exc, select, text

from matplat.db.models import (
    CrystalGraph,
    DftProperty,
    IngestRun,
    Job,
    Material,
    MaterialElement,
    ModelAlias,
    ModelVersion,
    Site,
    SplitMember,
    Structure,
    TrainingRun,
)
from matplat.db.session import session_factory, transaction


def test_round_trip_every_model(db) -> None:
    engine = db.engine
    big = bytes(range(256)) * 1024  # 256 KiB: more than a MySQL BLOB holds
    with transaction(engine) as s:
        run = IngestRun(source="oqmd-dump", file_name="x.sql.gz", file_size=123, sha256="a" * 64,
                        rule="cgnn", status="succeeded", n_added=1, n_updated=0, n_unchanged=0,
                        n_rejected=0, counts={"atoms": 10}, seconds=1.5)
        s.add(run)
        s.flush()
        make_material(s, 1, formula="Fe2O3", elements={"Fe": 2, "O": 3},
                      dft={"band_gap": None, "formation_energy": 5e-324})
        recipe = make_recipe(s)
        s.add(CrystalGraph(structure_id=1, recipe_id=recipe.id, status="ok", natoms=5, nedges=2, n_isolated=3,
                           atomic_numbers=np.array([26, 26, 8, 8, 8], "<i2").tobytes(),
                           edge_src=np.array([0, 1], "<i4").tobytes(),
                           edge_dst=np.array([1, 0], "<i4").tobytes(),
                           edge_image=np.zeros((2, 3), "i1").tobytes(),
                           edge_dist=np.array([2.0, 2.0], "<f4").tobytes()))
        split = make_split(s, {1: "test"})
        mv = make_model_version(s, "v1", split_id=split.id, recipe_id=recipe.id)
        mv.artifact = big
        s.add(ModelAlias(alias="production", model_version_id=mv.id))
        s.add(TrainingRun(model_version_id=mv.id, tag="v1", member=0, seed=1, status="succeeded",
                          device="cpu", history=[{"epoch": 1, "val_mae": {"band_gap": 0.5}}],
                          best_epoch=1, seconds=2.0))
        s.add(Job(kind="graphs", status="running", params={"recipe": "cgc"}, total=10, done=3,
                  failed=0))
        make_prediction(s, mv.id, 1, "band_gap", 1.25, 0.1)
    with session_factory(engine)() as s:
        m = s.scalars(select(Material)).one()
        assert (m.formula, m.natoms, m.spacegroup, m.source_id) == ("Fe2O3", 5, 225, "1001")
        st = s.get(Structure, 1)
        assert np.frombuffer(st.atomic_numbers, "<i2").tolist() == [26, 26, 8, 8, 8]
        assert np.frombuffer(st.lattice, "<f8").reshape(3, 3)[0, 0] == 4.0
        assert [x.element for x in s.scalars(select(Site).order_by(Site.site_index))] == [
            "Fe", "Fe", "O", "O", "O"]
        assert {e.element: e.count for e in s.scalars(select(MaterialElement))} == {"Fe": 2, "O": 3}
        d = s.get(DftProperty, 1)
        assert d.band_gap is None and d.formation_energy == 5e-324
        g = s.scalars(select(CrystalGraph)).one()
        assert np.frombuffer(g.edge_dist, "<f4").tolist() == [2.0, 2.0]
        mv2 = s.scalars(select(ModelVersion)).one()
        assert mv2.artifact == big and mv2.targets == ["formation_energy", "band_gap"]
        assert mv2.created_at is not None
        assert s.scalars(select(ModelAlias)).one().replaced_at is None
        assert s.scalars(select(TrainingRun)).one().history[0]["val_mae"]["band_gap"] == 0.5
        assert s.scalars(select(Job)).one().params == {"recipe": "cgc"}
        assert s.scalars(select(SplitMember)).one().subset == "test"
        assert s.get(IngestRun, run.id).counts == {"atoms": 10}


def test_natural_keys_are_unique(db) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
        make_model_version(s, "v1")
    with pytest.raises(exc.IntegrityError), transaction(db.engine) as s:
        s.add(Material(id=2, source="oqmd", source_id="1001", formula="X", composition="X",
                       natoms=1, content_hash="0"))
    with pytest.raises(exc.IntegrityError), transaction(db.engine) as s:
        make_model_version(s, "v1")


def test_deleting_a_material_cascades(db) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1)
        make_material(s, 2, formula="KBr", elements={"K": 1, "Br": 1})
    with transaction(db.engine) as s:
        s.execute(text("DELETE FROM materials WHERE id = 1"))
    with db.engine.connect() as conn:
        for table in ("structures", "sites", "material_elements", "dft_properties"):
            n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            assert n in (1, 2) and n == conn.execute(
                text(f"SELECT count(*) FROM {table}")).scalar_one()
        assert conn.execute(text("SELECT count(*) FROM sites WHERE structure_id = 1")).scalar_one() == 0


def test_material_properties_view(db) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1, dft={"formation_energy": -2.0, "band_gap": 0.0})
        make_material(s, 2, formula="KBr", elements={"K": 1, "Br": 1}, spacegroup=None)
        s.execute(text("DELETE FROM dft_properties WHERE material_id = 2"))
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT material_id, source, source_id, formula, natoms, formation_energy, "
            "volume_per_atom, band_gap, magnetization, spacegroup FROM material_properties "
            "ORDER BY material_id")).all()
    assert rows[0] == (1, "oqmd", "1001", "NaCl", 2, -2.0, 32.0, 0.0, 0.0, 225)
    assert rows[1] == (2, "oqmd", "1002", "KBr", 2, None, None, None, None, None)


def test_prediction_results_view(db) -> None:
    with transaction(db.engine) as s:
        make_material(s, 1, dft={"band_gap": 2.0, "formation_energy": -1.0})
        make_material(s, 2, formula="KBr", elements={"K": 1, "Br": 1},
                      dft={"band_gap": None})
        split = make_split(s, {1: "train"})
        mv = make_model_version(s, "v3", split_id=split.id)
        other = make_model_version(s, "v4")
        make_prediction(s, mv.id, 1, "band_gap", 2.5, 0.2)
        make_prediction(s, mv.id, 1, "formation_energy", -1.25)
        make_prediction(s, mv.id, 2, "band_gap", 1.0)
        make_prediction(s, other.id, 1, "band_gap", 3.0)
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT model_tag, material_id, source_id, formula, property, predicted, uncertainty, "
            "dft, abs_error, split FROM prediction_results WHERE model_tag = 'v3' "
            "ORDER BY material_id, property")).all()
        assert conn.execute(text("SELECT created_at FROM prediction_results")).first()[0] is not None
    assert rows[0] == ("v3", 1, "1001", "NaCl", "band_gap", 2.5, 0.2, 2.0, 0.5, "train")
    assert rows[1][4:] == ("formation_energy", -1.25, None, -1.0, 0.25, "train")
    assert rows[2][4:] == ("band_gap", 1.0, None, None, None, None)
    assert len(rows) == 3
    assert not math.isnan(rows[0][8])


def test_latest_predictions_prefers_production_alias(db) -> None:
    from matplat.services.registry import set_alias

    with transaction(db.engine) as s:
        make_material(s, 1)
        make_material(s, 2, formula="KBr", elements={"K": 1, "Br": 1})
        old = make_model_version(s, "old")
        new = make_model_version(s, "new")
        make_prediction(s, old.id, 1, "band_gap", 1.0)
        make_prediction(s, old.id, 2, "band_gap", 2.0)
        make_prediction(s, new.id, 1, "band_gap", 1.5)
    q = text("SELECT material_id, predicted, model_tag FROM latest_predictions "
             "WHERE property = 'band_gap' ORDER BY material_id")
    with db.engine.connect() as conn:
        assert conn.execute(q).all() == [(1, 1.5, "new"), (2, 2.0, "old")]
    set_alias(db.engine, "old", "production")
    with db.engine.connect() as conn:
        assert conn.execute(q).all() == [(1, 1.0, "old"), (2, 2.0, "old")]
    set_alias(db.engine, "new", "production")  # history kept, newest assignment wins
    with db.engine.connect() as conn:
        assert conn.execute(q).all() == [(1, 1.5, "new"), (2, 2.0, "old")]
        hist = conn.execute(text("SELECT alias, replaced_at IS NULL FROM model_aliases "
                                 "ORDER BY id")).all()
    assert [(a, bool(c)) for a, c in hist] == [("production", False), ("production", True)]
