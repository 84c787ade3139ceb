"""A sink's own queue and drain tasks, so whoever hands it events never waits for it."""

from __future__ import annotations

import asyncio
import logging

from ..protocol import Event, EventSink, TaskRef

log = logging.getLogger(__name__)
QUEUE_MAX = 5000  # events waiting in all of one sink's lanes together
LANE_IDLE_S = 60.0  # a channel's lane (and its drain task) goes away after this long without events


class SinkQueue:
    """One sink's queue: a lane per channel (its own queue and drain task), so a channel's events
    stay in order while a channel Slack paces (a post a second) never holds up another channel.
    `done`: every event up to this id was handled (what the Slack output's cursor may store)."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._room = asyncio.Semaphore(QUEUE_MAX)
        self._lanes: dict[str, asyncio.Queue[tuple[int, int, TaskRef, Event]]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[int, int] = {}  # put order -> event id, oldest first (dicts keep order)
        self._seq = 0
        self._last = 0  # the last event id put
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def done(self) -> int:
        if self._pending:
            return next(iter(self._pending.values())) - 1
        return self._last

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def reset(self, cursor: int) -> None:
        """Reading starts after `cursor` (the Slack output lease was just taken)."""
        self._last = max(self._last, cursor) if self._pending else cursor

    def start(self) -> None:
        """Nothing to start: a channel's lane and its drain task begin with its first event."""

    async def put(self, event_id: int, ref: TaskRef, event: Event) -> None:
        await self._room.acquire()  # all lanes full: the reader waits (bounded memory)
        self._seq += 1
        self._pending[self._seq] = event_id
        self._last = max(self._last, event_id)
        self._idle.clear()
        lane = self._lanes.get(ref.channel)
        if lane is None:
            lane = self._lanes[ref.channel] = asyncio.Queue()
            self._drains[ref.channel] = asyncio.create_task(
                self._drain(ref.channel, lane), name=f"sink-{type(self.sink).__name__}-{ref.channel}")
        lane.put_nowait((self._seq, event_id, ref, event))

    async def _drain(self, key: str, lane: asyncio.Queue[tuple[int, int, TaskRef, Event]]) -> None:
        while True:
            try:
                async with asyncio.timeout(LANE_IDLE_S):
                    seq, _event_id, ref, event = await lane.get()
            except TimeoutError:
                if lane.empty():  # nothing can be put between the timeout and here (no await)
                    self._lanes.pop(key, None)
                    self._drains.pop(key, None)
                    return
                continue
            try:
                await self.sink.handle(ref, event)
            except Exception:
                log.exception("sink %r failed on %s", self.sink, event.type)
            self._pending.pop(seq, None)
            self._room.release()
            if not self._pending:
                self._idle.set()

    async def join(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def stop(self) -> None:
        tasks = list(self._drains.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._drains.clear()
        self._lanes.clear()
