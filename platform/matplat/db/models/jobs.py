"""Jobs: long commands (graph builds, training, predictions) split into tasks, and their progress.

A job is one command (``platform graphs build``…); its tasks are the units a worker runs (an id
range of structures or materials, one ensemble member). Workers record progress, attempts and
errors on the task rows; the CLI draws its progress bar from them, on whichever machine it runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId, Blob, LongText
from matplat.db.types import JSONText

#: Job and task states. A job is ``queued`` → ``running`` → ``finalizing`` →
#: ``succeeded``/``failed``, or ``cancelled`` at any point before it ends.
JOB_ACTIVE = ("queued", "running", "finalizing")
JOB_FINAL = ("succeeded", "failed", "cancelled")
#: A task is ``queued`` → ``running`` → ``done``/``failed``, or ``cancelled``.
TASK_FINAL = ("done", "failed", "cancelled")


class Job(Base):
    """A unit of long work, in-process or on Celery workers; progress is read from here."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    runner: Mapped[str] = mapped_column(String(16), default="in-process", server_default="in-process")
    queue: Mapped[str | None] = mapped_column(String(32))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobTask(Base):
    """One message's worth of a job: an id range or an ensemble member, with its progress."""

    __tablename__ = "job_tasks"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(LongText)
    #: Counters and summary of a finished task (graphs built, rows written…).
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    #: Task output that outlives a worker: a training member's checkpoint or final weights.
    state: Mapped[bytes | None] = mapped_column(Blob)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
