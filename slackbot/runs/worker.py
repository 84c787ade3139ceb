"""Runs one claimed task: workspace → sandbox → agent loop → commit → result."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..agent import Agent, AgentLimits, Model
from ..agent.history import repair
from ..agent.prompts import system_prompt
from ..protocol import (
    Event, FileChange, FileChangeEntry, FileStat, ItemCompleted, SandboxProvider, Steer, TaskFinished,
    TaskProgress, TaskRef, ThreadStarted, TurnCompleted, TurnFailed, Usage,
)
from ..repos import Workspaces
from ..settings import Settings
from ..store import AgentThread, Store, Task
from ..store.models import utcnow
from .bus import EventBus

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What a worker needs; built once by the composition root."""

    settings: Settings
    store: Store
    bus: EventBus
    sandboxes: SandboxProvider
    workspaces: Workspaces
    model_for: Callable[[str], Model]


def task_ref(task: Task, thread: AgentThread) -> TaskRef:
    return TaskRef(task_id=task.id, thread_id=thread.id, channel=thread.channel, thread_ts=thread.thread_ts,
                   requester=task.requester, status_ts=task.status_ts, prompt=task.prompt)


def estimate_tokens(message: dict[str, Any]) -> int:
    return len(json.dumps(message)) // 4 + 4


async def execute(ctx: RunContext, task: Task, thread: AgentThread, stop_reason: dict[int, str]) -> None:
    """Runs the task to a final status; never raises except on shutdown cancellation."""
    await TaskRun(ctx, task, thread, stop_reason).run()


class TaskRun:
    def __init__(self, ctx: RunContext, task: Task, thread: AgentThread, stop_reason: dict[int, str]) -> None:
        self.ctx, self.task, self.thread, self.stop_reason = ctx, task, thread, stop_reason
        self.ref = task_ref(task, thread)
        self.started = time.monotonic()
        self.agent: Agent | None = None
        self.sandbox: Any = None
        self.path: Path | None = None
        self.base = ""
        # The agent's turn.completed / turn.failed is held back until the changes are committed,
        # so that file_change lands inside the turn, as in codex's stream.
        self.turn_end: Event | None = None

    async def emit(self, event: Event) -> None:
        await self.ctx.bus.emit(self.ref, event)

    async def run(self) -> None:
        s, task = self.ctx.settings, self.task
        status, error = "failed", ""
        try:
            await self.emit(ThreadStarted(str(self.thread.id)))
            await self._prepare()
            async with asyncio.timeout(s.task_timeout_s):
                async for event in self.agent.run(await _messages(self.ctx, task, self.thread)):
                    if isinstance(event, (TurnCompleted, TurnFailed)):
                        self.turn_end = event
                    else:
                        await self.emit(event)
            status, error = ("failed", self.agent.error) if self.agent.error else ("done", "")
        except asyncio.CancelledError:
            if task.id not in self.stop_reason:  # shutdown: the next start tells the thread
                await self._finish("interrupted", "interrupted by a restart")
                raise
            asyncio.current_task().uncancel()
            status = "stopped"
        except TimeoutError:
            error = f"Timed out after {s.task_timeout_s:g} s (SLACKBOT_TASK_TIMEOUT_S)."
        except Exception as exc:  # every failure ends in a message in the thread
            log.exception("task %s failed", task.id)
            error = str(exc) or exc.__class__.__name__
            if exc.__class__.__module__.startswith(("sqlalchemy", "git", "builtins")):
                error = f"Internal error ({exc.__class__.__name__}): {error}"
        await self._finish(status, error)

    async def _prepare(self) -> None:
        ctx, s = self.ctx, self.ctx.settings
        await self.emit(TaskProgress("Preparing workspace"))
        self.path = await ctx.workspaces.ensure_scratch(self.thread.id)
        if self.thread.workspace != str(self.path):
            await ctx.store.set_workspace(self.thread.id, str(self.path))
        self.base = await ctx.workspaces.head(self.path)
        await self.emit(TaskProgress("Starting sandbox"))
        self.sandbox = await ctx.sandboxes.start(task_id=self.task.id, workspace=self.path, network="off")
        thread_id, task_id = self.thread.id, self.task.id
        self.agent = Agent(
            ctx.model_for(self.task.model or s.model), self.sandbox,
            AgentLimits(s.max_steps, s.command_timeout_s, s.output_limit_chars),
            inbox=lambda: _inbox(ctx, thread_id, task_id),
            record=lambda m: ctx.store.add_history(thread_id, task_id, m, estimate_tokens(m)),
            requester=self.task.requester)

    async def _finish(self, status: str, error: str) -> None:
        ctx, task = self.ctx, self.task
        if self.sandbox is not None:
            try:
                await self.sandbox.close()
            except Exception:
                log.exception("could not remove the sandbox of task %s", task.id)
        files: tuple[FileStat, ...] = ()
        if self.path is not None and self.base:
            try:
                result = await ctx.workspaces.commit(self.path, self.base,
                                                     f"slackbot task #{task.id}: {task.prompt[:60]}")
                files = result.files
            except Exception:
                log.exception("could not commit the workspace of task %s", task.id)
        if files:
            changes = tuple(FileChangeEntry(f.path, f.kind) for f in files)
            await self.emit(ItemCompleted(FileChange(f"task_{task.id}_files", changes)))
        usage = self.agent.usage if self.agent else Usage()
        if status == "done":
            await self.emit(self.turn_end or TurnCompleted(usage))
        elif status != "stopped":
            await self.emit(TurnFailed(error or "stopped"))
        answer = self.agent.answer if self.agent else ""
        elapsed = time.monotonic() - self.started
        stopped_by = self.stop_reason.get(task.id, "")
        await ctx.store.update_task(
            task.id, status=status, error=error[:2000], answer=answer, finished_at=utcnow(),
            stopped_by=stopped_by, input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens, output_tokens=usage.output_tokens)
        await self.emit(TaskFinished(status=status, answer=answer, error=error, files=files,
                                     elapsed_s=elapsed, usage=usage, stopped_by=stopped_by))


async def _messages(ctx: RunContext, task: Task, thread: AgentThread) -> list[dict[str, Any]]:
    """System prompt + the thread's stored history + this task's request (recorded)."""
    rows = await ctx.store.history(thread.id)
    messages = [{"role": "system", "content": system_prompt()}]
    messages += repair([json.loads(r.data) for r in rows])
    request = {"role": "user", "content": task.prompt}
    await ctx.store.add_history(thread.id, task.id, request, estimate_tokens(request))
    messages.append(request)
    return messages


async def _inbox(ctx: RunContext, thread_id: int, task_id: int) -> list[Steer]:
    rows = await ctx.store.take_inbox(thread_id, task_id)
    return [Steer(text=r.text, user=r.user, user_name=r.user_name, ts=r.ts) for r in rows]
