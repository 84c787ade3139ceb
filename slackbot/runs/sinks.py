"""A sink's own queue and drain task, so whoever hands it events never waits for it."""

from __future__ import annotations

import asyncio
import logging

from ..protocol import Event, EventSink, TaskRef

log = logging.getLogger(__name__)
QUEUE_MAX = 5000


class SinkQueue:
    """One sink's own queue and drain task; `done` is the last event id it has handled."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[tuple[int, TaskRef, Event]] = asyncio.Queue(QUEUE_MAX)
        self.done = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._drain(), name=f"sink-{type(self.sink).__name__}")

    async def put(self, event_id: int, ref: TaskRef, event: Event) -> None:
        await self.queue.put((event_id, ref, event))  # full: the reader waits (bounded memory)

    async def _drain(self) -> None:
        while True:
            event_id, ref, event = await self.queue.get()
            try:
                await self.sink.handle(ref, event)
            except Exception:
                log.exception("sink %r failed on %s", self.sink, event.type)
            self.done = event_id
            self.queue.task_done()

    async def join(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self.queue.join()

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
