"""Writes a task makes at every agent step (its model history, its command events), taken off the
agent's path: they run in order on one background task of the run, and the run waits for them all
(`flush`) before anything reads them back or the task's end is recorded."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)
Write = Callable[[], Awaitable[object]]


class WriteBehind:
    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def put(self, write: Write) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"writes-{self.name}")
        self._queue.put_nowait(write)

    async def flush(self, timeout_s: float = 60.0) -> None:
        """Waits until every write so far is done (each one's failure is logged, not raised)."""
        if self._task is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(self._queue.join())
            except TimeoutError:
                log.error("%s: writes still pending after %g s", self.name, timeout_s)

    async def close(self) -> None:
        """Drops what is left (the task was taken over by another process) and stops."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        # Ends once the queue is empty (no await between that check and the end, so a `put` either
        # lands before it or starts a new drain): an idle run holds no task.
        while not self._queue.empty():
            write = self._queue.get_nowait()
            try:
                await write()
            except Exception:
                log.exception("%s: a write failed", self.name)
            finally:
                self._queue.task_done()
