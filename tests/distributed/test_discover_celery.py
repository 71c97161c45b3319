"""``platform discover`` on Celery workers: tasks fan out over two workers and give the
candidates, predictions and ranking of the same run in-process (PostgreSQL, Redis and
RabbitMQ)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dbutil import create_database
from pipeline_fixture import invoke
from sqlalchemy import text

from matplat.db.session import dispose_engines


def candidates(engine, run: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT formula, parent_id, species_map, probability, formation_energy, "
            "e_above_hull, decomposition FROM candidate_ranking WHERE run = :r "
            "ORDER BY formula, parent_id"), {"r": run})]


def test_discover_on_two_workers_equals_in_process(broker_url, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                   sample_dump: Path, spawn,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import discover_plan

    db = create_database("postgresql", tmp_path / "db")
    try:
        for args in (["db", "upgrade"], ["ingest", str(sample_dump)],
                     ["graphs", "build", "--workers", "1"],
                     ["train", "--model-tag", "v3", "--epochs", "2", "--batch-size", "32"],
                     ["hull", "build"]):
            invoke(db.url, *args)
        invoke(db.url, "discover", "--model-tag", "v3", "--elements", "Mg,O", "--name", "here")
        w = spawn(db.url, broker_url)
        w.start("a")
        w.start("b")
        monkeypatch.setattr(discover_plan, "TASK_CANDIDATES", 1)  # one message per candidate
        r = invoke(db.url, "--broker", broker_url, "discover", "--model-tag", "v3",
                   "--elements", "Mg,O", "--name", "there")
        assert "stored" in r.output
        with db.engine.connect() as conn:
            job = conn.execute(text("SELECT id, status, runner FROM jobs WHERE kind = 'discover' "
                                    "AND runner = 'celery'")).one()
            tasks = conn.execute(text("SELECT status, worker FROM job_tasks WHERE job_id = :j"),
                                 {"j": job.id}).all()
        assert job.status == "succeeded" and len(tasks) >= 2
        assert all(t.status == "done" and t.worker and not t.worker.startswith("in-process")
                   for t in tasks)
        here, there = candidates(db.engine, "here"), candidates(db.engine, "there")
        assert len(here) == len(there) == len(tasks)
        for a, b in zip(here, there, strict=True):
            assert a[:4] == b[:4] and a[6] == b[6]
            np.testing.assert_allclose(a[4:6], b[4:6], rtol=1e-5, atol=1e-6)
    finally:
        dispose_engines()
        db.drop()
