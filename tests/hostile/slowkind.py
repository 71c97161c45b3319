"""A job kind whose tasks take a while (``params["seconds"]`` per unit), so that a test can
kill the process running it mid-task; the final step records the job ids it closed."""

from __future__ import annotations

import time
from typing import Any

from workers.jobs import Outcome

FINALIZED: list[int] = []


class _Slow:
    name = "slow"
    queue = "cpu"

    def run(self, engine: Any, job: Any, task: Any, ctx: Any) -> Outcome:
        for i in range(task.total):
            time.sleep(float(task.params.get("seconds", 0.0)))
            ctx.progress(i + 1, force=True)
        return Outcome(done=task.total, result={"seq": task.seq})

    def finalize(self, engine: Any, job: Any, tasks: list[Any], device: str = "auto") -> dict:
        FINALIZED.append(job.id)
        return {"tasks": sorted(t.result["seq"] for t in tasks if t.result)}


KIND = _Slow()
