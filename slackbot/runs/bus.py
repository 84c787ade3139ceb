"""Events out of a task: redacted, persisted first (durable), then handed to this process's own
sinks (the terminal's `exec`). Slack reads them back from the database (`feed.py`), in whichever
process holds the output lease."""

from __future__ import annotations

import logging

from ..protocol import Event, EventSink, TaskRef, event_from_dict, event_to_dict
from ..redact import Redactor
from ..store import Store
from .signals import Signals
from .sinks import SinkQueue

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self, store: Store, *, redactor: Redactor | None = None, signals: Signals | None = None) -> None:
        self.store = store
        self.redactor = redactor or Redactor()
        self.signals = signals
        self.sinks: list[SinkQueue] = []

    def add_sink(self, sink: EventSink) -> None:
        """A sink in this process: its own queue and drain task, so it never delays the emitter."""
        queue = SinkQueue(sink)
        queue.start()
        self.sinks.append(queue)

    async def close(self, flush_s: float = 5.0) -> None:
        for queue in self.sinks:
            try:
                await queue.join(flush_s)
            except TimeoutError:
                log.warning("a sink did not catch up before shutdown")
            await queue.stop()

    async def emit(self, task: TaskRef, event: Event) -> None:
        # Command output, the model and git can carry tokens: neither the transcript nor any sink
        # (Slack, the terminal) sees them.
        data = event_to_dict(event)
        clean = self.redactor.value(data)
        if clean != data:
            data, event = clean, event_from_dict(clean)
        event_id = 0
        try:
            event_id = await self.store.add_event(task.task_id, data)
        except Exception:  # a lost row must not stop the task or the user's view of it
            log.exception("could not store event %s of task %s", event.type, task.task_id)
        if self.signals:
            self.signals.local("event")
        for queue in self.sinks:
            await queue.put(event_id, task, event)
