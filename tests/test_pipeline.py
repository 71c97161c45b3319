"""The whole pipeline from the `platform` command on SQLite, PostgreSQL and MariaDB:
ingest → graphs → train → predict, idempotence, registry round trips and error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pipeline_fixture import TRAIN_ARGS, invoke
from sqlalchemy import text


def scalar(engine, sql: str, **params):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_every_material_has_a_prediction_per_target(pipeline) -> None:
    e = pipeline.engine
    materials = scalar(e, "SELECT count(*) FROM materials")
    assert materials > 50
    assert scalar(e, "SELECT count(*) FROM crystal_graphs WHERE status = 'ok'") == materials
    for tag in ("v3", "v4"):
        # the four targets (the fixture built hulls, so e_above_hull is derived besides)
        n = scalar(e, "SELECT count(*) FROM prediction_results WHERE model_tag = :t "
                      "AND property <> 'e_above_hull'", t=tag)
        assert n == materials * 4
    assert scalar(e, "SELECT count(*) FROM material_properties") == materials


def test_reruns_change_nothing(pipeline, sample_dump: Path) -> None:
    e = pipeline.engine
    before = {t: scalar(e, f"SELECT count(*) FROM {t}") for t in (
        "materials", "structures", "sites", "dft_properties", "crystal_graphs", "predictions")}
    stamp = scalar(e, "SELECT max(created_at) FROM predictions")
    r = invoke(pipeline.url, "ingest", str(sample_dump))
    assert "already ingested" in r.output
    r = invoke(pipeline.url, "ingest", str(sample_dump), "--force")
    assert "nothing changed" in r.output
    r = invoke(pipeline.url, "graphs", "build")
    assert "nothing to do" in r.output
    r = invoke(pipeline.url, "predict", "--model-tag", "v3")
    assert "nothing to do" in r.output
    after = {t: scalar(e, f"SELECT count(*) FROM {t}") for t in before}
    assert after == before
    assert scalar(e, "SELECT max(created_at) FROM predictions") == stamp


def test_model_show_records_lineage(pipeline, tmp_path: Path) -> None:
    r = invoke(pipeline.url, "models", "show", "v3", "--format", "json")
    info = json.loads(r.output)
    assert info["n_parameters"] == 288_097 + 3 * 193  # no-edgenet trunk + 3 more heads
    assert info["targets"] == ["formation_energy", "band_gap", "magnetization", "volume_deviation"]
    assert info["graph_recipe"]["name"] == "cgc"
    assert info["split"]["name"] and info["data_snapshot_hash"]
    assert len(info["training_runs"][0]["history"]) == 3
    assert set(info["metrics"]["test"]) == set(info["targets"])
    assert info["hyperparameters"]["training"]["epochs"] == 3
    r = invoke(pipeline.url, "models", "show", "v3", "--plot", str(tmp_path / "plots"))
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert "v3_learning_curves.png" in pngs and "v3_parity_band_gap.png" in pngs
    assert "288,676 " in r.output or "parameters:        288,676" in r.output


def test_export_import_gives_identical_predictions(pipeline, tmp_path: Path) -> None:
    e = pipeline.engine
    invoke(pipeline.url, "models", "export", "v3", str(tmp_path / "v3.zip"))
    invoke(pipeline.url, "models", "import", str(tmp_path / "v3.zip"), "--tag", "v3copy")
    invoke(pipeline.url, "predict", "--model-tag", "v3copy", "--where", "m.natoms <= 8")
    with e.connect() as conn:
        rows = conn.execute(text(
            "SELECT a.predicted, b.predicted FROM prediction_results a JOIN prediction_results b "
            "ON a.material_id = b.material_id AND a.property = b.property "
            "WHERE a.model_tag = 'v3' AND b.model_tag = 'v3copy' "
            "AND a.property <> 'e_above_hull'")).all()
        small = conn.execute(text("SELECT count(*) FROM materials WHERE natoms <= 8")).scalar_one()
    assert len(rows) == small * 4 and small > 0
    a, b = np.array(rows).T
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    invoke(pipeline.url, "models", "delete", "v3copy", "--yes")
    assert scalar(e, "SELECT count(*) FROM predictions p JOIN model_versions mv ON "
                     "mv.id = p.model_version_id WHERE mv.tag = 'v3copy'") == 0


def test_aliases_and_errors(pipeline) -> None:
    url = pipeline.url
    invoke(url, "models", "alias", "v3", "production")
    r = invoke(url, "models", "alias", "v4", "production")
    assert "v3 -> v4" in r.output
    r = invoke(url, "predict", "--alias", "production")
    assert "nothing to do" in r.output
    r = invoke(url, "train", "--model-tag", "v3", *TRAIN_ARGS, ok=False)
    assert r.exit_code == 1 and "exists already" in r.output
    r = invoke(url, "predict", "--model-tag", "nope", ok=False)
    assert r.exit_code == 1 and "no model version with tag 'nope'" in r.output
    r = invoke(url, "train", "--model-tag", "x1", "--recipe", "no-such-recipe", ok=False)
    assert r.exit_code == 1 and "unknown graph recipe" in r.output
    r = invoke(url, "train", "--model-tag", "x2", "--targets", "colour", ok=False)
    assert r.exit_code == 1 and "unknown target" in r.output
    r = invoke(url, "predict", "--model-tag", "v3", "--where", "m.nonexistent > 1", ok=False)
    assert r.exit_code == 1 and "--where" in r.output
    r = invoke(url, "models", "list", "--format", "json")
    assert {m["tag"] for m in json.loads(r.output)} >= {"v3", "v4"}


def test_export_predictions_and_parquet_query(pipeline, tmp_path: Path) -> None:
    import pandas as pd

    invoke(pipeline.url, "export", "predictions", "--model-tag", "v3", str(tmp_path / "p.parquet"))
    df = pd.read_parquet(tmp_path / "p.parquet")
    n = scalar(pipeline.engine, "SELECT count(*) FROM prediction_results WHERE model_tag = 'v3'")
    assert len(df) == n and set(df.property) - {"e_above_hull"} == {
        "formation_energy", "band_gap", "magnetization", "volume_deviation"}
    invoke(pipeline.url, "export", "predictions", "--model-tag", "v3", str(tmp_path / "p.csv"))
    assert len(pd.read_csv(tmp_path / "p.csv")) == n
    r = invoke(pipeline.url, "export", "predictions", "--model-tag", "zz", str(tmp_path / "x.csv"),
               ok=False)
    assert r.exit_code == 1 and "zz" in r.output


def test_a_rerun_completes_a_leaderboard_refresh_that_never_ran(pipeline) -> None:
    """Predictions written but the final refresh lost (a kill between the two): the next
    predict finds nothing to predict and refreshes; `models refresh` does it on demand."""
    e = pipeline.engine
    sql = ("SELECT count(*) FROM model_metrics WHERE model_version_id = "
           "(SELECT id FROM model_versions WHERE tag = 'v4')")
    before = scalar(e, sql)
    assert before > 0
    with e.begin() as conn:
        conn.execute(text("DELETE FROM model_metrics WHERE model_version_id = "
                          "(SELECT id FROM model_versions WHERE tag = 'v4')"))
    r = invoke(pipeline.url, "predict", "--model-tag", "v4")
    assert "nothing to do" in r.output
    assert scalar(e, sql) == before
    r = invoke(pipeline.url, "models", "refresh", "v4")
    assert f"refreshed {before} leaderboard rows" in r.output
    assert scalar(e, sql) == before
