"""Real `platform worker` processes on Redis and on RabbitMQ against PostgreSQL.

Every test compares against the same work done in-process (the no-broker path): two workers
give byte-identical graphs, a worker killed with SIGKILL in the middle of a task or a broker
that goes away for a while still ends with exactly that result, and structures that cannot be
built are recorded with their reason without holding up the rest.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from dbutil import TestDatabase, create_database
from pipeline_fixture import invoke
from sqlalchemy import Engine, text
from workerutil import TcpProxy

from matplat.db.session import dispose_engines

GRAPH_COLUMNS = ("structure_id, status, natoms, nedges, n_isolated, atomic_numbers, edge_src, "
                 "edge_dst, edge_image, edge_dist, error")
BIG_ATOMS = 280  # a large cell: its graph takes seconds, long enough to kill a worker inside


def graph_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT {GRAPH_COLUMNS} FROM crystal_graphs ORDER BY structure_id")).all()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]


def poison(engine: Engine) -> dict[str, int]:
    """Three awkward structures: a corrupt coordinates blob, an element the CGNN cannot
    encode (At), and a 280-atom cell that takes seconds to build."""
    with engine.begin() as conn:
        ids = [int(r[0]) for r in conn.execute(text("SELECT id FROM structures ORDER BY id"))]
        corrupt, astatine, big = ids[3], ids[7], ids[15]
        conn.execute(text("UPDATE structures SET frac_coords = :b WHERE id = :i"),
                     {"b": b"\x00" * 10, "i": corrupt})
        n = len(conn.execute(text("SELECT atomic_numbers FROM structures WHERE id = :i"),
                             {"i": astatine}).scalar_one()) // 2
        conn.execute(text("UPDATE structures SET atomic_numbers = :z WHERE id = :i"),
                     {"z": np.full(n, 85, "<i2").tobytes(), "i": astatine})
        rng = np.random.default_rng(0)
        conn.execute(text("UPDATE structures SET lattice = :l, frac_coords = :f, "
                          "atomic_numbers = :z WHERE id = :i"),
                     {"l": (np.eye(3) * 13.5).astype("<f8").tobytes(),
                      "f": rng.random((BIG_ATOMS, 3)).astype("<f8").tobytes(),
                      "z": np.full(BIG_ATOMS, 14, "<i2").tobytes(), "i": big})
    return {"corrupt": corrupt, "astatine": astatine, "big": big}


def ingested(kind: str, tmp: Path, dump: Path) -> tuple[TestDatabase, dict[str, int]]:
    db = create_database(kind, tmp)
    invoke(db.url, "db", "upgrade")
    invoke(db.url, "ingest", str(dump))
    return db, poison(db.engine)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, sample_dump: Path) -> list[tuple]:
    """Graphs of the poisoned sample built in-process (SQLite, no broker)."""
    db, _ = ingested("sqlite", tmp_path_factory.mktemp("reference"), sample_dump)
    invoke(db.url, "graphs", "build", "--workers", "1", "--chunk-size", "10")
    rows = graph_rows(db.engine)
    dispose_engines()
    return rows


@pytest.fixture
def pg(tmp_path: Path, sample_dump: Path):  # type: ignore[no-untyped-def]
    db, special = ingested("postgresql", tmp_path / "db", sample_dump)
    try:
        yield db, special
    finally:
        dispose_engines()
        db.drop()


def job_id_of(output: str) -> int:
    m = re.search(r"job (\d+) \(", output)
    assert m, output
    return int(m.group(1))


def wait_for(predicate, timeout: float, what: str,  # type: ignore[no-untyped-def]
             poll: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def job_status(engine: Engine, job_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT status FROM jobs WHERE id = :j"),
                                {"j": job_id}).scalar_one())


def show(url: str, job_id: int) -> dict:
    return json.loads(invoke(url, "jobs", "show", str(job_id), "--format", "json").output)


def test_two_workers_give_the_in_process_result(broker_url, pg, reference, tmp_path,
                                                spawn) -> None:
    db, special = pg
    w = spawn(db.url, broker_url)
    w.start("a")
    w.start("b")

    r = invoke(db.url, "--broker", broker_url, "graphs", "build", "--chunk-size", "10")
    assert re.search(r"built \d+, failed 2 ", r.output), r.output
    assert graph_rows(db.engine) == reference  # byte for byte, failures and reasons included
    info = show(db.url, 1)
    assert info["status"] == "succeeded" and info["runner"] == "celery"
    assert all(t["status"] == "done" for t in info["tasks"])
    assert len({t["worker"].split(":")[0] for t in info["tasks"]}) == 2  # both workers took work
    with db.engine.connect() as conn:
        errors = dict(conn.execute(text(
            "SELECT structure_id, error FROM crystal_graphs WHERE status = 'failed'")).all())
    assert set(errors) == {special["corrupt"], special["astatine"]}
    assert "corrupt structure row" in errors[special["corrupt"]]

    # Predictions on the workers equal those of the same model run in-process.
    invoke(db.url, "train", "--model-tag", "v3", "--epochs", "2", "--batch-size", "32")
    invoke(db.url, "--broker", broker_url, "predict", "--model-tag", "v3", "--chunk-size", "25")
    invoke(db.url, "models", "export", "v3", str(tmp_path / "v3.zip"))
    invoke(db.url, "models", "import", str(tmp_path / "v3.zip"), "--tag", "v3local")
    invoke(db.url, "predict", "--model-tag", "v3local")
    with db.engine.connect() as conn:
        pairs = conn.execute(text(
            "SELECT a.predicted, b.predicted FROM prediction_results a JOIN prediction_results b "
            "ON a.material_id = b.material_id AND a.property = b.property "
            "WHERE a.model_tag = 'v3' AND b.model_tag = 'v3local'")).all()
        ok = conn.execute(text(
            "SELECT count(*) FROM crystal_graphs WHERE status = 'ok'")).scalar_one()
    assert len(pairs) == ok * 4
    a, b = np.array(pairs, dtype=float).T
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # Training on the workers, two members, each in three one-epoch messages (checkpoints).
    r = invoke(db.url, "--broker", broker_url, "train", "--model-tag", "w1", "--epochs", "3",
               "--batch-size", "32", "--ensemble", "2", "--slice-seconds", "0")
    assert "registered model version w1" in r.output
    train_job = show(db.url, max(j["id"] for j in json.loads(
        invoke(db.url, "jobs", "list", "--format", "json").output)))
    assert train_job["kind"] == "train" and train_job["status"] == "succeeded"
    assert [t["attempts"] for t in train_job["tasks"]] == [3, 3]
    model = json.loads(invoke(db.url, "models", "show", "w1", "--format", "json").output)
    assert [len(run["history"]) for run in model["training_runs"]] == [3, 3]


def test_a_worker_killed_mid_task_loses_nothing(broker_url, pg, reference, spawn) -> None:
    db, special = pg
    w = spawn(db.url, broker_url)
    w.start("a")
    r = invoke(db.url, "--broker", broker_url, "graphs", "build", "--chunk-size", "10",
               "--no-wait")
    job = job_id_of(r.output)
    big = special["big"]

    def big_task_running() -> bool:
        with db.engine.connect() as conn:
            return _running_range(conn, job, big)

    wait_for(big_task_running, 120, "worker a to start the task holding the large structure")
    time.sleep(0.5)
    w.kill("a")  # SIGKILL to the whole worker, in the middle of that task
    with db.engine.connect() as conn:
        assert _running_range(conn, job, big)  # it really died mid-task
    assert job_status(db.engine, job) == "running"

    w.start("b")
    wait_for(lambda: job_status(db.engine, job) not in ("queued", "running", "finalizing"),
             180, "the job to end on worker b")
    assert job_status(db.engine, job) == "succeeded"
    assert graph_rows(db.engine) == reference  # no duplicate, nothing missing
    info = show(db.url, job)
    big_task = next(t for t in info["tasks"] if t["params"]["lo"] <= big <= t["params"]["hi"])
    assert big_task["attempts"] == 2 and big_task["worker"].startswith("b@")


def _running_range(conn, job: int, sid: int) -> bool:  # type: ignore[no-untyped-def]
    rows = conn.execute(text(
        "SELECT params FROM job_tasks WHERE job_id = :j AND status = 'running'"), {"j": job})
    return any(json.loads(p)["lo"] <= sid <= json.loads(p)["hi"] for (p,) in rows)


def test_work_resumes_after_the_broker_goes_away(broker_url, pg, reference, spawn,
                                                 proxy_factory) -> None:
    db, _special = pg
    proxy = TcpProxy(broker_url)
    proxy_factory.append(proxy)
    proxy.up()
    w = spawn(db.url, proxy.url(broker_url))
    w.start("a")
    # one structure per task: on an idle machine 3-structure tasks all finished between two
    # polls, before the broker could be taken away
    r = invoke(db.url, "--broker", broker_url, "graphs", "build", "--chunk-size", "1",
               "--no-wait")
    job = job_id_of(r.output)

    def tasks_done() -> int:
        with db.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM job_tasks WHERE job_id = :j AND status = 'done'"),
                {"j": job}).scalar_one())

    wait_for(lambda: tasks_done() >= 1, 120, "the first task", poll=0.02)
    proxy.down()  # every worker connection to the broker drops; new ones are refused
    time.sleep(4)
    stalled = tasks_done()
    total = len(show(db.url, job)["tasks"])
    assert stalled < total, f"all {total} tasks were done before the broker went away"
    assert job_status(db.engine, job) == "running"
    proxy.up()
    wait_for(lambda: job_status(db.engine, job) not in ("queued", "running", "finalizing"),
             180, "the job to end after the broker came back")
    assert job_status(db.engine, job) == "succeeded"
    assert graph_rows(db.engine) == reference
    assert "lost" in w.log("a").lower() or "reconnect" in w.log("a").lower()


@pytest.mark.parametrize("broker_url", ["redis"], indirect=True)  # same for both brokers
def test_workers_retry_when_the_database_goes_away(broker_url, pg, reference, spawn,
                                                   proxy_factory) -> None:
    """The workers reach PostgreSQL through a relay that drops every connection for a few
    seconds mid-job: their tasks fail with connection errors, are retried with backoff, and
    the job ends with exactly the in-process result."""
    db, _special = pg
    proxy = TcpProxy(db.url.replace("postgresql+psycopg", "postgresql"))
    proxy_factory.append(proxy)
    proxy.up()
    relayed = proxy.url(db.url)
    w = spawn(relayed, broker_url)
    w.start("a")
    r = invoke(db.url, "--broker", broker_url, "graphs", "build", "--chunk-size", "3",
               "--no-wait")
    job = job_id_of(r.output)
    wait_for(lambda: show(db.url, job)["done"] >= 3, 120, "the first tasks")
    proxy.down()
    time.sleep(3)
    proxy.up()
    wait_for(lambda: job_status(db.engine, job) not in ("queued", "running", "finalizing"),
             180, "the job to end after the database came back")
    assert job_status(db.engine, job) == "succeeded"
    assert graph_rows(db.engine) == reference
    assert "Retry in" in w.log("a")  # Celery's autoretry, with backoff, did the work
