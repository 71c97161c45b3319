"""In-process jobs whose runner is gone, and finishing them again.

Without a broker a job's tasks run inside the command that submitted it. When that process
dies (killed, or it lost its database connection and exited with an error), its job stays
``running`` or ``finalizing`` with nobody working on it. Every task such a process claims
records it as ``in-process:HOST:PID`` (``job_tasks.worker``) and every progress report, task
end and checkpoint stamps ``updated_at``: together they tell whether the runner still exists.

A job counts as orphaned when its runner is a process on this host that no longer exists, or
(runner on another host, or none recorded yet) when nothing was stamped for
``PLATFORM_JOB_STALE_SECONDS`` (default 3600: an in-process task reports at least every
training slice, 10 minutes by default, and every graph or prediction chunk). ``platform jobs
list/show/resume`` mark orphans ``failed`` with an ``interrupted:`` reason and put their
running tasks back to ``queued``; ``platform jobs resume ID`` reopens such a job and runs
what is left in its own process (tasks are idempotent). Celery jobs are not judged here:
their messages go back to the broker when a worker dies.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, func, select, update

from matplat.errors import PlatformError
from workers.jobs import JOBS, TASKS, get_job, now, worker_name

INTERRUPTED = "interrupted:"
_ACTIVE = ("queued", "running", "finalizing")
_PREFIX = "in-process:"


def stale_seconds() -> float:
    raw = os.environ.get("PLATFORM_JOB_STALE_SECONDS", "3600")
    try:
        return max(1.0, float(raw))
    except ValueError:
        raise PlatformError(f"PLATFORM_JOB_STALE_SECONDS={raw!r}: expected seconds") from None


def process_alive(worker: str | None) -> bool | None:
    """Whether the in-process runner ``in-process:HOST:PID`` exists: True, False, or None
    when that cannot be told from here (another host, or not an in-process runner)."""
    if not worker or not worker.startswith(_PREFIX):
        return None
    host, _, pid_text = worker[len(_PREFIX):].rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def runner_state(engine: Engine, job_id: int) -> tuple[bool, str | None, str]:
    """(orphaned?, runner, why) of an active in-process job."""
    with engine.connect() as conn:
        job = conn.execute(select(JOBS.c.updated_at, JOBS.c.created_at).where(
            JOBS.c.id == job_id)).one()
        last_task = conn.execute(select(func.max(TASKS.c.updated_at)).where(
            TASKS.c.job_id == job_id)).scalar()
        runner = conn.execute(
            select(TASKS.c.worker).where(TASKS.c.job_id == job_id, TASKS.c.worker.is_not(None))
            .order_by(TASKS.c.status != "running", TASKS.c.updated_at.desc(), TASKS.c.seq.desc())
            .limit(1)).scalar()
    alive = process_alive(runner)
    if alive is not None:
        return not alive, runner, f"its runner {runner} is gone"
    stamps = [t for t in (_aware(job.updated_at), _aware(job.created_at), _aware(last_task))
              if t is not None]
    age = (now() - max(stamps)).total_seconds() if stamps else float("inf")
    who = f"its runner {runner}" if runner else "no runner"
    return age > stale_seconds(), runner, f"{who} has not reported for {age:.0f} s"


def mark_orphans(engine: Engine, job_ids: list[int] | None = None) -> list[int]:
    """Mark active in-process jobs (all, or ``job_ids``) whose runner is gone; returns them."""
    stmt = select(JOBS.c.id).where(JOBS.c.runner == "in-process", JOBS.c.status.in_(_ACTIVE))
    if job_ids is not None:
        stmt = stmt.where(JOBS.c.id.in_(job_ids))
    with engine.connect() as conn:
        candidates = [int(r[0]) for r in conn.execute(stmt)]
    marked = []
    for job_id in candidates:
        orphaned, _runner, who = runner_state(engine, job_id)
        if not orphaned:
            continue
        reason = (f"{INTERRUPTED} {who} (the command was stopped or lost its database "
                  f"connection); `platform jobs resume {job_id}` finishes it")
        stamp = now()
        with engine.begin() as conn:
            changed = conn.execute(update(JOBS).where(
                JOBS.c.id == job_id, JOBS.c.status.in_(_ACTIVE)).values(
                status="failed", error=reason, finished_at=stamp, updated_at=stamp)).rowcount
            if changed:
                conn.execute(update(TASKS).where(TASKS.c.job_id == job_id,
                                                 TASKS.c.status == "running")
                             .values(status="queued", updated_at=stamp))
                marked.append(job_id)
    return marked


def reopen(engine: Engine, job_id: int) -> Any:
    """Make an interrupted (or orphaned) in-process job runnable again in this process:
    ``running`` with its open tasks, or ``finalizing`` when only the last step is left."""
    mark_orphans(engine, [job_id])
    job = get_job(engine, job_id)
    if job.status in _ACTIVE:
        _, runner, _ = runner_state(engine, job_id)
        raise PlatformError(f"job {job_id} is {job.status} in {runner or 'another process'}; "
                            "nothing to resume (`platform jobs cancel` stops it)")
    if job.status != "failed" or not (job.error or "").startswith(INTERRUPTED):
        raise PlatformError(f"job {job_id} is {job.status}; nothing to resume")
    stamp = now()
    with engine.begin() as conn:
        open_tasks = conn.execute(select(func.count()).select_from(TASKS).where(
            TASKS.c.job_id == job_id, TASKS.c.status.in_(("queued", "running")))).scalar_one()
        conn.execute(update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status == "failed").values(
            status="running" if open_tasks else "finalizing", error=None, finished_at=None,
            updated_at=stamp))
        # This process is the runner now (its claims say so too; this closes the gap).
        conn.execute(update(TASKS).where(TASKS.c.job_id == job_id, TASKS.c.status == "queued")
                     .values(worker=f"{_PREFIX}{worker_name()}", updated_at=stamp))
    return get_job(engine, job_id)
