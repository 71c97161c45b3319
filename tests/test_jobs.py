"""Jobs and their tasks on SQLite, PostgreSQL and MariaDB: run once, record failures, cancel,
close a job exactly once when tasks finish together, and the `platform jobs` commands."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from pipeline_fixture import invoke
from sqlalchemy import text

from matplat.cli import cli
from workers import jobs
from workers.jobs import TaskSpec


@pytest.fixture(autouse=True)
def _probe_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    import jobkind_probe

    monkeypatch.setitem(jobs.KIND_MODULES, "probe", "jobkind_probe")
    jobkind_probe.FINALIZED.clear()


def probe_job(engine, *params: dict) -> int:  # type: ignore[no-untyped-def]
    return jobs.create_job(engine, "probe", {"n": len(params)},
                           [TaskSpec(p, 3) for p in params])


def test_tasks_run_once_and_the_job_is_finalized_once(db) -> None:
    import jobkind_probe

    e = db.engine
    job_id = probe_job(e, {}, {}, {})
    assert jobs.progress(e, job_id).total == 9
    seen: list[int] = []
    job = jobs.run_inprocess(e, job_id, listener=lambda done, info: seen.append(done))
    assert job.status == "succeeded" and job.result == {"tasks": [0, 1, 2]}
    assert job.done == 9 and seen[-1] == 9 and seen == sorted(seen)
    assert jobkind_probe.FINALIZED.count(job_id) == 1
    tasks = jobs.get_tasks(e, job_id)
    assert [t.attempts for t in tasks] == [1, 1, 1] and {t.status for t in tasks} == {"done"}
    # A redelivered message for a finished task does nothing, and finalize is idempotent.
    assert jobs.execute(e, tasks[0].id) == ("skipped", job_id)
    assert jobs.finalize(e, job_id).status == "succeeded"
    assert jobkind_probe.FINALIZED.count(job_id) == 1
    assert [t.attempts for t in jobs.get_tasks(e, job_id)] == [1, 1, 1]


def test_a_failing_task_is_recorded_and_does_not_block_the_rest(db) -> None:
    e = db.engine
    job_id = probe_job(e, {}, {"fail": "structure 42 is poison"}, {})
    job = jobs.run_inprocess(e, job_id)
    tasks = jobs.get_tasks(e, job_id)
    assert [t.status for t in tasks] == ["done", "failed", "done"]
    assert "structure 42 is poison" in tasks[1].error
    assert job.status == "failed"
    assert "1 of 3 tasks failed; task 1" in job.error and "poison" in job.error


def test_cancel_drops_queued_tasks_and_stops_running_ones(db) -> None:
    e = db.engine
    job_id = probe_job(e, {}, {}, {})
    first = jobs.get_tasks(e, job_id)[0].id
    assert jobs.execute(e, first)[0] == "done"
    # A task that is running when the job is cancelled stops at its next progress report.
    second = jobs.get_tasks(e, job_id)[1].id
    claimed = jobs.claim(e, second, "w")
    assert claimed is not None
    jobs.cancel(e, job_id)
    ctx = jobs.TaskContext(e, job_id, second)
    with pytest.raises(jobs.JobCancelled):
        ctx.progress(1, force=True)
    assert jobs.claim(e, jobs.get_tasks(e, job_id)[2].id, "w") is None
    statuses = [t.status for t in jobs.get_tasks(e, job_id)]
    assert statuses == ["done", "running", "cancelled"]
    assert jobs.get_job(e, job_id).status == "cancelled"
    with pytest.raises(Exception, match="already cancelled"):
        jobs.cancel(e, job_id)


def test_tasks_finishing_together_close_the_job_exactly_once(db) -> None:
    e = db.engine
    for _ in range(4):
        job_id = probe_job(e, {}, {})
        ids = [t.id for t in jobs.get_tasks(e, job_id)]
        for tid in ids:
            jobs.claim(e, tid, "w")
        barrier = threading.Barrier(2)
        closed: list[bool] = []

        def finish(tid: int, barrier: threading.Barrier = barrier,
                   closed: list[bool] = closed) -> None:
            barrier.wait()
            closed.append(jobs.finish(e, tid, jobs.Outcome(done=3)))

        threads = [threading.Thread(target=finish, args=(tid,)) for tid in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(closed) == [False, True]
        assert jobs.get_job(e, job_id).status == "finalizing"


def test_commands_run_as_jobs_and_jobs_commands_show_them(db, sample_dump: Path,
                                                          tmp_path: Path) -> None:
    url = db.url
    invoke(url, "ingest", str(sample_dump))
    invoke(url, "graphs", "build", "--workers", "1", "--chunk-size", "40")
    invoke(url, "train", "--model-tag", "t1", "--epochs", "1", "--batch-size", "32",
           "--slice-seconds", "0")
    listed = json.loads(invoke(url, "jobs", "list", "--format", "json").output)
    assert [(j["kind"], j["status"], j["runner"]) for j in listed] == [
        ("train", "succeeded", "in-process"), ("graphs", "succeeded", "in-process")]
    graphs_job = listed[1]
    with db.engine.connect() as conn:
        structures = conn.execute(text("SELECT count(*) FROM structures")).scalar_one()
    assert graphs_job["total"] == structures and graphs_job["done"] == structures
    assert graphs_job["tasks"] == f"{-(-structures // 40)}/{-(-structures // 40)}"
    shown = invoke(url, "jobs", "show", str(graphs_job["id"])).output
    assert "graphs, succeeded" in shown and "done" in shown

    # The final step of a training job is idempotent: a repeated one registers nothing new.
    e = db.engine
    with e.connect() as conn:  # member weights and checkpoints went into the registry
        assert conn.execute(text(
            "SELECT count(*) FROM job_tasks WHERE state IS NOT NULL")).scalar_one() == 0
    train_id = listed[0]["id"]
    with e.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'finalizing' WHERE id = :j"), {"j": train_id})
    again = jobs.finalize(e, train_id)
    assert again.status == "succeeded" and again.result == {"tag": "t1",
                                                            "already_registered": True}
    with e.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM model_versions")).scalar_one() == 1


@pytest.mark.parametrize("args, code, message", [
    (["graphs", "build", "--no-wait"], 2, "--no-wait needs a broker"),
    (["--broker", "redis://127.0.0.1:9/0", "graphs", "build"], 1, "cannot reach the broker"),
    (["--broker", "amqp://guest:guest@127.0.0.1:9//", "predict", "--model-tag", "x"], 1,
     "cannot reach the broker"),
    (["worker"], 2, "a worker needs a broker"),
    (["jobs", "show", "999"], 1, "no job 999"),
    (["jobs", "cancel", "999"], 1, "no job 999"),
    (["jobs", "resume", "1"], 1, "no job 1"),  # in-process jobs resume without a broker
])
def test_job_command_errors(db, args: list[str], code: int, message: str) -> None:
    r = CliRunner().invoke(cli, ["--db", db.url, *args])
    assert r.exit_code == code, r.output
    assert message in r.output
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
