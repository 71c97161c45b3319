"""Jobs: long commands split into tasks, run in-process or by Celery workers, tracked in SQL.

A job (``graphs``, ``predict``, ``train``) is planned by the command that submits it: one row
in ``jobs`` and one row per task in ``job_tasks`` (an id range of structures or materials, an
ensemble member). Whoever runs a task, this process or a worker on another machine, goes
through the same four steps, all in the platform's database:

* :func:`claim` marks the task running (and counts the attempt), unless it is already finished
  or its job was cancelled, so a redelivered message does no work twice;
* the kind's ``run`` does the work; its writes are idempotent (insert-if-absent, skip what is
  done), so a worker killed mid-task loses nothing when the message is delivered again;
* :func:`finish` records the outcome under a lock on the job row; the task that finishes the
  job's last open task moves the job to ``finalizing`` and its runner calls :func:`finalize`;
* :func:`finalize` runs the kind's last step (refresh the leaderboard, register a model) once
  and closes the job as ``succeeded`` or ``failed``.

Progress is read from ``job_tasks`` (``platform jobs show``, the CLI's progress bar). Nothing
here imports Celery; ``workers.tasks`` wraps :func:`execute` and :func:`finalize` in tasks.
"""

from __future__ import annotations

import importlib
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, and_, func, insert, select, update

from matplat.db.models.jobs import JOB_ACTIVE, TASK_FINAL, Job, JobTask
from matplat.errors import NotFoundError, PlatformError

JOBS = Job.__table__
TASKS = JobTask.__table__

#: Kind name -> module defining ``KIND`` (imported on first use: graphs workers need no torch).
KIND_MODULES = {
    "discover": "workers.discover",
    "graphs": "workers.graphs",
    "hull": "workers.hull",
    "predict": "workers.predict",
    "train": "workers.training",
}


class JobCancelled(PlatformError):
    """The job was cancelled while this task ran; the task stops at a safe point."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def worker_name() -> str:
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class TaskSpec:
    """A task to create: its parameters (JSON) and its size in the job's units."""

    params: dict[str, Any]
    total: int


@dataclass
class Outcome:
    """What a task's ``run`` returns.

    ``requeue``: the task stopped at its time budget with ``state`` (a checkpoint) saved and
    must be run again to continue; otherwise it is finished with ``done``/``failed`` units.
    """

    done: int
    failed: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    state: bytes | None = None
    requeue: bool = False


@dataclass
class JobView:
    id: int
    kind: str
    status: str
    params: dict[str, Any]
    total: int
    done: int
    failed: int
    error: str | None
    runner: str
    queue: str | None
    result: dict[str, Any] | None
    created_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None

    @property
    def seconds(self) -> float:
        """Wall time from submission to the end (0 while the job is open)."""
        if self.finished_at is None or self.created_at is None:
            return 0.0
        return (self.finished_at - self.created_at).total_seconds()


@dataclass
class TaskView:
    id: int
    job_id: int
    seq: int
    status: str
    params: dict[str, Any]
    total: int
    done: int
    failed: int
    attempts: int
    worker: str | None
    error: str | None
    result: dict[str, Any] | None
    state: bytes | None = None


class Kind(Protocol):
    """What a job kind provides (each ``workers`` step module defines one as ``KIND``)."""

    name: str
    queue: str

    def run(self, engine: Engine, job: JobView, task: TaskView, ctx: TaskContext) -> Outcome: ...

    def finalize(self, engine: Engine, job: JobView, tasks: list[TaskView],
                 device: str = "auto") -> dict[str, Any]: ...


def get_kind(name: str) -> Kind:
    if name not in KIND_MODULES:
        raise NotFoundError(f"unknown job kind {name!r}: known kinds are {', '.join(KIND_MODULES)}")
    return importlib.import_module(KIND_MODULES[name]).KIND  # type: ignore[no-any-return]


def _job_view(row: Any) -> JobView:
    m = row._mapping
    return JobView(
        id=int(m["id"]), kind=m["kind"], status=m["status"], params=m["params"] or {},
        total=int(m["total"]), done=int(m["done"]), failed=int(m["failed"]), error=m["error"],
        runner=m["runner"], queue=m["queue"], result=m["result"], created_at=m["created_at"],
        updated_at=m["updated_at"], finished_at=m["finished_at"])


def _task_view(row: Any, with_state: bool = False) -> TaskView:
    m = row._mapping
    return TaskView(
        id=int(m["id"]), job_id=int(m["job_id"]), seq=int(m["seq"]), status=m["status"],
        params=m["params"] or {}, total=int(m["total"]), done=int(m["done"]),
        failed=int(m["failed"]), attempts=int(m["attempts"]), worker=m["worker"],
        error=m["error"], result=m["result"], state=m.get("state") if with_state else None)


_TASK_COLUMNS = [c for c in TASKS.c if c.name != "state"]


# ---------------------------------------------------------------------------------------------
# Creating and reading jobs


def create_job(engine: Engine, kind: str, params: dict[str, Any], tasks: Sequence[TaskSpec],
               *, runner: str = "in-process", queue: str | None = None) -> int:
    """Insert a job and its tasks in one transaction; returns the job id."""
    stamp = now()
    with engine.begin() as conn:
        job_id = conn.execute(insert(JOBS).values(
            kind=kind, status="queued", params=params, total=int(sum(t.total for t in tasks)),
            done=0, failed=0, runner=runner, queue=queue, created_at=stamp, updated_at=stamp,
        )).inserted_primary_key[0]
        if tasks:
            conn.execute(insert(TASKS), [
                {"job_id": job_id, "seq": i, "status": "queued", "params": t.params,
                 "total": int(t.total), "done": 0, "failed": 0, "attempts": 0,
                 "updated_at": stamp}
                for i, t in enumerate(tasks)])
    return int(job_id)


def get_job(engine: Engine, job_id: int) -> JobView:
    with engine.connect() as conn:
        row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
    if row is None:
        raise NotFoundError(f"no job {job_id}: see `platform jobs list`")
    return _job_view(row)


def get_tasks(engine: Engine, job_id: int, *, with_state: bool = False) -> list[TaskView]:
    """A job's tasks in order (``with_state``: also their checkpoint blobs, which can be large)."""
    cols = list(TASKS.c) if with_state else _TASK_COLUMNS
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(TASKS.c.job_id == job_id).order_by(TASKS.c.seq))
        return [_task_view(r, with_state) for r in rows]


def list_jobs(engine: Engine, limit: int = 20, status: str | None = None) -> list[JobView]:
    stmt = select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(JOBS.c.status == status)
    with engine.connect() as conn:
        return [_job_view(r) for r in conn.execute(stmt)]


@dataclass
class Progress:
    status: str
    total: int
    done: int
    failed: int
    tasks: int
    tasks_done: int
    tasks_failed: int
    running: int


def progress(engine: Engine, job_id: int) -> Progress:
    """Units done (live, from the task rows) and task counts of a job."""
    with engine.connect() as conn:
        status = conn.execute(select(JOBS.c.status).where(JOBS.c.id == job_id)).scalar()
        if status is None:
            raise NotFoundError(f"no job {job_id}: see `platform jobs list`")
        counts = {s: (int(n), int(t or 0), int(d or 0), int(f or 0)) for s, n, t, d, f in conn.execute(
            select(TASKS.c.status, func.count(), func.sum(TASKS.c.total), func.sum(TASKS.c.done),
                   func.sum(TASKS.c.failed)).where(TASKS.c.job_id == job_id)
            .group_by(TASKS.c.status))}
    total = sum(v[1] for v in counts.values())
    # Finished tasks count whole (some of their range may have been done by another job);
    # open ones by the units they reported.
    done = sum(v[1] if s in TASK_FINAL else v[2] + v[3] for s, v in counts.items())
    return Progress(
        status=status, total=total, done=min(done, total),
        failed=sum(v[3] for v in counts.values()), tasks=sum(v[0] for v in counts.values()),
        tasks_done=counts.get("done", (0,))[0], tasks_failed=counts.get("failed", (0,))[0],
        running=counts.get("running", (0,))[0])


def open_task_ids(engine: Engine, job_id: int) -> list[int]:
    """Tasks not finished yet (queued or running), in order: what a resume enqueues again."""
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(
            select(TASKS.c.id).where(TASKS.c.job_id == job_id, TASKS.c.status.notin_(TASK_FINAL))
            .order_by(TASKS.c.seq))]


# ---------------------------------------------------------------------------------------------
# Running tasks


def claim(engine: Engine, task_id: int, worker: str) -> tuple[JobView, TaskView] | None:
    """Mark a task running for ``worker``; ``None`` when there is nothing to do (finished
    already, a duplicate delivery, or the job was cancelled: the task is marked cancelled)."""
    stamp = now()
    with engine.begin() as conn:
        task = conn.execute(select(TASKS).where(TASKS.c.id == task_id)).first()
        if task is None:
            raise NotFoundError(f"no job task {task_id} in this database: is the worker "
                                "connected to the database the job was submitted to?")
        job = _job_view(conn.execute(select(JOBS).where(JOBS.c.id == task.job_id)).one())
        if task.status in TASK_FINAL:
            return None
        if job.status == "cancelled":
            conn.execute(update(TASKS).where(TASKS.c.id == task_id, TASKS.c.status.notin_(
                TASK_FINAL)).values(status="cancelled", finished_at=stamp, updated_at=stamp))
            return None
        conn.execute(update(TASKS).where(TASKS.c.id == task_id).values(
            status="running", attempts=TASKS.c.attempts + 1, worker=worker[:255],
            started_at=func.coalesce(TASKS.c.started_at, stamp), updated_at=stamp))
        if job.status == "queued":
            conn.execute(update(JOBS).where(JOBS.c.id == job.id, JOBS.c.status == "queued")
                         .values(status="running", updated_at=stamp))
            job.status = "running"
        row = conn.execute(select(TASKS).where(TASKS.c.id == task_id)).one()
    return job, _task_view(row, with_state=True)


class TaskContext:
    """Given to a kind's ``run``: progress reports (throttled) that also notice cancellation."""

    def __init__(self, engine: Engine, job_id: int, task_id: int, *, interval: float = 1.0,
                 pool: Any = None, device: str = "auto") -> None:
        self.engine = engine
        self.job_id = job_id
        self.task_id = task_id
        self.interval = interval
        self.pool = pool
        self.device = device
        self._last = 0.0
        self.listeners: list[Callable[[int, dict[str, Any] | None], None]] = []

    def progress(self, done: int, failed: int = 0, *, force: bool = False,
                 info: dict[str, Any] | None = None) -> None:
        for fn in self.listeners:
            fn(done, info)
        t = time.monotonic()
        if not force and t - self._last < self.interval:
            return
        self._last = t
        with self.engine.begin() as conn:
            conn.execute(update(TASKS).where(TASKS.c.id == self.task_id).values(
                done=done, failed=failed, updated_at=now()))
            status = conn.execute(select(JOBS.c.status).where(JOBS.c.id == self.job_id)).scalar()
        if status == "cancelled":
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def save_state(self, state: bytes) -> None:
        """Store a checkpoint now (a kill after this resumes from here)."""
        with self.engine.begin() as conn:
            conn.execute(update(TASKS).where(TASKS.c.id == self.task_id).values(
                state=state, updated_at=now()))


def finish(engine: Engine, task_id: int, outcome: Outcome | None = None, *,
           error: str | None = None, cancelled: bool = False) -> bool:
    """Record a task's end. Returns True when this call closed the job's last open task: the
    caller must then run (or enqueue) :func:`finalize`. With ``outcome.requeue`` the task goes
    back to ``queued`` with its checkpoint and the caller must run (or enqueue) it again."""
    stamp = now()
    # Two tasks finishing together must not both miss (or both see) the end of the job: lock
    # the job row first and count open tasks with READ COMMITTED reads (InnoDB's default
    # REPEATABLE READ would count from a snapshot taken before the other task committed).
    opts = {"isolation_level": "READ COMMITTED"} if engine.dialect.name in (
        "mysql", "mariadb") else {}
    with engine.connect().execution_options(**opts) as conn, conn.begin():
        job_id = conn.execute(select(TASKS.c.job_id).where(TASKS.c.id == task_id)).scalar_one()
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(updated_at=stamp))
        values: dict[str, Any] = {"updated_at": stamp}
        if outcome is not None and outcome.requeue:
            values.update(status="queued", done=outcome.done, failed=outcome.failed,
                          state=outcome.state)
        elif outcome is not None:
            values.update(status="done", done=outcome.done, failed=outcome.failed,
                          result=outcome.result, finished_at=stamp, error=None)
            if outcome.state is not None:
                values["state"] = outcome.state
        else:
            values.update(status="cancelled" if cancelled else "failed",
                          error=(error or "")[:20000], finished_at=stamp)
        changed = conn.execute(update(TASKS).where(
            TASKS.c.id == task_id, TASKS.c.status.notin_(TASK_FINAL)).values(**values)).rowcount
        if not changed or (outcome is not None and outcome.requeue):
            return False
        left = conn.execute(select(func.count()).select_from(TASKS).where(
            TASKS.c.job_id == job_id, TASKS.c.status.notin_(TASK_FINAL))).scalar_one()
        if left:
            return False
        sums = conn.execute(select(func.sum(TASKS.c.done), func.sum(TASKS.c.failed)).where(
            TASKS.c.job_id == job_id)).one()
        return bool(conn.execute(update(JOBS).where(
            JOBS.c.id == job_id, JOBS.c.status.in_(("queued", "running"))).values(
            status="finalizing", done=int(sums[0] or 0), failed=int(sums[1] or 0),
            updated_at=stamp)).rowcount)


Listener = Callable[[int, "dict[str, Any] | None"], None]


def execute(engine: Engine, task_id: int, *, worker: str | None = None, pool: Any = None,
            device: str = "auto", listener: Listener | None = None) -> tuple[str, int]:
    """Claim and run one task; returns (what happened, job id).

    What happened: ``skipped`` (nothing to do), ``requeue`` (checkpoint saved; run it again),
    ``done``, ``failed``, ``cancelled``, each with ``+finalize`` when the job's last task just
    ended. Transient database errors propagate (the Celery wrapper retries them); any other
    error marks the task failed with its message, so a poison task never blocks the rest.
    """
    from sqlalchemy.exc import DBAPIError

    claimed = claim(engine, task_id, worker or worker_name())
    if claimed is None:
        return "skipped", _job_of(engine, task_id)
    job, task = claimed
    kind = get_kind(job.kind)
    ctx = TaskContext(engine, job.id, task.id, pool=pool, device=device)
    if listener is not None:
        ctx.listeners.append(listener)
    try:
        outcome = kind.run(engine, job, task, ctx)
    except JobCancelled:
        last = finish(engine, task_id, cancelled=True)
        return "cancelled" + ("+finalize" if last else ""), job.id
    except DBAPIError as e:
        if e.connection_invalidated or _transient(e):
            raise
        last = finish(engine, task_id, error=_describe(e))
        return "failed" + ("+finalize" if last else ""), job.id
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - recorded on the task, shown by `platform jobs show`
        last = finish(engine, task_id, error=_describe(e))
        return "failed" + ("+finalize" if last else ""), job.id
    last = finish(engine, task_id, outcome)
    if outcome.requeue:
        return "requeue", job.id
    return "done" + ("+finalize" if last else ""), job.id


def _job_of(engine: Engine, task_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(TASKS.c.job_id).where(TASKS.c.id == task_id)).scalar_one())


def _transient(e: Exception) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(e, (OperationalError, InterfaceError))


def _describe(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    msg = str(orig if orig is not None else e).strip() or type(e).__name__
    return f"{type(e).__name__}: {msg}"


def finalize(engine: Engine, job_id: int, *, device: str = "auto") -> JobView:
    """Run the kind's last step once and close the job (idempotent: a job that is no longer
    ``finalizing`` is returned as it is)."""
    job = get_job(engine, job_id)
    if job.status != "finalizing":
        return job
    tasks = get_tasks(engine, job_id)
    failed = [t for t in tasks if t.status == "failed"]
    cancelled = any(t.status == "cancelled" for t in tasks)
    result: dict[str, Any] = {}
    error = None
    try:
        result = get_kind(job.kind).finalize(engine, job, tasks, device)
    except Exception as e:  # noqa: BLE001 - recorded on the job
        error = f"final step failed: {_describe(e)}"
    if failed and error is None:
        first = failed[0]
        error = (f"{len(failed)} of {len(tasks)} tasks failed; task {first.seq} "
                 f"({_range(first.params)}): {first.error}")
    status = "failed" if error else ("cancelled" if cancelled else "succeeded")
    stamp = now()
    with engine.begin() as conn:
        closed = conn.execute(update(JOBS).where(
            JOBS.c.id == job_id, JOBS.c.status == "finalizing").values(
            status=status, error=error, result=result, finished_at=stamp,
            updated_at=stamp)).rowcount
        if closed and status == "succeeded":  # checkpoints and member weights are registered
            conn.execute(update(TASKS).where(TASKS.c.job_id == job_id).values(state=None))
    return get_job(engine, job_id)


def _range(params: dict[str, Any]) -> str:
    if "lo" in params:
        return f"ids {params['lo']}..{params['hi']}"
    return ", ".join(f"{k} {v}" for k, v in params.items())


def cancel(engine: Engine, job_id: int) -> JobView:
    """Cancel a job: queued tasks are dropped, running ones stop at their next progress
    report; what was written stays (it is complete per chunk) and a new command finishes it."""
    job = get_job(engine, job_id)
    if job.status not in JOB_ACTIVE:
        raise PlatformError(f"job {job_id} is already {job.status}")
    stamp = now()
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status.in_(JOB_ACTIVE))
                     .values(status="cancelled", updated_at=stamp, finished_at=stamp))
        conn.execute(update(TASKS).where(and_(TASKS.c.job_id == job_id,
                                              TASKS.c.status == "queued"))
                     .values(status="cancelled", updated_at=stamp, finished_at=stamp))
    return get_job(engine, job_id)


def _cancelled(engine: Engine, job_id: int) -> bool:
    return get_job(engine, job_id).status == "cancelled"


def run_inprocess(engine: Engine, job_id: int, *, pool: Any = None, device: str = "auto",
                  listener: Listener | None = None) -> JobView:
    """Run every open task of a job in this process, then finalize it (the no-broker path).

    ``listener(units, info)`` gets the running total of units done (and the task's latest
    details, such as a training epoch's losses), for a progress bar.
    """
    tasks = get_tasks(engine, job_id)
    base = sum(t.total for t in tasks if t.status in TASK_FINAL)
    for task in tasks:
        if task.status in TASK_FINAL:
            continue
        offset = base

        def report(done: int, info: dict[str, Any] | None, offset: int = offset) -> None:
            if listener is not None:
                listener(offset + done, info)

        while True:
            what, _ = execute(engine, task.id, worker=f"in-process:{worker_name()}", pool=pool,
                              device=device, listener=report)
            if what != "requeue":
                break
        base += task.total
        if listener is not None:
            listener(base, None)
        if what.startswith("cancelled") or what == "skipped" and _cancelled(engine, job_id):
            break
    job = get_job(engine, job_id)
    if job.status == "finalizing":
        job = finalize(engine, job_id, device=device)
    return job


# ---------------------------------------------------------------------------------------------
# Planning helpers


def id_ranges(ids: np.ndarray, size: int) -> Iterator[TaskSpec]:
    """Split ascending ids into tasks of at most ``size`` ids, as inclusive ``lo..hi`` ranges
    (a task re-reads what is still pending in its range, so a redelivery is harmless)."""
    ids = np.asarray(ids, dtype=np.int64)
    for i in range(0, len(ids), size):
        part = ids[i:i + size]
        yield TaskSpec({"lo": int(part[0]), "hi": int(part[-1])}, int(len(part)))
