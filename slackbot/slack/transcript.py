"""A task's full transcript as plain text, rendered from its stored events."""

from __future__ import annotations

import logging
from typing import Any

from ..protocol import event_from_dict
from ..text import render_event

log = logging.getLogger(__name__)


def render_transcript(task: Any, events: list[dict[str, Any]]) -> str:
    lines = [f"Task #{task.id} requested by {task.requester_name or task.requester}",
             f"Status: {task.status}", f"Request: {task.prompt}", ""]
    for data in events:
        try:
            event = event_from_dict(data)
        except (AttributeError, KeyError, TypeError, ValueError):  # a row of another version's shape: the rest still reads
            log.warning("task %s: skipped a stored event of an unknown shape (%s)", task.id, data.get("type"))
            continue
        text = render_event(event)
        if text:
            lines.append(text)
    return "\n".join(lines) + "\n"
