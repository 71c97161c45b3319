"""``platform jobs`` (list, show, cancel, resume) and ``platform worker``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace

import click
import pandas as pd

from matplat.cli.context import AppContext, pass_app
from matplat.cli.output import format_option, json_text, write


@click.group()
def jobs() -> None:
    """Long work (graph builds, training, predictions) and its progress, on any machine."""


def _when(value) -> str:  # type: ignore[no-untyped-def]
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


@jobs.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--status", help="Only jobs in this state (queued, running, succeeded, failed…).")
@format_option()
@pass_app
def list_(app: AppContext, limit: int, status: str | None, fmt: str) -> None:
    """The newest jobs with their progress."""
    from workers import jobs as j
    from workers.orphans import mark_orphans

    engine = app.engine()
    mark_orphans(engine)
    rows = []
    for job in j.list_jobs(engine, limit, status):
        p = j.progress(engine, job.id)
        rows.append({
            "id": job.id, "kind": job.kind, "status": job.status, "runner": job.runner,
            "queue": job.queue, "done": p.done, "total": p.total,
            "tasks": f"{p.tasks_done + p.tasks_failed}/{p.tasks}",
            "failed_tasks": p.tasks_failed, "created": _when(job.created_at),
            "finished": _when(job.finished_at),
        })
    cols = ["id", "kind", "status", "runner", "queue", "done", "total", "tasks", "failed_tasks",
            "created", "finished"]
    write(pd.DataFrame(rows, columns=cols), fmt, None)


@jobs.command()
@click.argument("job_id", type=int)
@click.option("--tasks/--no-tasks", "show_tasks", default=True, show_default=True,
              help="List the job's tasks.")
@format_option(("table", "json"))
@pass_app
def show(app: AppContext, job_id: int, show_tasks: bool, fmt: str) -> None:
    """A job's parameters, progress, result and tasks (worker, attempts, errors)."""
    from workers import jobs as j
    from workers.orphans import mark_orphans

    engine = app.engine()
    mark_orphans(engine, [job_id])
    job = j.get_job(engine, job_id)
    p = j.progress(engine, job_id)
    tasks = j.get_tasks(engine, job_id) if show_tasks else []
    if fmt == "json":
        click.echo(json_text({
            "id": job.id, "kind": job.kind, "status": job.status, "runner": job.runner,
            "queue": job.queue, "params": job.params, "done": p.done, "total": p.total,
            "error": job.error, "result": job.result, "created": _when(job.created_at),
            "finished": _when(job.finished_at),
            "tasks": [{"seq": t.seq, "status": t.status, "params": t.params, "total": t.total,
                       "done": t.done, "failed": t.failed, "attempts": t.attempts,
                       "worker": t.worker, "error": t.error, "result": t.result}
                      for t in tasks]}))
        return
    pct = f"{100 * p.done / p.total:.0f} %" if p.total else "-"
    click.echo(f"job {job.id}: {job.kind}, {job.status} ({job.runner}, queue {job.queue})")
    click.echo(f"  progress:  {p.done:,} / {p.total:,} ({pct}); tasks {p.tasks_done} done, "
               f"{p.tasks_failed} failed, {p.running} running, {p.tasks} in all")
    click.echo(f"  params:    {json.dumps(job.params, sort_keys=True)}")
    click.echo(f"  created:   {_when(job.created_at)}   finished: {_when(job.finished_at) or '-'}")
    if job.result:
        click.echo(f"  result:    {json.dumps(job.result, sort_keys=True)[:400]}")
    if job.error:
        click.echo(f"  error:     {job.error}")
    if tasks:
        df = pd.DataFrame([{
            "seq": t.seq, "status": t.status,
            "range": (f"{t.params['lo']}..{t.params['hi']}" if "lo" in t.params
                      else json.dumps(t.params)),
            "done": t.done, "total": t.total, "attempts": t.attempts, "worker": t.worker or "",
            "error": (t.error or "")[:80]} for t in tasks])
        click.echo(df.to_string(index=False))


@jobs.command()
@click.argument("job_id", type=int)
@pass_app
def cancel(app: AppContext, job_id: int) -> None:
    """Stop a job: queued tasks are dropped, running ones stop at their next progress report.
    What was written stays; running the command again finishes the work."""
    from workers import jobs as j

    job = j.cancel(app.engine(), job_id)
    click.echo(f"job {job.id} cancelled")


@jobs.command()
@click.argument("job_id", type=int)
@pass_app
def resume(app: AppContext, job_id: int) -> None:
    """Finish a job: an in-process job that was interrupted (its command stopped or lost the
    database) runs what is left here; a Celery job's unfinished tasks are sent to the workers
    again (after the broker lost its messages). Safe: tasks are idempotent."""
    from workers import jobs as j

    engine = app.engine()
    job = j.get_job(engine, job_id)
    if job.runner == "in-process":
        from matplat.cli.jobrun import raise_if_failed, run_job
        from workers.orphans import reopen

        job = reopen(engine, job_id)
        local = AppContext(settings=replace(app.settings, broker_url=None), _engine=engine)
        done = run_job(local, job_id, desc=f"{job.kind} [job {job_id}]", unit="unit")
        raise_if_failed(done)
        click.echo(f"job {job_id}: {done.status}")
        return
    if not app.settings.broker_url:
        raise click.UsageError("resume needs a broker (PLATFORM_BROKER_URL or --broker)")
    if job.status not in ("queued", "running", "finalizing"):
        raise click.UsageError(f"job {job_id} is {job.status}; nothing to resume")
    from workers.tasks import enqueue

    sent = enqueue(app.settings, engine, job_id)
    click.echo(f"job {job_id}: sent {sent} unfinished tasks again")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--queues", "-Q", default="cpu,gpu", show_default=True,
              help="Comma-separated queues to consume: cpu (graphs), gpu (training, inference).")
@click.option("--concurrency", "-c", type=click.IntRange(min=1),
              help="Processes [default: 1 when serving only gpu, else the CPU count].")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default=None,
              help="Celery pool [default: prefork, solo with one process].")
@click.option("--name", "-n", default=None, help="Worker node name [default: matplat-PID@host].")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def worker(app: AppContext, queues: str, concurrency: int | None, pool: str | None,
           name: str | None, loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker with the platform's settings (extra arguments go to Celery).

    A thin wrapper over `celery -A workers.app worker`: checks the database schema and the
    broker first, then replaces this process with the worker.
    """
    if not app.settings.broker_url:
        raise click.UsageError("a worker needs a broker: set PLATFORM_BROKER_URL or --broker")
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - {"cpu", "gpu"})
    if unknown or not wanted:
        raise click.UsageError(f"unknown queue(s) {', '.join(unknown) or '(none)'}: use cpu, gpu")
    app.engine()  # the schema must be current before a worker takes work
    from matplat.cli.jobrun import check_broker

    check_broker(app)
    if concurrency is None:
        concurrency = 1 if wanted == ["gpu"] else (os.cpu_count() or 1)
    pool = pool or ("solo" if concurrency == 1 else "prefork")
    env = dict(os.environ)
    env["PLATFORM_DATABASE_URL"] = app.settings.database_url
    env["PLATFORM_BROKER_URL"] = app.settings.broker_url
    env["PLATFORM_DEVICE"] = app.settings.device
    # Each process gets its share of the cores for torch, not all of them.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // concurrency)))
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "-Q", ",".join(wanted), "-c", str(concurrency), "--pool", pool,
            "-n", name or f"matplat-{os.getpid()}@%h", "-l", loglevel, *celery_args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(sys.executable, argv, env)
