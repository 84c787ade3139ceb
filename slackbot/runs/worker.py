"""Runs one claimed task: workspace → sandbox → agent loop → commit → result."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..agent import Agent, AgentLimits, Model
from ..agent.history import repair
from ..agent.prompts import system_prompt
from ..protocol import (
    FileChange, FileChangeEntry, ItemCompleted, SandboxProvider, Steer, TaskFinished, TaskProgress,
    TaskRef, ThreadStarted, TurnFailed, Usage,
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


class Stopped(Exception):
    pass


def task_ref(task: Task, thread: AgentThread) -> TaskRef:
    return TaskRef(task_id=task.id, thread_id=thread.id, channel=thread.channel, thread_ts=thread.thread_ts,
                   requester=task.requester, status_ts=task.status_ts, prompt=task.prompt)


def estimate_tokens(message: dict[str, Any]) -> int:
    return len(json.dumps(message)) // 4 + 4


async def execute(ctx: RunContext, task: Task, thread: AgentThread, stop_reason: dict[int, str]) -> None:
    """Runs the task to a final status; never raises except on shutdown cancellation."""
    ref = task_ref(task, thread)
    s = ctx.settings
    started = time.monotonic()
    agent: Agent | None = None
    sandbox = None
    path = None
    base = ""
    status, error = "failed", ""
    try:
        await ctx.bus.emit(ref, ThreadStarted(str(thread.id)))
        await ctx.bus.emit(ref, TaskProgress("Preparing workspace"))
        path = await ctx.workspaces.ensure_scratch(thread.id)
        if thread.workspace != str(path):
            await ctx.store.set_workspace(thread.id, str(path))
        base = await ctx.workspaces.head(path)
        await ctx.bus.emit(ref, TaskProgress("Starting sandbox"))
        sandbox = await ctx.sandboxes.start(task_id=task.id, workspace=path, network="off")
        messages = await _messages(ctx, task, thread)
        agent = Agent(ctx.model_for(task.model or s.model), sandbox,
                      AgentLimits(s.max_steps, s.command_timeout_s, s.output_limit_chars),
                      inbox=lambda: _inbox(ctx, thread.id, task.id),
                      record=lambda m: ctx.store.add_history(thread.id, task.id, m, estimate_tokens(m)),
                      requester=task.requester)
        async with asyncio.timeout(s.task_timeout_s):
            async for event in agent.run(messages):
                await ctx.bus.emit(ref, event)
        status, error = ("failed", agent.error) if agent.error else ("done", "")
    except asyncio.CancelledError:
        reason = stop_reason.get(task.id)
        if reason is None:  # shutdown: leave it for recovery at the next start
            status, error = "interrupted", "interrupted by a restart"
            await _finish(ctx, ref, task, agent, status, error, started, path, base, sandbox)
            raise
        asyncio.current_task().uncancel()
        status, error = "stopped", ""
    except TimeoutError:
        error = f"Timed out after {s.task_timeout_s:g} s (SLACKBOT_TASK_TIMEOUT_S)."
        await ctx.bus.emit(ref, TurnFailed(error))
    except Exception as exc:  # every failure ends in a message in the thread
        log.exception("task %s failed", task.id)
        error = str(exc) or exc.__class__.__name__
        if exc.__class__.__module__.startswith(("sqlalchemy", "git", "builtins")):
            error = f"Internal error ({exc.__class__.__name__}): {error}"
        await ctx.bus.emit(ref, TurnFailed(error))
    await _finish(ctx, ref, task, agent, status, error, started, path, base, sandbox,
                  stopped_by=stop_reason.get(task.id, ""))


async def _finish(ctx: RunContext, ref: TaskRef, task: Task, agent: Agent | None, status: str, error: str,
                  started: float, path: Any, base: str, sandbox: Any, stopped_by: str = "") -> None:
    if sandbox is not None:
        try:
            await sandbox.close()
        except Exception:
            log.exception("could not remove the sandbox of task %s", task.id)
    files: tuple = ()
    if path is not None and base:
        try:
            result = await ctx.workspaces.commit(path, base, f"slackbot task #{task.id}: {task.prompt[:60]}")
            files = result.files
        except Exception:
            log.exception("could not commit the workspace of task %s", task.id)
    if files:
        changes = tuple(FileChangeEntry(f.path, f.kind) for f in files)
        await ctx.bus.emit(ref, ItemCompleted(FileChange(f"task_{task.id}_files", changes)))
    usage = agent.usage if agent else Usage()
    answer = agent.answer if agent else ""
    elapsed = time.monotonic() - started
    await ctx.store.update_task(
        task.id, status=status, error=error[:2000], answer=answer, finished_at=utcnow(), stopped_by=stopped_by,
        input_tokens=usage.input_tokens, cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens)
    await ctx.bus.emit(ref, TaskFinished(status=status, answer=answer, error=error, files=files,
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
