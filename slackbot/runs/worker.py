"""Runs one claimed task: workspace → sandbox → agent loop → commit → result."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..agent import Agent, AgentLimits, Model
from ..agent.instructions import load_agents_md
from ..agent.loop import steer_message
from ..protocol import (
    CommandExecution, Event, FileChange, FileChangeEntry, FileStat, ItemCompleted, ItemStarted,
    SandboxProvider, Steer, TaskFinished, TaskProgress, TaskRef, ThreadStarted, TurnCompleted, TurnFailed,
    TurnStarted, Usage, UserMessage,
)
from ..repos import Workspaces
from ..settings import Settings
from ..store import AgentThread, Repository, Store, Task
from ..store.models import utcnow
from .bus import EventBus
from .context import build_messages, estimate_tokens
from .repo_ops import PushResult, RepoOps

log = logging.getLogger(__name__)
MAX_PATCH_CHARS = 5_000_000


@dataclass
class RunContext:
    """What a worker needs; built once by the composition root."""

    settings: Settings
    store: Store
    bus: EventBus
    sandboxes: SandboxProvider
    workspaces: Workspaces
    model_for: Callable[[str], Model]
    repo_ops: RepoOps


def task_ref(task: Task, thread: AgentThread) -> TaskRef:
    return TaskRef(task_id=task.id, thread_id=thread.id, channel=thread.channel, thread_ts=thread.thread_ts,
                   requester=task.requester, status_ts=task.status_ts, prompt=task.prompt)


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
        self.turn_started = False
        self.instructions = ""  # AGENTS.md of the checkout
        self.repo: Repository | None = None

    async def emit(self, event: Event) -> None:
        self.turn_started = self.turn_started or isinstance(event, TurnStarted)
        await self.ctx.bus.emit(self.ref, event)

    async def run(self) -> None:
        s, task = self.ctx.settings, self.task
        status, error = "failed", ""
        deadline = asyncio.timeout(s.task_timeout_s)
        try:
            await self.emit(ThreadStarted(str(self.thread.id)))
            async with deadline:
                await self._prepare()
                async for event in self.agent.run(await self._messages()):
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
        except TimeoutError as exc:
            if deadline.expired():
                error = f"Timed out after {s.task_timeout_s:g} s (SLACKBOT_TASK_TIMEOUT_S)."
            else:  # a database, git or engine call that took too long
                log.exception("task %s: an operation timed out", task.id)
                error = f"An operation took too long and was abandoned ({exc.__class__.__name__})."
        except Exception as exc:  # every failure ends in a message in the thread
            log.exception("task %s failed", task.id)
            error = str(exc) or exc.__class__.__name__
            if exc.__class__.__module__.startswith(("sqlalchemy", "git", "builtins")):
                error = f"Internal error ({exc.__class__.__name__}): {error}"
        await self._finish(status, error)

    async def _prepare(self) -> None:
        ctx, s, thread = self.ctx, self.ctx.settings, self.thread
        network, setup = "off", ""
        if thread.repo_url:
            self.repo = await ctx.repo_ops.repository(thread)
            label = self.repo.name if self.repo else thread.repo_url
            await self.emit(TaskProgress(f"Preparing {label}"))
            self.path = ctx.workspaces.path_for(thread.id)
            self.thread = thread = await ctx.repo_ops.prepare(thread, self.task, self.path)
            self.ref = task_ref(self.task, thread)
            if self.repo:
                network, setup = self.repo.network, self.repo.setup
        else:
            await self.emit(TaskProgress("Preparing a scratch workspace (no repository linked)"))
            self.path = await ctx.workspaces.ensure_scratch(thread.id)
            if thread.workspace != str(self.path):
                await ctx.store.update_thread(thread.id, workspace=str(self.path))
        self.base = await ctx.workspaces.head(self.path)
        self.instructions = await ctx.workspaces.runner.run(load_agents_md, self.path)
        await self.emit(TaskProgress("Starting sandbox"))
        self.sandbox = await ctx.sandboxes.start(task_id=self.task.id, workspace=self.path, network=network)
        if setup:
            await self._setup(setup, network)
        thread_id, task_id = thread.id, self.task.id
        self.agent = Agent(
            ctx.model_for(self.task.model or s.model), self.sandbox,
            AgentLimits(s.max_steps, s.command_timeout_s, s.output_limit_chars),
            inbox=lambda: _inbox(ctx, thread_id, task_id),
            record=lambda m: ctx.store.add_history(thread_id, task_id, m, estimate_tokens(m)),
            requester=self.task.requester)

    async def _setup(self, command: str, network: str) -> None:
        """The repository's setup command, before the agent; with network=setup the network is
        cut right after it, so the agent's commands see only the loopback interface."""
        await self.emit(TaskProgress("Running the setup command"))
        item_id = f"task_{self.task.id}_setup"
        await self.emit(ItemStarted(CommandExecution(item_id, command)))
        result = await self.sandbox.exec(command, timeout_s=self.ctx.settings.command_timeout_s)
        status = "completed" if result.exit_code == 0 else "failed"
        await self.emit(ItemCompleted(CommandExecution(item_id, command, result.output[-20_000:],
                                                       result.exit_code, status)))
        if network == "setup":
            await self.sandbox.disconnect_network()
        if result.exit_code != 0:
            raise SetupFailed(f"The setup command failed (exit {result.exit_code}): "
                              f"{result.output.strip().splitlines()[-1][:300] if result.output.strip() else ''}")

    async def _messages(self) -> list[dict[str, Any]]:
        s = self.ctx.settings
        # Replies nobody read yet (written after a Stop or a restart) come before this request.
        for steer in await _inbox(self.ctx, self.thread.id, self.task.id):
            await self.agent.record(steer_message(steer, self.task.requester))
            await self.emit(ItemCompleted(UserMessage(f"task_{self.task.id}_inbox_{steer.ts}", steer.text,
                                                      steer.user)))
        messages, usage = await build_messages(
            self.ctx.store, self.agent.model, self.task, self.thread, budget=s.context_budget_tokens,
            instructions=self.instructions,
            on_summary=lambda: self.emit(TaskProgress("Summarising earlier history")))
        self.agent.usage += usage
        return messages

    async def _finish(self, status: str, error: str) -> None:
        ctx, task = self.ctx, self.task
        if self.sandbox is not None:
            try:
                await self.sandbox.close()
            except Exception:
                log.exception("could not remove the sandbox of task %s", task.id)
        files: tuple[FileStat, ...] = ()
        diff = ""
        if self.path is not None and self.base:
            try:
                result = await ctx.workspaces.commit(self.path, self.base, commit_message(task),
                                                     trailers=trailers(task))
                files, diff = result.files, result.diff
            except Exception:
                log.exception("could not commit the workspace of task %s", task.id)
        if files:
            changes = tuple(FileChangeEntry(f.path, f.kind) for f in files)
            await self.emit(ItemCompleted(FileChange(f"task_{task.id}_files", changes)))
        usage = self.agent.usage if self.agent else Usage()
        stopped_by = self.stop_reason.get(task.id, "")
        if not self.turn_started:  # the --json stream always has a turn, even when preparing failed
            await self.emit(TurnStarted())
        if status == "done":
            await self.emit(self.turn_end or TurnCompleted(usage))
        else:
            await self.emit(TurnFailed(error or (f"stopped by {stopped_by}" if stopped_by else status)))
        answer = self.agent.answer if self.agent else ""
        elapsed = time.monotonic() - self.started
        await ctx.store.update_task(
            task.id, status=status, error=error[:2000], answer=answer, finished_at=utcnow(),
            stopped_by=stopped_by, input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens, output_tokens=usage.output_tokens)
        thread = self.thread
        if self.agent and self.agent.context_tokens:
            await ctx.store.update_thread(thread.id, context_tokens=self.agent.context_tokens)
        pushable = bool(thread.repo_url and thread.branch and self.base)
        push = None
        if pushable and status == "done" and files and self.repo and self.repo.auto_push:
            task.answer = answer
            try:
                push = await ctx.repo_ops.push(thread, task)
            except Exception as exc:  # the task is done; only the push failed
                log.exception("auto push of task %s failed", task.id)
                push = PushResult(f"The automatic push failed: {exc}", ok=False)
        await self.emit(TaskFinished(
            status=status, answer=answer, error=error, files=files, elapsed_s=elapsed, usage=usage,
            stopped_by=stopped_by, branch=thread.branch, repo=(self.repo.name if self.repo else thread.repo_url),
            diff=diff[:MAX_PATCH_CHARS], pushable=pushable and not (push and push.ok),
            pr_url=push.pr_url if push else thread.pr_url, note=push.message if push else ""))


class SetupFailed(Exception):
    pass


def commit_message(task: Task) -> str:
    first = task.prompt.strip().splitlines()[0] if task.prompt.strip() else ""
    return f"{first[:72] or 'slackbot task'}\n\nslackbot task #{task.id}"


def trailers(task: Task) -> list[str]:
    name = task.requester_name or task.requester
    if task.requester_email:
        return [f"Co-authored-by: {name} <{task.requester_email}>"]
    return [f"Requested-by: {name} (Slack {task.requester})"]


async def _inbox(ctx: RunContext, thread_id: int, task_id: int) -> list[Steer]:
    rows = await ctx.store.take_inbox(thread_id, task_id)
    return [Steer(text=r.text, user=r.user, user_name=r.user_name, ts=r.ts) for r in rows]
