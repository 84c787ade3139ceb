"""A task's full transcript as plain text, rendered from its stored events."""

from __future__ import annotations

import logging
from typing import Any

from ..protocol import PlanDecided, event_from_dict
from ..runs.states import APPROVED, PLAN
from ..text import render_event

log = logging.getLogger(__name__)


def render_transcript(task: Any, events: list[dict[str, Any]]) -> str:
    lines = [f"Task #{task.id} requested by {task.requester_name or task.requester}",
             f"Status: {task.status}", f"Request: {task.prompt}"]
    if task.plan == PLAN:
        lines.append("Plan first: a read-only phase ending in a plan for approval (its answer)")
    elif task.plan == APPROVED:
        lines.append(f"Plan first: the edits after the plan was approved by {task.approved_by}")
    lines.append("")
    for data in events:
        try:
            event = event_from_dict(data)
        except (AttributeError, KeyError, TypeError, ValueError):  # a row of another version's shape: the rest still reads
            log.warning("task %s: skipped a stored event of an unknown shape (%s)", task.id, data.get("type"))
            continue
        text = _plan(event) if isinstance(event, PlanDecided) else render_event(event)
        if text:
            lines.append(text)
    return "\n".join(lines) + "\n"


def _plan(event: PlanDecided) -> str:
    after = f"; continued in task #{event.next_task}" if event.next_task else ""
    return f"[plan {event.decision} by {event.by}{after}]"
