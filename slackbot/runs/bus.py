"""Fan-out of events: redacted, persisted first (durable), then handed to every sink."""

from __future__ import annotations

import logging

from ..protocol import Event, EventSink, TaskRef, event_from_dict, event_to_dict
from ..redact import Redactor
from ..store import Store

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self, store: Store, *, redactor: Redactor | None = None) -> None:
        self.store = store
        self.redactor = redactor or Redactor()
        self.sinks: list[EventSink] = []

    def add_sink(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    async def emit(self, task: TaskRef, event: Event) -> None:
        # Command output, the model and git can carry tokens: neither the transcript nor any sink
        # (Slack, the terminal) sees them.
        data = event_to_dict(event)
        clean = self.redactor.value(data)
        if clean != data:
            data, event = clean, event_from_dict(clean)
        try:
            await self.store.add_event(task.task_id, data)
        except Exception:  # a lost row must not stop the task or the user's view of it
            log.exception("could not store event %s of task %s", event.type, task.task_id)
        for sink in self.sinks:
            try:
                await sink.handle(task, event)
            except Exception:
                log.exception("sink %r failed on %s", sink, event.type)
