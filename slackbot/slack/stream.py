"""Live progress through Slack's native streaming (chat.startStream / appendStream / stopStream).

One stream per task, in its thread. Appends are coalesced: a stream gets at most one append every
`flush_s`, carrying everything that changed meanwhile, under one workspace-wide budget per minute.
Starts and stops sit in a low rate tier (each method its own budget): a task starts streaming only
while three quarters of the starts' budget is free (the rest is kept for roll-overs), else it shows
the classic status message. A stream older than `max_open_s` (Slack ends streams after a few minutes) is stopped and
the task continues in a new one carrying the plan's state. In `auto`, a workspace where Slack
refuses streaming (the method unknown there, not allowed, a missing scope) is remembered: its tasks
use the classic message from then on, and the fall-back is logged once, never shown.
See docs/slack.md for what this relies on."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from ..protocol import TaskRef
from .stream_view import Chunk, merge, plan_title, settle

log = logging.getLogger(__name__)
WINDOW_S = 61.0  # a minute, plus a margin for clock skew
STOP_WAIT_S = 30.0  # a stop or roll-over waits this long at most for room in the budget
# Answers meaning "not in this workspace": remembered in auto. Anything else fails one task only.
REFUSALS = frozenset({
    "unknown_method", "not_allowed", "feature_not_enabled", "missing_scope", "not_allowed_token_type",
    "method_deprecated", "deprecated_endpoint", "access_denied", "enterprise_is_restricted", "no_permission",
})
EXPIRED = frozenset({"message_not_in_streaming_state", "message_not_found"})


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    code = response.get("error") if response is not None and hasattr(response, "get") else None
    return str(code or exc.__class__.__name__)


class Window:
    """Calls made in the last minute."""

    def __init__(self) -> None:
        self._sent: collections.deque[float] = collections.deque()

    def room(self, limit: int) -> float:
        """0 when one more call stays within `limit` per minute, else how long until it does."""
        now = time.monotonic()
        while self._sent and now - self._sent[0] >= WINDOW_S:
            self._sent.popleft()
        if len(self._sent) < limit:
            return 0.0
        return WINDOW_S - (now - self._sent[len(self._sent) - limit]) + 0.01

    def take(self) -> None:
        self._sent.append(time.monotonic())

    async def wait(self, limit: int, most_s: float) -> bool:
        """Waits up to `most_s` for room and takes it; False (nothing taken) when none came: a call
        over the budget would only earn a 429 for every task."""
        deadline = time.monotonic() + most_s
        while (room := self.room(limit)) > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(room, max(0.01, deadline - time.monotonic())))
        self.take()
        return True


@dataclass
class _Stream:
    ref: TaskRef
    ts: str
    opened: float
    last_sent: float
    pending: list[Chunk] = field(default_factory=list)
    steps: dict[str, Chunk] = field(default_factory=dict)  # plan steps and running commands, for a roll-over
    all_ts: list[str] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lost: bool = False
    halted: bool = False  # Slack's Stop ended it: nothing is sent until the task stops or resumes


class StreamSink:
    def __init__(self, client: AsyncWebClient, *, mode: str, team_id: str, max_open_s: float = 240.0,
                 flush_s: float = 3.0, starts_per_min: int = 16, appends_per_min: int = 80) -> None:
        self.client = client
        self.mode = mode  # auto | stream | classic
        self.team_id = team_id
        self.max_open_s = max_open_s
        self.flush_s = flush_s
        self.starts_per_min = starts_per_min
        self.appends_per_min = max(1, appends_per_min)
        self.refused: dict[str, str] = {}  # team -> Slack's answer, in auto
        self.on_lost: Callable[[int], None] = lambda task_id: None  # a stream gone for good mid-task
        # Whether the task's agent session is processing: a roll-over's stop must keep it so.
        self.keep_processing: Callable[[int], bool] = lambda task_id: False
        self._streams: dict[int, _Stream] = {}
        self._starts = Window()
        self._stops = Window()
        self._appends = Window()
        self._wake = asyncio.Event()

    def active(self) -> bool:
        return self.mode == "stream" or (self.mode == "auto" and self.team_id not in self.refused)

    def streaming(self, task_id: int) -> bool:
        return task_id in self._streams

    def ts_of(self, task_id: int) -> str:
        """The task's current stream message ("" when none): where its stop's blocks land."""
        stream = self._streams.get(task_id)
        return stream.ts if stream is not None else ""

    async def open(self, ref: TaskRef, chunks: list[Chunk]) -> bool:
        """Starts the task's stream with its first chunks; False when the task shows the classic
        message instead (refused, failed, or the start budget spent)."""
        if not self.active() or self.starts_per_min < 2:
            return False
        if self._starts.room(self.starts_per_min - max(1, self.starts_per_min // 4)) > 0:
            log.info("stream starts are spent for this minute: task %s uses the status message", ref.task_id)
            return False
        self._starts.take()
        try:
            ts = await self._start(ref, merge([plan_title(ref.task_id)], chunks))
        except Exception as exc:
            self._refusal(ref, exc)
            return False
        now = time.monotonic()
        stream = _Stream(ref, ts, now, now, all_ts=[ts])
        self._note(stream, chunks)
        self._streams[ref.task_id] = stream
        self._wake.set()
        return True

    def add(self, task_id: int, chunks: list[Chunk]) -> None:
        stream = self._streams.get(task_id)
        if stream is None or not chunks:
            return
        stream.pending = merge(stream.pending, chunks)
        self._note(stream, chunks)
        self._wake.set()

    def halt(self, task_id: int, stopped: list[str]) -> bool:
        """Slack's own Stop ended these streams (agent_session_stopped): the task's stream, when it
        is one of them, waits (no append meets a stopped stream, no roll-over starts) until the
        task stops or `resume` continues it. True when the task's stream was halted."""
        stream = self._streams.get(task_id)
        if stream is None or stream.ts not in stopped:
            return False
        stream.halted = True
        return True

    async def resume(self, task_id: int, note: str = "") -> bool:
        """A halted stream's task goes on (the Stop was refused): in a new stream, with `note`."""
        stream = self._streams.get(task_id)
        if stream is None or not stream.halted:
            return False
        async with stream.lock:
            stream.halted = False
            if note:
                stream.pending = merge([{"type": "markdown_text", "text": note + "\n\n"}], stream.pending)
            if await self._roll(stream, stop_old=False):
                return True
        self._lose(task_id, stream)
        return False

    async def close(self, task_id: int, *, ok: bool, chunks: list[Chunk], blocks: list[dict] | None,
                    delete: bool = False, session_status: str | None = None) -> bool:
        """Stops the task's stream with its last chunks and the final blocks (and, given, the
        agent session's status); False when that could not be done (the caller posts the classic
        final message, so the end is never silent; a stream Slack's Stop ended gets that too)."""
        stream = self._streams.pop(task_id, None)
        if stream is None:
            return False
        async with stream.lock:
            if stream.lost:
                return False
            if stream.halted:  # Slack's Stop ended it: nothing more goes there
                if delete:
                    await self._delete(stream)
                return False
            last = merge(merge(stream.pending, settle(stream.steps, ok)), chunks)
            stream.pending = []
            if time.monotonic() - stream.opened >= self.max_open_s and not await self._roll(stream):
                return False
            failed = await self._stop(stream, chunks=last, blocks=blocks, session_status=session_status)
            if failed in EXPIRED and await self._roll(stream, stop_old=False):  # Slack ended it early
                failed = await self._stop(stream, chunks=last, blocks=blocks, session_status=session_status)
            if delete:
                await self._delete(stream)
            return not failed

    async def _delete(self, stream: _Stream) -> None:
        for ts in stream.all_ts:
            with contextlib.suppress(Exception):
                await self.client.chat_delete(channel=stream.ref.channel, ts=ts)

    async def run(self) -> None:
        """Sends coalesced appends and rolls old streams over; one pass at a time."""
        while True:
            now = time.monotonic()
            wait = self.flush_s
            for task_id, stream in list(self._streams.items()):
                if stream.lock.locked() or stream.lost or stream.halted:
                    continue
                age_left = stream.opened + self.max_open_s - now
                if age_left <= 0:
                    async with stream.lock:
                        if not await self._roll(stream):
                            self._lose(task_id, stream)
                    continue
                wait = min(wait, age_left)
                if not stream.pending:
                    continue
                due = stream.last_sent + self.flush_s - now
                room = self._appends.room(self.appends_per_min)
                if due > 0 or room > 0:
                    wait = min(wait, max(due, room))
                    continue
                await self._append(task_id, stream)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.05)):
                    await self._wake.wait()

    # ---- calls ------------------------------------------------------------------------------

    async def _start(self, ref: TaskRef, chunks: list[Chunk]) -> str:
        # Channel streams name their recipient (the requester, of our workspace); DMs need none.
        resp = await self.client.chat_startStream(
            channel=ref.channel, thread_ts=ref.thread_ts, recipient_user_id=ref.requester,
            recipient_team_id=self.team_id or None, task_display_mode="plan", chunks=chunks)
        return str(resp["ts"])

    async def _append(self, task_id: int, stream: _Stream) -> None:
        async with stream.lock:
            if not stream.pending or task_id not in self._streams or stream.halted:
                return
            chunks, stream.pending = stream.pending, []
            self._appends.take()
            stream.last_sent = time.monotonic()
            try:
                await self.client.chat_appendStream(channel=stream.ref.channel, ts=stream.ts, chunks=chunks)
            except Exception as exc:
                if error_code(exc) not in EXPIRED:
                    log.warning("chat.appendStream failed for task %s: %s", task_id, error_code(exc))
                    return
                # Slack ended the stream early: the task goes on in a new one.
                stream.pending = merge(chunks, stream.pending)
                if not await self._roll(stream, stop_old=False):
                    self._lose(task_id, stream)

    async def _roll(self, stream: _Stream, *, stop_old: bool = True) -> bool:
        """Stops the stream and continues in a new one with the plan's state and what was waiting."""
        if stop_old:  # (a stop leaves the session active unless told otherwise)
            keep = "processing" if self.keep_processing(stream.ref.task_id) else None
            await self._stop(stream, chunks=stream.pending, blocks=None, quiet=True, session_status=keep)
            stream.pending = []
        if not await self._starts.wait(self.starts_per_min, STOP_WAIT_S):
            log.info("stream starts are spent: task %s goes on in its status message", stream.ref.task_id)
            return False
        carry = merge([plan_title(stream.ref.task_id, continued=True)], list(stream.steps.values()))
        try:
            stream.ts = await self._start(stream.ref, merge(carry, stream.pending))
        except Exception as exc:
            log.warning("task %s could not continue in a new stream: %s", stream.ref.task_id, error_code(exc))
            return False
        stream.all_ts.append(stream.ts)
        stream.opened = stream.last_sent = time.monotonic()
        stream.pending = []
        log.info("task %s continues in a new stream", stream.ref.task_id)
        return True

    async def _stop(self, stream: _Stream, *, chunks: list[Chunk], blocks: list[dict] | None,
                    quiet: bool = False, session_status: str | None = None) -> str:
        """Slack's error code, "" when the stream stopped."""
        if not await self._stops.wait(self.starts_per_min, STOP_WAIT_S):
            return "ratelimited"  # (ours: the caller goes on as after any failed stop)
        args: dict[str, Any] = {"channel": stream.ref.channel, "ts": stream.ts}
        if chunks:
            args["chunks"] = chunks
        if blocks:
            args["blocks"] = blocks
        if session_status:
            args["session_status"] = session_status
        try:
            await self.client.chat_stopStream(**args)
            return ""
        except Exception as exc:
            code = error_code(exc)
            if not quiet and code not in EXPIRED:
                log.warning("chat.stopStream failed for task %s: %s", stream.ref.task_id, code)
            return code

    # ---- bookkeeping ------------------------------------------------------------------------

    def _note(self, stream: _Stream, chunks: list[Chunk]) -> None:
        """Remembers the plan's steps and the running commands: a new stream shows them again."""
        for chunk in chunks:
            if chunk.get("type") != "task_update":
                continue
            if chunk["id"].startswith("plan-") or chunk.get("status") == "in_progress":
                stream.steps[chunk["id"]] = chunk
            else:
                stream.steps.pop(chunk["id"], None)

    def _lose(self, task_id: int, stream: _Stream) -> None:
        stream.lost = True
        self._streams.pop(task_id, None)
        self.on_lost(task_id)

    def _refusal(self, ref: TaskRef, exc: Exception) -> None:
        code = error_code(exc)
        if not isinstance(exc, SlackApiError) or code not in REFUSALS:
            log.warning("chat.startStream failed for task %s (%s): it uses the status message", ref.task_id, code)
        elif self.mode == "auto":
            if self.team_id not in self.refused:
                log.info("Slack does not stream in workspace %s (%s): tasks there use the status message",
                         self.team_id or "?", code)
            self.refused[self.team_id] = code
        else:
            log.warning("SLACKBOT_SLACK_UI=stream, but Slack refuses streaming (%s): task %s uses the status "
                        "message", code, ref.task_id)
