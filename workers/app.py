"""The Celery app of the platform: ``celery -A workers.app worker`` (or ``platform worker``).

Configured from the platform's settings (``PLATFORM_BROKER_URL``: Redis or RabbitMQ;
``PLATFORM_DATABASE_URL``: where jobs, their tasks and every result live, so no Celery result
backend is used). Two queues: ``cpu`` (graph building) and ``gpu`` (training and inference).
Messages are JSON and carry ids only; a task is acknowledged after it ran (``acks_late``,
one message prefetched per process) and is redelivered if its worker dies, which is safe
because every task is idempotent (see ``workers.jobs``).
"""

from __future__ import annotations

import os

from celery import Celery, signals
from kombu import Queue

from matplat.config import Settings, load_settings

QUEUES = ("cpu", "gpu")
#: A task is stopped (and recorded as failed) after this long; tasks are sized to take a
#: small fraction of it, below RabbitMQ's default consumer timeout (30 min).
SOFT_TIME_LIMIT = 25 * 60
HARD_TIME_LIMIT = 28 * 60
#: Redis redelivers a message that was not acknowledged within this many seconds (the
#: worker holding it died). Must exceed the longest task; ``PLATFORM_VISIBILITY_TIMEOUT``.
DEFAULT_VISIBILITY_TIMEOUT = 3600


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (default: read from the environment)."""
    settings = settings or load_settings()
    visibility = int(os.environ.get("PLATFORM_VISIBILITY_TIMEOUT") or DEFAULT_VISIBILITY_TIMEOUT)
    app = Celery("matplat", broker=settings.broker_url or "memory://", include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        task_ignore_result=True,  # results and progress live in the platform's database
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_queues=[Queue(q, routing_key=q) for q in QUEUES],
        task_default_queue="cpu",
        task_soft_time_limit=SOFT_TIME_LIMIT,
        task_time_limit=HARD_TIME_LIMIT,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep reconnecting while the broker is away
        broker_transport_options={
            "visibility_timeout": visibility,
            # Sweep for messages of dead workers often enough for the timeout chosen.
            "unacked_restore_interval": max(1, min(10, visibility // 10)),
            "unacked_restore_throttle": 1 if visibility < 600 else 10,
        },
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 5, "interval_start": 0.5,
                                   "interval_step": 1.0, "interval_max": 5.0},
        worker_hijack_root_logger=False,
    )
    app.conf.platform_settings = settings
    return app


@signals.worker_process_init.connect
def _after_fork(**_kwargs: object) -> None:
    """A forked pool process must not share its parent's database connections."""
    from matplat.db.session import dispose_engines

    dispose_engines()


app = create_app()
