"""What automations need from the chat surface (Slack implements it; automations never import it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..store import Automation, RepoBinding

if TYPE_CHECKING:
    from .digest import Digest


class Surface(Protocol):
    async def announce_run(self, automation: Automation, number: int) -> str:
        """Posts the run's top-level message in the automation's channel; returns its ts."""

    async def start_task(self, *, channel: str, thread_ts: str, user: str, text: str, ts: str, key: str,
                         automation_id: int, repo: RepoBinding | None) -> int | None:
        """Records and queues a task with its status message; None when it could not (the thread
        was told) or `key` was seen before."""

    async def say(self, channel: str, thread_ts: str, text: str) -> None:
        """A notice in a thread (or top-level when `thread_ts` is empty); never raises."""

    async def post_digest(self, digest: Digest, chart: bytes | None) -> None:
        """The day's digest message in its channel, with the chart when there is one."""
