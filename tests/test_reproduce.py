"""`platform train --setup paper` and `platform reproduce cgnn` end to end, on all three engines:
a small data-set folder written by `platform export cgnn-dataset`, the four single-target models
trained with the reference's recipe (few epochs), the table beside the published MAEs."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from matplat.cli import cli
from workers.training import PAPER_TEST_MAE


def run(url: str, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def test_reproduce_cgnn_trains_the_four_paper_models(db, sample_dump: Path,
                                                     tmp_path: Path) -> None:
    run(db.url, "ingest", str(sample_dump))
    run(db.url, "graphs", "build", "--workers", "1")
    folder = tmp_path / "cgnn_small"
    run(db.url, "export", "cgnn-dataset", str(folder))
    out = run(db.url, "reproduce", "cgnn", str(folder), "--epochs", "2").output
    for target, published in PAPER_TEST_MAE.items():
        line = next(ln for ln in out.splitlines() if ln.startswith(target + " "))
        n, mae, pub, _ratio = line.split()[1:]
        assert int(n) > 0 and float(mae) >= 0 and float(pub) == published, line
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT mv.tag, mv.preset, mv.targets, mv.hyperparameters, mv.metrics, r.name "
            "FROM model_versions mv JOIN graph_recipes r ON r.id = mv.recipe_id "
            "ORDER BY mv.tag")).all()
    assert [r[0] for r in rows] == sorted(f"cgnn-paper-{t}" for t in PAPER_TEST_MAE)
    for tag, preset, targets, hyper, metrics, recipe in rows:
        import json

        hyper = json.loads(hyper) if isinstance(hyper, str) else hyper
        metrics = json.loads(metrics) if isinstance(metrics, str) else metrics
        targets = json.loads(targets) if isinstance(targets, str) else targets
        assert recipe == "dataset:cgnn_small" and preset == "complete"
        assert targets == [tag.removeprefix("cgnn-paper-")]  # one target per model
        assert hyper["model"]["nonnegative_targets"] == []  # linear outputs
        t = hyper["training"]
        assert (t["lr"], t["weight_decay"], t["milestones"], t["gamma"], t["amp"],
                t["standardize"], t["epochs"]) == (1e-3, 1e-6, [250], 0.1, "off", False, 2)
        assert metrics["setup"] == "paper"
        assert metrics["class_thresholds"] == {"band_gap": 0.0, "magnetization": 0.0}
    assert re.search(r"batch size 512 capped to \d+", out)  # a small folder: said so
    again = run(db.url, "reproduce", "cgnn", str(folder), "--epochs", "2").output
    assert again.count("already registered, not retrained") == 4


def test_setup_paper_needs_one_paper_target(db, sample_dump: Path) -> None:
    run(db.url, "ingest", str(sample_dump))
    r = run(db.url, "train", "--model-tag", "p", "--setup", "paper", "--targets",
            "formation_energy,band_gap", code=1)
    assert "one target per model" in r.output
    r = run(db.url, "train", "--model-tag", "p", "--setup", "paper", "--targets",
            "volume_per_atom", code=1)
    assert "--setup paper trains one of" in r.output
