"""Slack's own Stop on an agent session (`agent_session_stopped`): it stops the thread's task
exactly as our Stop button does (stopping.py: the same check, the same answer to the presser).

Slack has already stopped the streams it lists when the event reaches us. A person who may not
stop the task is told so, and the task goes on in a new stream with a note; the session stays
processing (Slack leaves its status to the app). With no working task left, the session goes
active. A retried delivery (same event id) is ignored.

Anyone in the thread can press Stop again and again, so a press costs little: an event that is
not about an agent thread, or whose fields are not strings, does nothing; a task's stream goes on
at most once a minute (Resumes), and the session calls a press makes are budgeted (sessions.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ....runs.states import ACTIVE
from ...deps import Deps
from ...stopping import StopAnswer, stop, tell
from ...stream import WINDOW_S

log = logging.getLogger(__name__)
NOTE = "_Stop was pressed by someone who may not stop this task (its requester or an admin can): it goes on._"
STREAMS_READ = 100  # Slack lists the app's streams in one thread: a few
RESUME_EVERY_S = WINDOW_S  # a task's stream goes on after Slack's Stop at most once a minute (as sessions.py asks)
KEPT = 5000


def handler(deps: Deps):
    async def agent_session_stopped(body: dict[str, Any], event: dict[str, Any]) -> None:
        channel, thread_ts, user = (_text(event.get(k)) for k in ("channel", "thread_ts", "user"))
        if not (channel and thread_ts and user):
            log.info("agent_session_stopped without a channel, thread or user: ignored")
            return
        if body.get("event_id") and not await deps.store.first_time(f"event:{body['event_id']}"):
            return  # a retry
        streams, sessions = deps.renderer.streams, deps.renderer.sessions
        thread = await deps.store.thread_for(channel, thread_ts)
        if thread is None or thread.id is None:
            return  # no agent thread: no session of ours is there, and none is made
        task_id = await task_in(deps, thread.id)
        if task_id is None:
            if sessions is not None:
                await sessions.settle(channel, thread_ts, pressed=True)
            return
        # Held back first: an append meeting the stopped stream would start a new one meanwhile.
        halted = streams is not None and streams.halt(task_id, _listed(event.get("streaming_message_ts")))
        try:
            answer = await stop(deps, str(task_id), user)
        except Exception:
            log.exception("could not stop task %s for Slack's Stop", task_id)
            answer = StopAnswer(f"Sorry, I could not stop task #{task_id}.")
        await tell(deps, channel=channel, user=user, thread_ts=thread_ts, text=answer.text)
        if answer.stopped:
            return  # its end closes the session (renderer.py)
        if halted and streams is not None:
            await resumes.go_on(task_id, NOTE if answer.refused else "")
        if sessions is not None:
            await sessions.again(task_id)

    resumes = Resumes(deps)
    return agent_session_stopped


class Resumes:
    """A halted stream goes on in a new one, at most once a minute per task: pressing Slack's Stop
    again and again (each press ends the stream) costs the workspace one stream start (Tier 2) and
    the thread one note a minute, not one each; a press within the minute has its stream go on
    when the minute is over."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._last: dict[int, float] = {}  # task -> when its stream last went on after a Stop
        self._later: dict[int, asyncio.Task[None]] = {}

    async def go_on(self, task_id: int, note: str) -> None:
        now = time.monotonic()
        wait = self._last.get(task_id, -RESUME_EVERY_S) + RESUME_EVERY_S - now
        if wait <= 0:
            await self._resume(task_id, note)
        elif task_id not in self._later:
            self._later[task_id] = asyncio.create_task(self._deferred(task_id, note))

    async def _deferred(self, task_id: int, note: str) -> None:
        try:
            while (wait := self._last.get(task_id, 0.0) + RESUME_EVERY_S - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await self._resume(task_id, note)
        except Exception:
            log.exception("task %s could not go on after Slack's Stop", task_id)
        finally:
            self._later.pop(task_id, None)

    async def _resume(self, task_id: int, note: str) -> None:
        now = time.monotonic()
        if len(self._last) >= KEPT:
            self._last = {t: at for t, at in self._last.items() if now - at < RESUME_EVERY_S}
        self._last[task_id] = now
        streams, sessions = self.deps.renderer.streams, self.deps.renderer.sessions
        if streams is not None:
            await streams.resume(task_id, note)  # (nothing when the task ended or its stream went on)
        if sessions is not None:
            await sessions.again(task_id)  # (a press within the minute skipped it)
        self._last[task_id] = time.monotonic()  # (again: the minute counts from these calls' end)


async def task_in(deps: Deps, thread_id: int) -> int | None:
    """The agent thread's working (or waiting) task; None when it has none."""
    working = [t.id for t in await deps.store.thread_tasks(thread_id) if t.status in ACTIVE]
    return working[-1] if working else None


def _text(value: Any) -> str:
    """A field Slack sends as a string; anything else (a forged or odd event) counts as missing."""
    return value if isinstance(value, str) and len(value) <= 64 else ""


def _listed(value: Any) -> list[str]:
    """`streaming_message_ts`: a list of timestamps; anything else lists none."""
    return [t for t in value[:STREAMS_READ] if isinstance(t, str)] if isinstance(value, list) else []
