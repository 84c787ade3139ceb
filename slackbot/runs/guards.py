"""Watching over tasks and what they leave: a workspace's size without a filesystem quota (not root),
the repository secrets output must never show, old transcripts (retention)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from ..secret_box import SecretBox, SecretsKeyError, SecretUnreadable
from ..store import Repository
from ..store.models import utcnow
from ..store.retention import forget_before
from ..store.secrets import RepoSecrets
from .effective import effective

if TYPE_CHECKING:
    from .task_run import RunContext, TaskRun

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


async def learn_secrets(ctx: RunContext, repo: Repository | None) -> None:
    """Adds the repository's secret values to this process's redactor (setup adds them too, but a
    follow-up runs no setup, and this process may never have seen them)."""
    if repo is None or repo.id is None:
        return
    sealed = await RepoSecrets(ctx.store).sealed(repo.id)
    if sealed:
        with contextlib.suppress(SecretsKeyError, SecretUnreadable):
            ctx.bus.redactor.add(SecretBox(ctx.settings.secrets_key).open_all(sealed).values())


async def retention(ctx: RunContext) -> None:
    """Threads idle for longer than the saved (or environment's) retention lose their transcripts."""
    days = (await effective(ctx.store, ctx.settings)).retention_days
    if days:
        forgotten = await forget_before(ctx.store, utcnow() - timedelta(days=days))
        if forgotten:
            log.info("retention: the transcripts of %d threads idle for %d days were deleted", forgotten, days)
