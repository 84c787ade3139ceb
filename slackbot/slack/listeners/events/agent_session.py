"""Slack's own Stop on an agent session (`agent_session_stopped`): it stops the thread's task
exactly as our Stop button does (stopping.py: the same check, the same answer to the presser).

Slack has already stopped the streams it lists when the event reaches us. A person who may not
stop the task is told so, and the task goes on in a new stream with a note; the session stays
processing (Slack leaves its status to the app). With no working task left, the session goes
active. A retried delivery (same event id) is ignored."""

from __future__ import annotations

import logging
from typing import Any

from ....runs.states import ACTIVE
from ...deps import Deps
from ...stopping import StopAnswer, stop, tell

log = logging.getLogger(__name__)
NOTE = "_Stop was pressed by someone who may not stop this task (its requester or an admin can): it goes on._"


def handler(deps: Deps):
    async def agent_session_stopped(body: dict[str, Any], event: dict[str, Any]) -> None:
        channel, thread_ts, user = event.get("channel") or "", event.get("thread_ts") or "", event.get("user") or ""
        if not (channel and thread_ts and user):
            return
        if body.get("event_id") and not await deps.store.first_time(f"event:{body['event_id']}"):
            return  # a retry
        streams, sessions = deps.renderer.streams, deps.renderer.sessions
        task_id = await task_in(deps, channel, thread_ts)
        if task_id is None:
            if sessions is not None:
                await sessions.settle(channel, thread_ts)
            return
        # Held back first: an append meeting the stopped stream would start a new one meanwhile.
        halted = streams is not None and streams.halt(task_id, [str(t) for t in event.get("streaming_message_ts") or []])
        try:
            answer = await stop(deps, str(task_id), user)
        except Exception:
            log.exception("could not stop task %s for Slack's Stop", task_id)
            answer = StopAnswer(f"Sorry, I could not stop task #{task_id}.")
        await tell(deps, channel=channel, user=user, thread_ts=thread_ts, text=answer.text)
        if answer.stopped:
            return  # its end closes the session (renderer.py)
        if halted and streams is not None:
            await streams.resume(task_id, NOTE if answer.refused else "")
        if sessions is not None:
            await sessions.again(task_id)
    return agent_session_stopped


async def task_in(deps: Deps, channel: str, thread_ts: str) -> int | None:
    """The thread's working (or waiting) task; None when it has none, or is no agent thread."""
    thread = await deps.store.thread_for(channel, thread_ts)
    if thread is None or thread.id is None:
        return None
    working = [t.id for t in await deps.store.thread_tasks(thread.id) if t.status in ACTIVE]
    return working[-1] if working else None
