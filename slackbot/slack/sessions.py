"""Slack's agent sessions (agents.sessions.setStatus) for tasks' threads.

While a task works its thread's session is `processing`, so Slack shows its own Stop beside the
work (pressing it sends `agent_session_stopped`, listeners/events/agent_session.py); when the task
ends the session goes `active` (the thread takes follow-ups), or `closed` for an automation's run
that removed its messages. Every call is best-effort: a failure is logged and the task goes on
with our own Stop button. A workspace that refuses sessions (the feature off, the method unknown,
a missing scope) is remembered and asked no more. See docs/slack.md."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from ..protocol import TaskRef
from .blocks import Blocks, short
from .stream import REFUSALS, WINDOW_S, Window, error_code
from .stream_view import neutral

log = logging.getLogger(__name__)
PROCESSING, ACTIVE, CLOSED = "processing", "active", "closed"
SESSION_REFUSALS = REFUSALS | {"feature_disabled", "is_bot"}
TITLE_LIMIT = 200  # documented: "max 200 characters"
# agents.sessions.setStatus is Tier 3 (50+ per minute). Starts use three quarters of our budget;
# the rest is kept for ends, which wait for room (a session left processing shows a dead Stop).
CALLS_PER_MIN = 40
END_WAIT_S = 30.0
UNSUBSCRIBED = "missing_agent_session_stopped_event_subscription"
ASKED_KEPT = 5000


class Sessions:
    def __init__(self, client: AsyncWebClient, *, mode: str, team_id: str, calls_per_min: int = CALLS_PER_MIN) -> None:
        self.client = client
        self.mode = mode  # auto | stream | classic (no sessions)
        self.team_id = team_id
        self.calls_per_min = max(2, calls_per_min)
        self.refused: dict[str, str] = {}  # team -> Slack's answer
        self._open: dict[int, TaskRef] = {}  # tasks whose session we marked processing
        self._starting = 0  # start calls waiting for Slack's answer
        self._calls = Window()
        self._warned = False
        self._asked: dict[str, float] = {}  # calls a press of Slack's Stop made (again, settle) -> when

    def active(self) -> bool:
        return self.mode != "classic" and self.team_id not in self.refused

    def processing(self, task_id: int) -> bool:
        """Whether the task's thread shows Slack's own Stop (its session is processing)."""
        return task_id in self._open

    async def start(self, ref: TaskRef) -> bool:
        """Marks the task's session processing; False when it was not (the task keeps our Stop)."""
        if not self.active() or ref.task_id in self._open:
            return ref.task_id in self._open
        # Room for this start and for the end of every open session (this one's too): ends cannot be
        # put off for long, so a start that could not be ended within the budget is not made.
        limit = self.calls_per_min - self.calls_per_min // 4 - len(self._open) - self._starting - 1
        if limit <= 0 or self._calls.room(limit) > 0:
            log.info("session calls are spent for this minute: task %s keeps its own Stop", ref.task_id)
            return False
        self._calls.take()
        title = short(neutral(ref.prompt), TITLE_LIMIT - 12)  # the request's words: no Slack markup
        self._starting += 1  # (counted as open while Slack answers: starts come in bursts)
        try:
            made = await self._set(ref, PROCESSING, title=f"#{ref.task_id} {title}".strip(),
                                   initiator_user_id=ref.requester)
        finally:
            self._starting -= 1
        if made:
            self._open[ref.task_id] = ref
        return made

    async def again(self, task_id: int) -> None:
        """Processing once more (after a Stop this person may not press: Slack leaves the status to us).
        Pressing costs the presser nothing: this is skipped (the status is still processing, as
        Slack left it) when this task asked within the last minute or the budget has no room."""
        ref = self._open.get(task_id)
        if ref is not None and self._spare(f"again:{task_id}"):
            await self._set(ref, PROCESSING)

    def ended(self, task_id: int) -> None:
        """The session left processing another way (a stream's stop carried its status)."""
        self._open.pop(task_id, None)

    async def end(self, task_id: int, status: str = ACTIVE) -> None:
        ref = self._open.pop(task_id, None)
        if ref is not None and await self._room(ref.task_id):
            await self._set(ref, status)

    async def settle(self, channel: str, thread_ts: str, *, pressed: bool = False) -> None:
        """An agent thread with no working task (one that ended, or a restart lost track of it):
        Slack leaves the status to us, so it goes active. `pressed`: asked by a press of Slack's
        Stop, which anyone can repeat, so within `_spare`'s limits; else (a task's end) it waits
        for room as ends do."""
        if not self.active():
            return
        if pressed and not self._spare(f"settle:{channel}:{thread_ts}"):
            return
        if not pressed and not await self._room(0):
            return
        await self._set(TaskRef(0, 0, channel, thread_ts, ""), ACTIVE)

    async def _room(self, task_id: int) -> bool:
        """Waits for room in the budget (ends have it kept for them); False, logged, when none came."""
        if await self._calls.wait(self.calls_per_min, END_WAIT_S):
            return True
        log.warning("session calls are spent: the session of task %s is left as it is", task_id)
        return False

    def _spare(self, key: str) -> bool:
        """Whether a call people can cause at will (a press of Slack's Stop) may be made: at most once
        a minute per `key`, and only within the budget starts use (the rest stays for tasks' ends)."""
        now = time.monotonic()
        if now - self._asked.get(key, -WINDOW_S) < WINDOW_S:
            return False
        limit = self.calls_per_min - self.calls_per_min // 4 - len(self._open) - self._starting
        if limit <= 0 or self._calls.room(limit) > 0:
            log.info("session calls are spent for this minute: %s skipped", key.split(":")[0])
            return False
        if len(self._asked) >= ASKED_KEPT:
            self._asked = {k: t for k, t in self._asked.items() if now - t < WINDOW_S}
        self._asked[key] = now
        self._calls.take()
        return True

    async def _set(self, ref: TaskRef, status: str, **extra: Any) -> bool:
        try:
            resp = await self.client.agents_sessions_setStatus(
                channel_id=ref.channel, thread_ts=ref.thread_ts, status=status, **{k: v for k, v in extra.items() if v})
        except Exception as exc:
            code = error_code(exc)
            if code in SESSION_REFUSALS:
                if self.team_id not in self.refused:
                    log.info("Slack has no agent sessions in workspace %s (%s): tasks keep their own Stop",
                             self.team_id or "?", code)
                self.refused[self.team_id] = code
            else:
                log.warning("agents.sessions.setStatus %s failed for task %s: %s", status, ref.task_id, code)
            return False
        if UNSUBSCRIBED in str(resp.get("warning") or "") and not self._warned:
            self._warned = True
            log.warning("Slack shows no Stop for sessions: the app is not subscribed to agent_session_stopped "
                        "(see manifest.yml)")
        return True


def without_stop(task_id: int, blocks: Blocks) -> Blocks:
    """A status message's blocks without our Stop button (Slack shows its own)."""
    return [b for b in blocks if not (b.get("type") == "actions" and b.get("block_id") == f"task_{task_id}")]
