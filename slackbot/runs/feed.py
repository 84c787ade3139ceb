"""Events to the sinks that show them (Slack), from the database: one process of the installation
holds the output lease and renders what every process emitted, so Slack's rate budgets are spent
in one place; when it dies another front takes the lease and goes on from the stored cursor.

Each sink has its own queue (`SinkQueue`), a lane per channel: a slow Slack never delays the
reader, a channel Slack paces never holds up another, and the agent never waits for any of it (it
only writes events to the database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..protocol import Event, EventSink, TaskRef, event_from_dict
from ..store import Coord, EventRow, Store
from ..store.coord import OUTPUT
from .signals import Signals
from .sinks import SinkQueue
from .task_run import task_ref

log = logging.getLogger(__name__)
GAP_S = 5.0  # an id missing this long was a rolled-back insert, not a transaction still open
BATCH = 500


class EventFeed:
    def __init__(self, store: Store, coord: Coord, signals: Signals, holder: str, *, lease_s: float) -> None:
        self.store, self.coord, self.signals = store, coord, signals
        self.holder = holder
        self.lease_s = lease_s
        self.sinks: list[SinkQueue] = []
        self.held = False
        self.cursor = 0  # every event up to here was handed to the sinks
        self._read = 0  # handed to the sink queues up to here
        self._gap_since: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    def add_sink(self, sink: EventSink) -> None:
        self.sinks.append(SinkQueue(sink))

    async def start(self) -> None:
        for q in self.sinks:
            q.start()
        self._task = asyncio.create_task(self._run(), name="event-feed")

    async def stop(self, flush_s: float = 10.0) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.held:
            try:
                async with asyncio.timeout(flush_s):
                    await self._read_some()  # what the last tasks said as this process stopped them
                for q in self.sinks:
                    await q.join(flush_s)
                await self._save()
            except Exception as exc:
                log.warning("stopping the Slack output: %s", exc)
        for q in self.sinks:
            await q.stop()
        if self.held:
            await _quietly(self.coord.release(OUTPUT, self.holder))

    async def _run(self) -> None:
        renew_every = self.lease_s / 6
        last_renew = 0.0
        wake = self.signals.waiter("event", poll_s=0.2)
        while True:
            try:
                if time.monotonic() - last_renew >= renew_every:
                    await self._hold()
                    last_renew = time.monotonic()
                if self.held:
                    await self._read_some()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the event feed failed; retrying")
                await asyncio.sleep(1.0)
            if self.held:
                await wake.wait()
            else:
                await asyncio.sleep(renew_every)

    async def _hold(self) -> None:
        if self.held:
            self.held = await self.coord.advance(OUTPUT, self.holder, self._saved_cursor(), self.lease_s)
            if not self.held:
                log.warning("lost the Slack output lease to another process")
            return
        held, cursor = await self.coord.hold(OUTPUT, self.holder, self.lease_s)
        if held:
            log.info("this process now renders task output to Slack (from event %d)", cursor)
            self.held, self.cursor, self._read = True, cursor, cursor
            self._gap_since.clear()
            for q in self.sinks:
                q.reset(cursor)

    def _saved_cursor(self) -> int:
        """Handled by every sink: queued-but-unhandled events are rendered again by a successor."""
        busy = [q for q in self.sinks if q.busy]
        if not busy:
            return self._read
        return max(self.cursor, min(q.done for q in busy))

    async def _save(self) -> None:
        self.cursor = self._saved_cursor()
        await self.coord.advance(OUTPUT, self.holder, self.cursor, self.lease_s)

    async def _read_some(self) -> None:
        while True:
            rows = await self.store.events_after(self._read, BATCH)
            rows = self._contiguous(rows)
            if not rows:
                break
            refs = await self._refs({r.task_id for r in rows})
            for row in rows:
                assert row.id is not None  # read from the store
                ref = refs.get(row.task_id)
                event = _readable(row) if ref is not None else None
                if ref is not None and event is not None:
                    for q in self.sinks:
                        await q.put(row.id, ref, event)
                self._read = row.id
            if len(rows) < BATCH:
                break
        if self._saved_cursor() != self.cursor:
            await self._save()

    def _contiguous(self, rows: list[EventRow]) -> list[EventRow]:
        """Rows up to the first missing id: on Postgres an id may commit after a higher one, so a
        hole is waited for (briefly: a rolled-back insert leaves one for good)."""
        out, expected = [], self._read + 1
        for row in rows:
            assert row.id is not None
            if row.id != expected:
                first_seen = self._gap_since.setdefault(expected, time.monotonic())
                if time.monotonic() - first_seen < GAP_S:
                    break
                self._gap_since.pop(expected, None)
            out.append(row)
            expected = row.id + 1
        return out

    async def _refs(self, task_ids: set[int]) -> dict[int, TaskRef]:
        tasks = await self.store.get_tasks(task_ids)
        threads = await self.store.get_threads({t.thread_id for t in tasks.values()})
        return {tid: task_ref(t, threads[t.thread_id]) for tid, t in tasks.items() if t.thread_id in threads}


def _readable(row: EventRow) -> Event | None:
    """The row's event; None for a row this code cannot read (a newer worker's event type or field
    during a rolling upgrade): that row is skipped, never the whole feed stuck on it."""
    try:
        return event_from_dict(json.loads(row.data))
    except (AttributeError, KeyError, TypeError, ValueError):
        log.warning("event %s of task %s has a shape this version cannot read (%s); skipped",
                    row.id, row.task_id, row.type)
        return None


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except Exception as exc:
        log.warning("%s", exc)
