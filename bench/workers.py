"""Benchmark: graphs/s and predictions/s through 1 and 2 Celery worker processes, against the
same jobs run in-process, and the overhead per task.

Run:  python bench/workers.py [--entries 20000] [--broker redis://127.0.0.1:6379/14]
                              [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A synthetic OQMD dump of N entries is ingested into a fresh PostgreSQL database. Then, for
each configuration (in-process, 1 worker, 2 workers; every process on one thread):

* graphs: `platform graphs build` of every structure (1,000 per task), timed from submission
  to the end of the job (graphs deleted between runs);
* predict: `platform predict` of every material with a small trained model (20,000 per task;
  predictions deleted between runs);
* overhead per task: the graph build again with 10 structures per task against 1,000, so
  ``(t10 - t1000) / (tasks10 - tasks1000)`` is what one more task costs on that path.

Workers are real `platform worker` processes on the given broker. Scaling efficiency is
(rate with 2 workers) / (2 x rate with 1 worker). The machine has 2 cores, shared with
PostgreSQL, so 2 workers cannot reach 2x; the table says what they reach.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

import torch  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from matplat.config import Settings  # noqa: E402
from matplat.db import migrate  # noqa: E402
from matplat.db.session import get_engine  # noqa: E402
from matplat.ingest.sample import write_sample_dump  # noqa: E402

OUT = ROOT / "bench" / "out"


def run(cmd: list[str], **kw) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(cmd, check=True, **kw)


def platform_cmd(db: str, *args: str, broker: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "matplat", "--db", db, "--device", "cpu"]
    if broker:
        cmd += ["--broker", broker]
    return [*cmd, *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT)])
    return e


class Pool:
    def __init__(self, db: str, broker: str, n: int, logdir: Path) -> None:
        self.procs = []
        for i in range(n):
            log = (logdir / f"bench-worker-{i}.log").open("wb")
            self.procs.append((subprocess.Popen(
                platform_cmd(db, "worker", "--queues", "cpu,gpu", "--concurrency", "1",
                             "--name", f"bench{i}@%h", "--without-gossip", "--without-mingle",
                             "--without-heartbeat", broker=broker),
                env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                logdir / f"bench-worker-{i}.log"))
        for proc, path in self.procs:
            end = time.monotonic() + 120
            while " ready." not in path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > end:
                    raise SystemExit(f"worker did not start:\n{path.read_text()[-2000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        for proc, _ in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.procs:
            proc.wait(timeout=60)


def timed_job(engine, settings: Settings, job_id: int, workers: int) -> float:  # type: ignore[no-untyped-def]
    from workers import jobs
    from workers.tasks import enqueue

    t0 = time.perf_counter()
    if workers == 0:
        job = jobs.run_inprocess(engine, job_id, device="cpu")
    else:
        enqueue(settings, engine, job_id)
        while (job := jobs.get_job(engine, job_id)).status not in ("succeeded", "failed",
                                                                   "cancelled"):
            time.sleep(0.05)
    seconds = time.perf_counter() - t0
    if job.status != "succeeded":
        raise SystemExit(f"job {job_id} ended {job.status}: {job.error}")
    return seconds


def graphs_run(engine, settings, workers: int, chunk: int) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    from workers import jobs
    from workers.graphs import submit_build

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM crystal_graphs"))
    job_id = submit_build(engine, "cgc", chunk_size=chunk,
                          runner="celery" if workers else "in-process")
    seconds = timed_job(engine, settings, job_id, workers)
    return seconds, jobs.get_job(engine, job_id).total, len(jobs.get_tasks(engine, job_id))


def predict_run(engine, settings, workers: int, tag: str) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from workers.predict import submit_predict

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM predictions WHERE model_version_id = "
                          "(SELECT id FROM model_versions WHERE tag = :t)"), {"t": tag})
    plan, job_id = submit_predict(engine, tag=tag, chunk_size=20_000,
                                  runner="celery" if workers else "in-process")
    seconds = timed_job(engine, settings, job_id, workers)
    return seconds, len(plan.todo) * len(plan.targets)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    dump = OUT / f"workers-{args.entries}.sql.gz"
    if not dump.exists():
        print(f"writing {dump} …", flush=True)
        write_sample_dump(dump, args.entries, 5)

    name = f"mp_bench_workers_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
    settings = Settings(database_url=url, broker_url=args.broker, device="cpu")
    results: dict = {"entries": args.entries, "date": datetime.date.today().isoformat(),
                     "load_before": os.getloadavg()}
    try:
        engine = get_engine(url)
        migrate.upgrade(engine)
        run(platform_cmd(url, "ingest", str(dump)), env=env(), stdout=subprocess.DEVNULL)
        with engine.connect() as conn:
            n_struct = conn.execute(text("SELECT count(*) FROM structures")).scalar_one()
        print(f"{n_struct} structures; building graphs and a model once …", flush=True)
        run(platform_cmd(url, "graphs", "build", "--workers", "1"), env=env(),
            stdout=subprocess.DEVNULL)
        run(platform_cmd(url, "train", "--model-tag", "b1", "--epochs", "1"), env=env(),
            stdout=subprocess.DEVNULL)

        rows = []
        for workers in (0, 1, 2):
            pool = Pool(url, args.broker, workers, OUT) if workers else None
            try:
                for _ in range(args.repeat):
                    g_s, g_n, g_tasks = graphs_run(engine, settings, workers, 1000)
                    p_s, p_n = predict_run(engine, settings, workers, "b1")
                    small_s, _, small_tasks = graphs_run(engine, settings, workers, 10)
                    rows.append({"workers": workers, "graphs_s": g_s, "graphs": g_n,
                                 "graphs_per_s": g_n / g_s, "predict_s": p_s,
                                 "predictions": p_n, "predictions_per_s": p_n / p_s,
                                 "overhead_ms_per_task":
                                     1000 * (small_s - g_s) / (small_tasks - g_tasks)})
                    print(rows[-1], flush=True)
            finally:
                if pool:
                    pool.stop()
        results["runs"] = rows
        results["load_after"] = os.getloadavg()
        best = {w: {k: max(r[k] for r in rows if r["workers"] == w)
                    for k in ("graphs_per_s", "predictions_per_s")}
                | {"overhead_ms_per_task": min(r["overhead_ms_per_task"] for r in rows
                                               if r["workers"] == w)}
                for w in (0, 1, 2)}
        results["best"] = best
        (OUT / "workers.json").write_text(json.dumps(results, indent=1))
        print("\n| path | graphs/s | vs in-process | predictions/s | vs in-process | "
              "overhead per task |")
        print("|---|---|---|---|---|---|")
        for w, label in ((0, "in-process"), (1, "1 worker"), (2, "2 workers")):
            b = best[w]
            print(f"| {label} | {b['graphs_per_s']:,.0f} | "
                  f"{b['graphs_per_s'] / best[0]['graphs_per_s']:.2f}× | "
                  f"{b['predictions_per_s']:,.0f} | "
                  f"{b['predictions_per_s'] / best[0]['predictions_per_s']:.2f}× | "
                  f"{b['overhead_ms_per_task']:.1f} ms |")
        for key in ("graphs_per_s", "predictions_per_s"):
            eff = best[2][key] / (2 * best[1][key])
            print(f"scaling efficiency 1 → 2 workers, {key}: {eff:.0%}")
        print(f"load average before {results['load_before']}, after {results['load_after']}")
    finally:
        from matplat.db.session import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


if __name__ == "__main__":
    main()
