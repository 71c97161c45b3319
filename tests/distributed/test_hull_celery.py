"""`platform hull build` on Celery workers (Redis and RabbitMQ): the chemical systems fan
out as tasks over two worker processes and the hulls equal pymatgen's, as in-process."""

from __future__ import annotations

import pytest
from dbutil import create_database
from pipeline_fixture import invoke
from sqlalchemy import text
from stability_data import hull_rows, insert_rows, pymatgen_reference, random_entries

from matplat.db.session import dispose_engines


def test_hull_build_on_workers(broker_url, spawn, tmp_path) -> None:
    db = create_database("postgresql", tmp_path)
    try:
        db.upgrade()
        _, rows = random_entries(6, n=160)
        insert_rows(db.engine, rows)
        w = spawn(db.url, broker_url)
        w.start("a", queues="cpu")
        w.start("b", queues="cpu")
        r = invoke(db.url, "--broker", broker_url, "hull", "build", "--chunk-size", "30")
        assert "chemical systems recomputed" in r.output, r.output
        got = hull_rows(db.engine)
        ref = pymatgen_reference(rows)
        assert set(got) == set(ref)
        for mid, (ehull, _) in ref.items():
            assert got[mid][0] == pytest.approx(ehull, abs=1e-6)
        with db.engine.connect() as conn:
            tasks = conn.execute(text(
                "SELECT t.status, t.worker, j.runner FROM job_tasks t "
                "JOIN jobs j ON j.id = t.job_id")).all()
        assert len(tasks) > 1 and {t[0] for t in tasks} == {"done"}
        assert {t[2] for t in tasks} == {"celery"}
        assert all(t[1] and not t[1].startswith("in-process") for t in tasks)
        # Nothing changed: the next build plans no job and sends nothing.
        r = invoke(db.url, "--broker", broker_url, "hull", "build")
        assert "nothing to do" in r.output
    finally:
        dispose_engines()
        db.drop()
