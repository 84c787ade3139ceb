"""The Slack sink: one status message per task, edited in place, and a final reply.

With streaming (stream.py; SLACKBOT_SLACK_UI), a task that gets a stream shows its progress
there instead: its status message is not edited while it streams (it keeps its Stop button), gets
its final state at the end, and the final reply is the stream's stop call. Every other task, and
every task in classic mode, takes the path below unchanged.

With streaming on (auto or stream), a task also marks its thread's agent session processing while
it works (sessions.py), so Slack shows its own Stop: its status message then drops our Stop button
(it keeps it when the session call fails), and the session goes active when the task ends.

It runs in the process holding the Slack output lease and sees every process's events from the
database. State per task lives while the task does; finished tasks are remembered (a bounded
number) only so that late events cannot bring a final status back to life."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from ..protocol import (
    AgentMessage, CommandExecution, Event, ItemCompleted, ItemStarted, PlanDecided, TaskFinished, TaskProgress,
    TaskQueued, TaskRef, ThreadStarted, TodoList, TurnStarted, UserMessage,
)
from ..store import Store
from .blocks import StatusState, final_blocks, notice_blocks, status_blocks
from .pacing import Poster
from .plan_view import decided_blocks
from .sessions import ACTIVE, CLOSED, Sessions, without_stop
from .stream import StreamSink
from .stream_view import answer_chunks, event_chunks, stop_blocks
from .updater import StatusUpdater
from .wording import NOTHING_TO_REPORT, auto_push_text, left_out_text, run_headline

log = logging.getLogger(__name__)
TICK_S = 5.0
FINISHED_KEPT = 2000
REFRESH_AFTER_S = 15.0  # a working status shows its clock moving at least this often


@dataclass
class _View:
    ref: TaskRef
    status_ts: str
    state: StatusState
    started: float | None = None
    last_submit: float = field(default_factory=time.monotonic)
    mode: str = ""  # with streaming: "" (not decided yet), "stream" or "classic"
    session: str = ""  # its agent session: "" (not asked yet), "processing" (Slack's Stop shows) or "none"


class SlackRenderer:
    def __init__(self, client: AsyncWebClient, updater: StatusUpdater, store: Store, *, max_file: str = "",
                 streams: StreamSink | None = None) -> None:
        self.client = client
        self.max_file = max_file  # SLACKBOT_MAX_FILE as written, for the left-out note
        self.updater = updater
        self.store = store
        self.poster = Poster(client)
        self._views: dict[int, _View] = {}
        # Late events must not bring a final status back to life: the latest finished ids.
        self._finished: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._posting: dict[int, asyncio.Lock] = {}
        # Plans awaiting a decision: where each was posted (a reply's revision updates it; bounded).
        self._plans: collections.OrderedDict[int, tuple[str, str]] = collections.OrderedDict()
        self.streams = streams
        self.sessions: Sessions | None = None
        if streams is not None:
            streams.on_lost = self._stream_lost
            self.sessions = Sessions(client, mode=streams.mode, team_id=streams.team_id)
            streams.keep_processing = self.sessions.processing

    def owns(self, ref: TaskRef) -> bool:
        return ref.channel != "cli"

    async def handle(self, ref: TaskRef, event: Event) -> None:
        if isinstance(event, PlanDecided):  # (after the plan's task ended)
            if self.owns(ref):
                await self._plan_decided(ref, event)
            return
        if not self.owns(ref) or (ref.task_id in self._finished and not isinstance(event, TaskFinished)):
            return
        view = self._views.get(ref.task_id)
        if view is None:
            view = self._views[ref.task_id] = _View(ref, ref.status_ts, StatusState(ref.task_id))
        st = view.state
        was = st.state
        if isinstance(event, TaskQueued):
            st.state, st.position = "queued", event.position
        elif isinstance(event, (ThreadStarted, TurnStarted)):
            self._working(view)
        elif isinstance(event, TaskProgress):
            self._working(view)
            st.phase = event.text
        elif isinstance(event, ItemStarted) and isinstance(event.item, CommandExecution):
            self._working(view)
            st.phase, st.command = "Running", event.item.command
        elif isinstance(event, ItemCompleted):
            self._item_done(view, event)
        elif isinstance(event, TaskFinished):
            await self._finish(view, event)
            return
        else:
            return
        native = await self._session(view)
        if self.streams is not None and view.mode != "classic" and await self._streamed(view, event, was, native):
            return
        await self._show(view, force=native)

    async def _session(self, view: _View) -> bool:
        """Marks the session processing when the task starts working; True when that just made
        Slack's own Stop appear (the status message then shows once more, without ours)."""
        if self.sessions is None or view.session or view.state.state != "working":
            return False
        view.session = "processing" if await self.sessions.start(view.ref) else "none"
        return view.session == "processing"

    async def _streamed(self, view: _View, event: Event, was: str, native: bool = False) -> bool:
        """True when the task streams (this event went to its stream, or started it)."""
        assert self.streams is not None
        if view.mode == "stream":
            self.streams.add(view.ref.task_id, event_chunks(event))
            return True
        if view.state.state != "working":
            return False  # (queued: decided when it starts working)
        view.mode = "stream" if await self.streams.open(view.ref, event_chunks(event)) else "classic"
        if view.mode == "stream" and (was == "queued" or native):
            await self._show(view, force=True)  # "Queued", or our Stop: once more, now working
        return view.mode == "stream"

    def _stream_lost(self, task_id: int) -> None:
        """A stream that could not go on: the task continues on its status message."""
        view = self._views.get(task_id)
        if view is not None and view.mode == "stream":
            view.mode = "classic"
            if view.status_ts:
                self.updater.submit(view.ref.channel, view.status_ts, *self._status(view))

    def _working(self, view: _View) -> None:
        if view.state.state != "working":
            view.state.state = "working"
            view.started = view.started or time.monotonic()

    def _item_done(self, view: _View, event: ItemCompleted) -> None:
        st, item = view.state, event.item
        if isinstance(item, CommandExecution):
            st.commands += 1
            st.phase = "Ran" if item.exit_code == 0 else f"Failed (exit {item.exit_code})"
        elif isinstance(item, TodoList):
            st.plan = item.items
        elif isinstance(item, UserMessage):
            st.note = "↪ got your message"
        elif isinstance(item, AgentMessage):
            st.phase, st.command = "Thinking", ""

    async def _finish(self, view: _View, event: TaskFinished) -> None:
        try:
            await self._finish_messages(view, event)
        finally:  # the session leaves processing whatever happened to the messages
            if self.sessions is not None:
                await self.sessions.end(view.ref.task_id, CLOSED if event.quiet == "suppress" else ACTIVE)
                if event.status == "interrupted" and not view.session:  # marked by a process gone since
                    await self.sessions.settle(view.ref.channel, view.ref.thread_ts)

    async def _finish_messages(self, view: _View, event: TaskFinished) -> None:
        streamed = view.mode == "stream"
        st = view.state
        st.state, st.error, st.stopped_by = event.status, event.error, event.stopped_by
        st.elapsed_s, st.files = event.elapsed_s, event.files
        if event.quiet != "suppress":  # (a suppressed run's status message is deleted instead)
            await self._show(view, final=True)
        ref = view.ref
        self._views.pop(ref.task_id, None)
        self._posting.pop(ref.task_id, None)
        self._finished[ref.task_id] = None
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
        if event.quiet:
            if streamed and self.streams is not None:
                await self.streams.close(ref.task_id, ok=True, chunks=[], blocks=None, delete=event.quiet == "suppress")
            await self._quiet(ref, view.status_ts, event)
            return
        # Posted once, also when another process took the output over meanwhile: the message and
        # each attachment are recorded as each goes out, so a front dying during an upload leaves
        # its successor only what was not out yet (and a failed post is tried again by a successor).
        key = f"final:{ref.task_id}"
        note = "\n".join(n for n in (
            left_out_text(event.left_out, self.max_file),
            auto_push_text(event.push, event.branch, event.pr_url, event.push_detail, event.repo)) if n)
        text, blocks, attach = final_blocks(
            task_id=ref.task_id, state=event.status, answer=event.answer, error=event.error,
            files=event.files, elapsed_s=event.elapsed_s, usage=event.usage, stopped_by=event.stopped_by,
            branch=event.branch, pushable=event.pushable, pr_url=event.pr_url, note=note, plan=event.plan)
        async def message() -> None:
            resp = await self.poster.post(channel=ref.channel, thread_ts=ref.thread_ts, text=text, blocks=blocks,
                                          unfurl_links=False)
            self._plan_posted(ref, event, str(resp.get("ts", "")))

        if streamed and self.streams is not None:
            streams, classic, sessions = self.streams, message, self.sessions
            chunks, attach = answer_chunks(event.answer)
            # The stop carries the session's end too (one call less), when the session is ours.
            session_status = ACTIVE if sessions is not None and sessions.processing(ref.task_id) else None
            closing = stop_blocks(
                attach, task_id=ref.task_id, state=event.status, error=event.error, files=event.files,
                elapsed_s=event.elapsed_s, usage=event.usage, stopped_by=event.stopped_by, branch=event.branch,
                pushable=event.pushable, pr_url=event.pr_url, note=note, plan=event.plan)

            async def message() -> None:  # the stream's stop carries the final blocks; else the classic reply
                self._plan_posted(ref, event, streams.ts_of(ref.task_id))
                if not await streams.close(ref.task_id, ok=event.status == "done", chunks=chunks, blocks=closing,
                                           session_status=session_status):
                    await classic()
                elif session_status and sessions is not None:
                    sessions.ended(ref.task_id)

        async def answer() -> None:
            await self.client.files_upload_v2(
                channel=ref.channel, thread_ts=ref.thread_ts, content=event.answer,
                filename=f"task-{ref.task_id}-answer.md", title=f"Answer of task #{ref.task_id}")

        async def patch() -> None:
            content = await self.store.patch(ref.task_id)
            if content:
                await self.client.files_upload_v2(
                    channel=ref.channel, thread_ts=ref.thread_ts, content=content,
                    filename=f"task-{ref.task_id}.patch", title=f"Changes of task #{ref.task_id}")

        try:
            await self._once(key, message)
            if attach:
                await self._once(f"{key}:answer", answer)
            if event.has_patch:
                await self._once(f"{key}:patch", patch)
        except Exception:
            log.exception("could not post the result of task %s", ref.task_id)

    def _plan_posted(self, ref: TaskRef, event: TaskFinished, ts: str) -> None:
        if event.plan and ts:
            self._plans[ref.task_id] = (ref.channel, ts)
            while len(self._plans) > FINISHED_KEPT:
                self._plans.popitem(last=False)

    async def _plan_decided(self, ref: TaskRef, event: PlanDecided) -> None:
        """The plan's message shows the decision, without its buttons (the pressed message, or the
        one this process posted: a reply's revision presses nothing)."""
        posted = self._plans.pop(ref.task_id, None)
        ts = event.message_ts or (posted[1] if posted else "")
        if not ts:
            return
        finished = await self.store.last_event(ref.task_id, "task.finished") or {}
        text, blocks = decided_blocks(ref.task_id, str(finished.get("answer", "")), event.decision, event.by,
                                      event.next_task)
        self.updater.submit(ref.channel, ts, text, blocks, final=True)

    async def _quiet(self, ref: TaskRef, status_ts: str, event: TaskFinished) -> None:
        """An automation's run that found nothing: one line, or (notify: only on changes) gone."""
        key = f"final:{ref.task_id}"

        async def line() -> None:
            fallback, blocks = notice_blocks(NOTHING_TO_REPORT)
            await self.poster.post(channel=ref.channel, thread_ts=ref.thread_ts, text=fallback, blocks=blocks)
            if event.run_number:
                fallback, blocks = notice_blocks(run_headline(event.automation, event.run_number, "nothing to report"))
                await self.client.chat_update(channel=ref.channel, ts=ref.thread_ts, text=fallback, blocks=blocks)

        async def remove() -> None:
            for ts in (status_ts, ref.thread_ts if event.run_number else ""):
                if ts:
                    await self.client.chat_delete(channel=ref.channel, ts=ts)
        try:
            await self._once(key, remove if event.quiet == "suppress" else line)
        except Exception:
            log.exception("could not show the quiet end of task %s", ref.task_id)

    async def _once(self, key: str, send: Callable[[], Awaitable[None]]) -> None:
        """Sends unless recorded as sent, and records it right after."""
        if not await self.store.seen(key):
            await send()
            await self.store.first_time(key)

    async def _show(self, view: _View, *, final: bool = False, force: bool = False) -> None:
        if view.mode == "stream" and not (final or force):
            return  # the stream shows the progress
        st = view.state
        if view.started is not None and not final:
            st.elapsed_s = time.monotonic() - view.started
        text, blocks = self._status(view)
        view.last_submit = time.monotonic()
        if not view.status_ts:
            await self._post_status(view, text, blocks)
            return
        self.updater.submit(view.ref.channel, view.status_ts, text, blocks, final=final)

    def _status(self, view: _View) -> tuple[str, list]:
        """The status message; without our Stop while Slack shows its own (the session is processing)."""
        text, blocks = status_blocks(view.state)
        if view.session == "processing":
            blocks = without_stop(view.ref.task_id, blocks)
        return text, blocks

    async def _post_status(self, view: _View, text: str, blocks: list) -> None:
        """A task with no status message yet (its first post failed): post one now."""
        lock = self._posting.setdefault(view.ref.task_id, asyncio.Lock())
        async with lock:
            if view.status_ts:
                self.updater.submit(view.ref.channel, view.status_ts, text, blocks, final=view.state.final)
                return
            try:
                resp = await self.poster.post(channel=view.ref.channel, thread_ts=view.ref.thread_ts,
                                                          text=text, blocks=blocks)
                view.status_ts = resp["ts"]
            except Exception:
                log.exception("could not post the status of task %s", view.ref.task_id)

    async def tick(self) -> None:
        """Keeps the elapsed time of working tasks moving; the updater's budget bounds the cost."""
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for view in list(self._views.values()):
                if view.state.state == "working" and view.mode != "stream" and now - view.last_submit >= REFRESH_AFTER_S:
                    await self._show(view)
