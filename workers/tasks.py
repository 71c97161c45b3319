"""Celery tasks: thin wrappers around ``workers.jobs`` (the same code runs in-process).

``matplat.run_task`` runs one job task (an id range, an ensemble member's training slice);
``matplat.finalize_job`` runs a job's last step. Both take ids only, re-read everything from
the database, and retry transient database errors with exponential backoff. A task that keeps
failing is recorded as failed on its row, so its job ends and says why.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Task, shared_task
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger("matplat.worker")

TRANSIENT = (OperationalError, InterfaceError)


def worker_engine() -> Engine:
    from matplat.config import load_settings
    from matplat.db.session import get_engine

    return get_engine(load_settings().database_url)


def worker_device() -> str:
    from matplat.config import load_settings

    return load_settings().device


class PlatformTask(Task):  # type: ignore[misc]
    """Records a task that failed for good on its job_tasks row (and closes the job if it was
    the last open one), so no job waits forever on a task that will never succeed."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        if self.name != "matplat.run_task" or not args:
            return
        from workers import jobs

        try:
            engine = worker_engine()
            if jobs.finish(engine, int(args[0]), error=f"gave up after retries: {exc!r}"):
                send_finalize(self.app, engine, int(args[1]))
        except Exception:  # noqa: BLE001 - the database may be the thing that is down
            log.exception("could not record the failure of job task %s", args[0])


def send_finalize(app: Any, engine: Engine, job_id: int) -> None:
    from workers import jobs

    queue = jobs.get_job(engine, job_id).queue or "cpu"
    app.send_task("matplat.finalize_job", args=[job_id], queue=queue, routing_key=queue)


@shared_task(name="matplat.run_task", bind=True, base=PlatformTask, autoretry_for=TRANSIENT,
             retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=10)
def run_task(self: Task, task_id: int, job_id: int) -> str:
    from workers import jobs

    engine = worker_engine()
    worker = f"{self.request.hostname}:{os.getpid()}"
    what, job_id = jobs.execute(engine, task_id, worker=worker, device=worker_device())
    log.info("job %s task %s: %s", job_id, task_id, what)
    if what == "requeue":  # a training member's next slice, from its saved checkpoint
        queue = jobs.get_job(engine, job_id).queue or "gpu"
        self.app.send_task("matplat.run_task", args=[task_id, job_id], queue=queue,
                           routing_key=queue)
    elif what.endswith("+finalize"):
        send_finalize(self.app, engine, job_id)
    return what


@shared_task(name="matplat.finalize_job", bind=True, base=PlatformTask, autoretry_for=TRANSIENT,
             retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=10)
def finalize_job(self: Task, job_id: int) -> str:
    from workers import jobs

    job = jobs.finalize(worker_engine(), job_id, device=worker_device())
    log.info("job %s: %s", job_id, job.status)
    return job.status


def enqueue(settings: Any, engine: Engine, job_id: int, *, check: bool = True) -> int:
    """Send every open task of a job to its queue; returns how many were sent.

    Checks the broker first, so a wrong URL or a stopped broker is one clear error.
    """
    from matplat.errors import ConfigError
    from workers import jobs
    from workers.app import create_app

    app = create_app(settings)
    if check:
        check_broker(app)
    job = jobs.get_job(engine, job_id)
    queue = job.queue or "cpu"
    ids = jobs.open_task_ids(engine, job_id)
    try:
        with app.producer_or_acquire() as producer:
            for tid in ids:
                app.send_task("matplat.run_task", args=[tid, job_id], queue=queue,
                              routing_key=queue, producer=producer)
            if job.status == "finalizing":
                app.send_task("matplat.finalize_job", args=[job_id], queue=queue,
                              routing_key=queue, producer=producer)
    except Exception as e:  # noqa: BLE001 - kombu raises many transport errors
        raise ConfigError(f"could not send job {job_id} to the broker ({e}); the job is "
                          f"saved: `platform jobs resume {job_id}` sends it again") from e
    return len(ids)


def check_broker(app: Any) -> None:
    from matplat.errors import ConfigError

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2, interval_start=0.2, interval_step=0.5,
                                   timeout=5)
    except Exception as e:  # noqa: BLE001
        shown = app.connection_for_write().as_uri()
        raise ConfigError(f"cannot reach the broker {shown}: {e}; check PLATFORM_BROKER_URL "
                          "(or --broker) and that the broker is running") from e
