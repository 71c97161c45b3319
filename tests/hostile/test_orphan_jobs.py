"""Jobs whose runner is gone (issue 11, item 7), on SQLite, PostgreSQL and MariaDB: a process
running an in-process job is killed mid-task; `platform jobs list/show` mark the job
interrupted instead of showing it running forever, and `platform jobs resume` finishes it in
its own process without a broker. Jobs with a live runner, recent reports from another host,
or Celery workers are left alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from hostile import slowkind
from hostile.inputs import one_error_line
from matplat.cli import cli
from workers import jobs
from workers.jobs import TaskSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _slow_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(jobs.KIND_MODULES, "slow", "hostile.slowkind")
    slowkind.FINALIZED.clear()


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", url, *args])


def statuses(db, job_id: int) -> tuple[str, str | None, list[str]]:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        status, error = conn.execute(text("SELECT status, error FROM jobs WHERE id = :j"),
                                     {"j": job_id}).one()
        tasks = [r[0] for r in conn.execute(text(
            "SELECT status FROM job_tasks WHERE job_id = :j ORDER BY seq"), {"j": job_id})]
    return status, error, tasks


RUNNER = """
import sys
from matplat.db.session import get_engine
from workers import jobs
jobs.KIND_MODULES["slow"] = "hostile.slowkind"
jobs.run_inprocess(get_engine(sys.argv[1]), int(sys.argv[2]))
"""


def test_killed_runner_is_marked_and_resume_finishes_without_broker(db) -> None:
    job_id = jobs.create_job(db.engine, "slow", {}, [TaskSpec({"seconds": 0.02}, 5),
                                                     TaskSpec({"seconds": 1.0}, 60),
                                                     TaskSpec({"seconds": 0.02}, 5)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "platform"), str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, db.url, str(job_id)], env=env)
    try:
        deadline = time.monotonic() + 60
        while statuses(db, job_id)[2][:2] != ["done", "running"]:
            assert proc.poll() is None and time.monotonic() < deadline, "runner did not start"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert statuses(db, job_id)[0] == "running"  # what the dead process left behind

    r = run(db.url, "jobs", "list")
    assert r.exit_code == 0, r.output
    status, error, tasks = statuses(db, job_id)
    assert status == "failed" and error.startswith("interrupted:"), error
    assert f"in-process:{socket.gethostname()}:{proc.pid}" in error
    assert f"platform jobs resume {job_id}" in error
    assert tasks == ["done", "queued", "queued"]
    shown = run(db.url, "jobs", "show", str(job_id)).output
    assert "failed" in shown and "interrupted" in shown

    with db.engine.begin() as conn:  # no need to wait a minute for the slow task
        conn.execute(text("UPDATE job_tasks SET params = :p WHERE job_id = :j AND seq = 1"),
                     {"p": '{"seconds": 0.0}', "j": job_id})
    r = run(db.url, "jobs", "resume", str(job_id))
    assert r.exit_code == 0, r.output
    assert f"job {job_id}: succeeded" in r.output
    assert statuses(db, job_id) == ("succeeded", None, ["done", "done", "done"])
    assert [job_id] == slowkind.FINALIZED
    r = run(db.url, "jobs", "resume", str(job_id))
    assert r.exit_code == 1 and "nothing to resume" in one_error_line(r.output)


def _claimed_job(db, worker: str, age: timedelta, runner: str = "in-process") -> int:  # type: ignore[no-untyped-def]
    job_id = jobs.create_job(db.engine, "slow", {}, [TaskSpec({}, 3)], runner=runner)
    stamp = datetime.now(timezone.utc) - age
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'running', created_at = :t, updated_at = :t "
                          "WHERE id = :j"), {"t": stamp, "j": job_id})
        conn.execute(text("UPDATE job_tasks SET status = 'running', worker = :w, "
                          "updated_at = :t WHERE job_id = :j"),
                     {"w": worker, "t": stamp, "j": job_id})
    return job_id


def test_live_recent_and_celery_jobs_are_left_alone_stale_ones_marked(
        db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_JOB_STALE_SECONDS", "600")
    here = f"in-process:{socket.gethostname()}:{os.getpid()}"
    live = _claimed_job(db, here, timedelta(hours=5))  # alive: old reports do not matter
    recent = _claimed_job(db, "in-process:elsewhere:123", timedelta(seconds=30))
    stale = _claimed_job(db, "in-process:elsewhere:123", timedelta(hours=2))
    celery = _claimed_job(db, "celery@elsewhere", timedelta(hours=5), runner="celery")
    r = run(db.url, "jobs", "list", "--format", "json")
    assert r.exit_code == 0, r.output
    assert statuses(db, live)[0] == "running"
    assert statuses(db, recent)[0] == "running"
    assert statuses(db, celery)[0] == "running"
    status, error, tasks = statuses(db, stale)
    assert status == "failed" and "in-process:elsewhere:123 has not reported for" in error
    assert tasks == ["queued"]
    r = run(db.url, "jobs", "resume", str(live))
    assert r.exit_code == 1
    assert "running in" in one_error_line(r.output) and here in r.output
    assert statuses(db, live)[0] == "running"
