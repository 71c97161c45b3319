"""Training and model import refuse bad input before any work (issue 11, items 7 and 8), on
SQLite, PostgreSQL and MariaDB: one validation for options and ``--config``, targets without
any value, no graphs, and model exports whose weights are not a model."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from hostile.inputs import export_zip, garbage_weights, one_error_line
from matplat.cli import cli

TABLES = ("jobs", "model_versions", "training_runs", "dataset_splits", "split_members")


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args])


def counts(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in TABLES}


NOTHING = dict.fromkeys(TABLES, 0)

#: (options, config file content or None, words of the error line)
BAD_SETTINGS = [
    (["--epochs", "0"], None, ["--epochs", ">= 1"]),
    ([], {"training": {"epochs": 0}}, ["training.epochs", ">= 1"]),
    (["--lr", "nan"], None, ["--lr", "finite"]),
    ([], {"training": {"lr": float("inf")}}, ["training.lr", "finite"]),
    (["--lr", "-1e-3"], None, ["--lr", "> 0"]),
    ([], {"training": {"lr": "fast"}}, ["training.lr", "number"]),
    ([], {"training": {"batch_size": 2.5}}, ["training.batch_size", "integer"]),
    ([], {"training": {"epochz": 3}}, ["training.epochz", "unknown"]),
    ([], {"training": {"amp": "fp8"}}, ["training.amp"]),
    ([], {"training": [1, 2]}, ["training", "object"]),
    ([], {"model": {"n_hidden": -1}}, ["model", "n_hidden"]),
    ([], {"model": {"no_such_setting": 1}}, ["model", "no_such_setting"]),
    ([], {"model": {"targets": ["x"]}}, ["model", "targets"]),
    ([], {"preset": "huge"}, ["preset", "huge"]),
    ([], {"targets": ["formation_energy", "formation_energy"]}, ["targets", "twice"]),
    ([], {"seed": "x"}, ["seed"]),
    (["--targets", "nope"], None, ["nope"]),
    (["--patience", "0"], None, ["--patience"]),
    ([], "{not json", ["--config", "JSON"]),
]


def test_bad_training_settings_are_one_line_before_any_work(db, tmp_path: Path) -> None:
    for k, (options, config, words) in enumerate(BAD_SETTINGS):
        args = ["train", "--model-tag", "t1", *options]
        if config is not None:
            path = tmp_path / f"train{k}.json"
            path.write_text(config if isinstance(config, str) else json.dumps(config))
            args += ["--config", str(path)]
        r = run(db.url, *args)
        assert r.exit_code == 1, (args, config, r.output)
        line = one_error_line(r.output)
        for w in words:
            assert w in line, (config, line)
    assert counts(db) == NOTHING


def test_no_graphs_is_one_line_naming_the_recipe(db, sample_dump: Path) -> None:
    assert run(db.url, "ingest", str(sample_dump)).exit_code == 0
    r = run(db.url, "train", "--model-tag", "t1", "--epochs", "1")
    assert r.exit_code == 1
    line = one_error_line(r.output)
    assert "no graphs of recipe 'cgc'" in line and "platform graphs build" in line
    assert counts(db) == NOTHING


def test_target_without_values_is_refused_then_a_model_trains_exports_and_imports(
        db, sample_dump: Path, tmp_path: Path) -> None:
    assert run(db.url, "ingest", str(sample_dump)).exit_code == 0
    assert run(db.url, "graphs", "build", "--workers", "1").exit_code == 0
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE dft_properties SET band_gap = NULL"))
    before = counts(db)
    r = run(db.url, "train", "--model-tag", "t1", "--targets", "formation_energy,band_gap",
            "--epochs", "1", "--batch-size", "32")
    assert r.exit_code == 1
    line = one_error_line(r.output)
    assert "band_gap" in line and "--targets" in line
    assert counts(db) == before  # nothing registered, no split stored, the tag stays free

    r = run(db.url, "train", "--model-tag", "t1", "--targets", "formation_energy",
            "--epochs", "1", "--batch-size", "32")
    assert r.exit_code == 0, r.output
    assert "registered model version t1" in r.output
    export = tmp_path / "t1.zip"
    assert run(db.url, "models", "export", "t1", str(export)).exit_code == 0
    r = run(db.url, "models", "import", str(export), "--tag", "t1-copy")
    assert r.exit_code == 0, r.output
    assert counts(db)["model_versions"] == 2


def test_import_with_garbage_weights_is_refused(db, tmp_path: Path) -> None:
    for kind, weights in sorted(garbage_weights().items()):
        path = export_zip(tmp_path / f"{kind}.zip", weights)
        r = run(db.url, "models", "import", str(path))
        assert r.exit_code == 1, (kind, r.output)
        line = one_error_line(r.output)
        assert "weights are not a matplat model" in line and "nothing was imported" in line
        assert str(path) in line
    assert counts(db) == NOTHING
