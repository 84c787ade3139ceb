"""Without a filesystem quota (not root), a task's workspace is measured and the task stopped past it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .task_run import TaskRun

log = logging.getLogger(__name__)
DISK_CHECK_S = 3.0
DISK_FAILURES = 3  # measurements failing in a row count as over the quota


async def watch_disk(run: TaskRun) -> None:
    settings = run.ctx.settings
    quota = settings.size("workspace_quota")
    failures = 0
    while True:
        await asyncio.sleep(DISK_CHECK_S)
        try:
            used, failures = await run.sandbox.disk_usage(), 0
        except Exception as exc:
            # The agent can make measuring fail (or slow); that must not switch the quota off.
            failures += 1
            log.warning("task %s: could not measure the workspace: %s", run.task.id, exc)
            used = quota + 1 if failures >= DISK_FAILURES else 0
        if used > quota:
            run.halt(f"The workspace went over its disk quota ({settings.workspace_quota}, "
                     "SLACKBOT_WORKSPACE_QUOTA), so the task was stopped.")
            return
