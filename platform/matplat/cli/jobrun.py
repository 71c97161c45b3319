"""Running a planned job from a command: in this process (no broker), or on Celery workers
with one progress bar fed from the database (``--no-wait`` returns the job id at once)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from matplat.cli.context import AppContext
from matplat.cli.progress import count_bar
from matplat.errors import PlatformError

POLL_SECONDS = 0.5
#: After this long with no task started, say that no worker seems to consume the queue.
IDLE_HINT_SECONDS = 15.0

no_wait_option = click.option(
    "--no-wait",
    is_flag=True,
    help="With a broker: print the job id and return at once (watch it with `platform jobs show`).",
)


def runner_name(app: AppContext) -> str:
    return "celery" if app.settings.broker_url else "in-process"


def check_no_wait(app: AppContext, no_wait: bool) -> None:
    if no_wait and not app.settings.broker_url:
        raise click.UsageError(
            "--no-wait needs a broker (PLATFORM_BROKER_URL or --broker); without one the work "
            "runs in this process"
        )


def check_broker(app: AppContext) -> None:
    """Fail before planning anything when the configured broker cannot be reached."""
    if app.settings.broker_url:
        from workers.app import create_app
        from workers.tasks import check_broker as check

        check(create_app(app.settings))


def run_job(
    app: AppContext,
    job_id: int,
    *,
    desc: str,
    unit: str,
    no_wait: bool = False,
    pool: Any = None,
    postfix: Callable[[dict[str, Any]], str] | None = None,
) -> Any:
    """Run or enqueue job ``job_id``; returns its final JobView (``None`` with ``--no-wait``)."""
    from workers import jobs

    engine = app.engine()
    if not app.settings.broker_url:
        with count_bar(None, desc, unit=unit) as bar:
            bar.total = jobs.progress(engine, job_id).total
            bar.refresh()

            def listener(done: int, info: dict[str, Any] | None) -> None:
                bar.update(max(0, done - bar.n))
                if info and postfix:
                    bar.set_postfix_str(postfix(info), refresh=False)

            try:
                job = jobs.run_inprocess(
                    engine, job_id, pool=pool, device=app.settings.device, listener=listener
                )
            except KeyboardInterrupt:
                jobs.cancel(engine, job_id)
                raise
        return job

    from workers.tasks import enqueue

    sent = enqueue(app.settings, engine, job_id, check=False)  # checked before planning
    job = jobs.get_job(engine, job_id)
    if no_wait:
        click.echo(
            f"job {job_id} ({job.kind}): {sent} tasks sent to queue {job.queue}; follow it with "
            f"`platform jobs show {job_id}`"
        )
        return None
    return wait(app, job_id, desc=desc, unit=unit)


def wait(app: AppContext, job_id: int, *, desc: str, unit: str) -> Any:
    """Draw the progress of a job running on workers until it ends."""
    from workers import jobs

    engine = app.engine()
    started = time.monotonic()
    hinted = False
    try:
        with count_bar(None, f"{desc} [job {job_id}]", unit=unit) as bar:
            while True:
                p = jobs.progress(engine, job_id)
                bar.total = p.total
                bar.update(max(0, p.done - bar.n))
                bar.set_postfix_str(
                    f"tasks {p.tasks_done + p.tasks_failed}/{p.tasks}, running {p.running}",
                    refresh=False,
                )
                if p.status in ("succeeded", "failed", "cancelled"):
                    break
                if (
                    not hinted
                    and p.running == 0
                    and p.done == 0
                    and time.monotonic() - started > IDLE_HINT_SECONDS
                ):
                    queue = jobs.get_job(engine, job_id).queue
                    bar.write(
                        f"no worker has started job {job_id} yet: is one consuming queue "
                        f"{queue!r}? (`platform worker --queues {queue}`)"
                    )
                    hinted = True
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        click.echo(
            f"\nstopped watching; job {job_id} goes on on the workers "
            f"(`platform jobs show {job_id}`, `platform jobs cancel {job_id}`)",
            err=True,
        )
        raise SystemExit(130) from None
    return jobs.get_job(engine, job_id)


def raise_if_failed(job: Any) -> None:
    if job is None:
        return
    if job.status == "failed":
        raise PlatformError(
            f"job {job.id} failed: {job.error} (details: `platform jobs show {job.id}`; "
            "run the command again to retry what did not finish)"
        )
    if job.status == "cancelled":
        raise PlatformError(f"job {job.id} was cancelled; rerun the command to finish the work")
