"""A job kind for the framework tests (registered by tests/test_jobs.py): each task reports
progress over its units, fails with the message in ``params["fail"]`` when given, and the
final step counts how often it ran."""

from __future__ import annotations

from typing import Any

from workers.jobs import Outcome

FINALIZED: list[int] = []


class _Probe:
    name = "probe"
    queue = "cpu"

    def run(self, engine: Any, job: Any, task: Any, ctx: Any) -> Outcome:
        if "fail" in task.params:
            raise RuntimeError(task.params["fail"])
        for i in range(task.total):
            ctx.progress(i + 1, force=True)
        return Outcome(done=task.total, result={"seq": task.seq})

    def finalize(self, engine: Any, job: Any, tasks: list[Any], device: str = "auto") -> dict:
        FINALIZED.append(job.id)
        return {"tasks": [t.result["seq"] for t in tasks if t.result]}


KIND = _Probe()
