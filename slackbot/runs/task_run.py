"""Runs one claimed task: workspace → setup → agent container → agent loop → result → final message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..agent import Agent, AgentLimits, Model
from ..agent.loop import AgentResult, steer_message
from ..agent.prompts import PLAN_PHASE
from ..protocol import (
    Event, FileChange, FileChangeEntry, ItemCompleted, LeftOut, SandboxProvider, TaskFinished, TaskProgress,
    TaskRef, TaskSettings, TaskStatus, ThreadStarted, TurnCompleted, TurnFailed, TurnStarted, Usage, UserMessage)
from ..repos import GitRunner, RepoError, Results
from ..sandbox import DiskError, SandboxError, WorkspaceDisks
from ..settings import Settings
from ..store import AgentThread, Repository, Store, Task
from ..store.models import utcnow
from .attachments import Attachments, place_attachments
from .automation_run import automation_fields, nothing_to_report
from .bus import EventBus
from .guards import learn_secrets, watch_disk
from .write_behind import WriteBehind
from .commits import commit_message, trailers
from .checkout import AfterCheckout
from .sandbox_start import run_setup, start_sandbox, taken_warm
from .effective import bot_branch, egress, extra_instructions, network_policy, pushes, shown, task_settings
from .skill_set import TaskSkills, release, task_skills
from .context import build_messages, estimate_tokens
from .outcomes import brief
from .repo_ops import RepoOps
from .states import PLAN, move
from .workspace import Outcome, Prepared, SetupFailed, WorkspaceSteps, needs_setup

log = logging.getLogger(__name__)
INBOX_EVERY_S = 0.25  # between steps, replies are read at most this often (a database read each)
EXPECTED = (SetupFailed, RepoError, SandboxError, DiskError)
S = TaskStatus


@dataclass
class RunContext:
    """What a worker needs; built once by the composition root."""

    settings: Settings
    store: Store
    bus: EventBus
    sandboxes: SandboxProvider
    disks: WorkspaceDisks
    git: GitRunner
    results: Results
    model_for: Callable[[str, str], Model]  # (name, reasoning effort)
    repo_ops: RepoOps
    instance: str = "default"
    egress_allow: tuple[str, ...] = ()


def task_ref(task: Task, thread: AgentThread) -> TaskRef:
    assert task.id is not None and thread.id is not None  # both read from the store
    return TaskRef(task_id=task.id, thread_id=thread.id, channel=thread.channel, thread_ts=thread.thread_ts,
                   requester=task.requester, status_ts=task.status_ts, prompt=task.prompt)


class TaskRun:
    def __init__(self, ctx: RunContext, task: Task, thread: AgentThread, *, worker: str) -> None:
        self.ctx, self.task, self.thread, self.worker = ctx, task, thread, worker
        self.settings = ctx.settings  # with saved values for this channel, once the run begins
        self.steps = WorkspaceSteps(ctx)
        self.ref = task_ref(task, thread)
        self.started = time.monotonic()
        self.agent: Agent | None = None
        self.sandbox: Any = None
        self.prepared: Prepared | None = None
        self.network = ""
        self.repo: Repository | None = None
        self.skills = TaskSkills()
        self.files: Attachments | None = None
        self._warm: asyncio.Future[Any] | None = None  # a warm container being taken while preparing
        self.writes = WriteBehind(f"task-{task.id}")  # the agent's steps' history and events
        self.halted = ""  # why the bot itself stopped the task (its disk quota, the host's disk)
        self.stop_by = ""  # who pressed Stop
        self.dropped = False  # another process took this task over (this one was presumed dead)
        self._main: asyncio.Task[Any] | None = None
        self.result: AgentResult | None = None  # the agent's turn, once it ended by itself
        self.turn_started = False
        self.planning = task.plan == PLAN  # plan first: read-only, no result taken, the answer is a plan

    async def emit(self, event: Event) -> None:
        self.turn_started = self.turn_started or isinstance(event, TurnStarted)
        await self.ctx.bus.emit(self.ref, event)

    async def emit_soon(self, event: Event) -> None:
        """The run's events until its end: in order, off its path (flushed before the run reads its
        history back or ends, so the end's events, sent by `emit`, always come after)."""
        self.turn_started = self.turn_started or isinstance(event, TurnStarted)
        ref = self.ref
        self.writes.put(lambda: self.ctx.bus.emit(ref, event))

    async def run(self) -> None:
        self.settings = await task_settings(self.ctx.store, self.ctx.settings, self.task.channel)
        s, task = self.settings, self.task
        status, error = S.FAILED, ""
        deadline = asyncio.timeout(s.task_timeout_s)
        watcher: asyncio.Task[None] | None = None
        self._main = asyncio.current_task()
        try:
            await self.emit_soon(ThreadStarted(str(self.thread.id)))
            await self.emit_soon(TaskSettings(tuple((k, str(v)) for k, v in shown(s).items())))
            async with deadline:
                await self._prepare()
                assert self.prepared is not None
                if not self.prepared.disk.enforced:
                    watcher = asyncio.create_task(watch_disk(self), name=f"disk-{task.id}")
                assert self.agent is not None
                messages, usage = await self._messages()
                # The turn's end (turn.completed / failed) is held back until the changes are
                # committed, so that file_change lands inside the turn, as in codex's stream.
                self.result = await self.agent.run(messages, self.emit_soon, usage=usage)
                if isinstance(self.sandbox, AfterCheckout):
                    await self.sandbox.ready()  # (the agent may never have run a command)
            status, error = (S.FAILED, self.result.error) if self.result.error else (S.DONE, "")
        except asyncio.CancelledError:
            if self.dropped:
                await self.writes.close()
                await self._release_containers()
                return
            if self.halted:
                _uncancel()
                error = self.halted
            elif self.stop_by:
                _uncancel()
                status = S.STOPPED
            else:  # shutdown
                await self._finish_whole(S.INTERRUPTED, "interrupted by a restart")
                raise
        except TimeoutError as exc:
            if deadline.expired():
                error = f"Timed out after {s.task_timeout_s:g} s (SLACKBOT_TASK_TIMEOUT_S)."
            else:  # a database, git or engine call that took too long
                log.exception("task %s: an operation timed out", task.id)
                error = f"An operation took too long and was abandoned ({exc.__class__.__name__})."
        except EXPECTED as exc:
            error = str(exc)
        except Exception as exc:  # every failure ends in a message in the thread
            log.exception("task %s failed", task.id)
            error = f"Internal error ({exc.__class__.__name__}): {brief(exc)}"
        finally:
            if watcher:
                watcher.cancel()
        await self._finish_whole(status, error)

    async def _finish_whole(self, status: TaskStatus, error: str) -> None:
        """Once finishing has begun it runs to its end (the result taken, the final message out):
        a Stop or a shutdown arriving meanwhile waits for it; a shutdown is raised again after."""
        job = asyncio.ensure_future(self._finish(status, error))
        interrupted = False
        while not job.done():
            try:
                await asyncio.shield(job)
            except asyncio.CancelledError:
                interrupted = interrupted or not (self.stop_by or self.halted)
                _uncancel()
        job.result()
        if interrupted:
            raise asyncio.CancelledError

    async def _prepare(self) -> None:
        ctx, s, thread, task = self.ctx, self.settings, self.thread, self.task
        if thread.repo_url:
            self.repo = await ctx.repo_ops.repository(thread)
            await learn_secrets(ctx, self.repo)  # a follow-up in another process redacts them too
            await self.emit_soon(TaskProgress(f"Preparing {self.repo.name if self.repo else thread.repo_url}"))
        else:
            await self.emit_soon(TaskProgress("Preparing a scratch workspace (no repository linked)"))
        policy = network_policy(self.repo.network if self.repo else "off", s)
        if policy != "on":  # the agent will have no network: a warm container is taken while preparing
            self._warm = asyncio.ensure_future(ctx.sandboxes.take_warm(
                task_id=task.id or 0, mounts=(), cpus=s.sandbox_cpus, memory=s.sandbox_memory))
        # Without a linked repository the skills are the bot's own: gathered while preparing.
        gathering = None if self.repo else asyncio.ensure_future(
            task_skills(ctx.git, s, task_id=task.id or 0, mirror=None, sha=""))
        try:
            self.thread, self.prepared = await self.steps.prepare(thread, task, self._progress)
        except BaseException:
            if gathering is not None:  # (its folder is removed when the run ends: not while it is written)
                await asyncio.gather(gathering, return_exceptions=True)
            raise
        if self.prepared.fresh and (needs_setup(self.thread, self.repo) or self.repo and self.repo.network == "on"):
            self.thread = await self.steps.clone(self.thread, task, self.prepared, self._progress)
        self.ref = task_ref(task, self.thread)
        # Only a repository an admin linked brings its own skills, read at the task's base commit, and
        # not from a branch the bot pushed (what an agent wrote there would instruct the next one).
        linked = (self.repo is not None and self.thread.repo_id is not None
                  and not bot_branch(self.thread.base_branch, s))
        self.skills = await gathering if gathering is not None else await task_skills(
            ctx.git, s, task_id=self.ref.task_id, mirror=self.prepared.repo if linked else None,
            sha=self.thread.latest_base_sha or self.thread.base_sha or self.prepared.parent)
        env: dict[str, str] = {}
        if policy == "on" or (policy == "setup" and needs_setup(self.thread, self.repo)):
            await self.emit_soon(TaskProgress("Opening the task's network"))
            allow = egress(s, ctx.egress_allow, ctx.settings.egress_allow)
            self.network, env = await ctx.sandboxes.open_network(self.ref.task_id, allow)
        if needs_setup(self.thread, self.repo):
            await run_setup(self, env)
        if policy != "on" and self.network:
            await ctx.sandboxes.close_network(self.ref.task_id)
            self.network, env = "", {}
        await self.emit_soon(TaskProgress("Starting sandbox"))
        await start_sandbox(self, env, writable=not self.planning)
        model = ctx.model_for(task.model or s.model, s.reasoning_effort)
        # Files attached in Slack, before the first model call (in /tmp while the workspace is read-only);
        # a reply's are placed as the agent reads it.
        self.files = await place_attachments(s, ctx.store, self.ref, task, self.sandbox, model, self.emit_soon,
                                             base="/tmp" if self.planning else "/workspace")
        self.agent = Agent(
            model, self.sandbox, AgentLimits(s.max_steps, s.command_timeout_s, s.output_limit_chars),
            inbox=self.files.inbox,
            record=self._record,
            requester=task.requester, automation=task.automation_id is not None,
            skills=tuple(k.name for k in self.skills.catalog.skills), skill_body=self.skills.body,
            inbox_every_s=INBOX_EVERY_S)

    async def _record(self, message: dict[str, Any]) -> None:
        """One message of the model's history, stored behind the agent (redacted: it is a transcript too)."""
        ctx, thread_id, task_id = self.ctx, self.ref.thread_id, self.ref.task_id
        clean = ctx.bus.redactor.value(message)
        self.writes.put(lambda: ctx.store.add_history(thread_id, task_id, clean, estimate_tokens(message)))

    async def _progress(self, text: str) -> None:
        await self.emit_soon(TaskProgress(text))

    async def _messages(self) -> tuple[list[dict[str, Any]], Usage]:
        assert self.agent is not None and self.prepared is not None and self.files is not None
        s = self.settings
        # Replies nobody read yet (written after a Stop or a restart) come before this request.
        steers = await self.agent.inbox()
        for steer in steers:
            await self.agent.record(steer_message(steer, self.task.requester))
            await self.emit_soon(ItemCompleted(UserMessage(f"task_{self.task.id}_inbox_{steer.ts}", steer.text,
                                                      steer.user)))
        if steers:  # the history is read back next (earlier runs' rows were written before they ended)
            await self.writes.flush()
        instructions = "\n\n".join(t for t in (self.prepared.instructions, self.skills.prompt_text(),
                                                extra_instructions(s), PLAN_PHASE if self.planning else "") if t)
        messages, usage = await build_messages(
            self.ctx.store, self.agent.model, self.task, self.thread, budget=s.context_budget_tokens,
            instructions=instructions,
            attached="\n\n".join(t for t in (self.files.note, self.skills.for_request(self.task.prompt)) if t),
            on_summary=lambda: self.emit(TaskProgress("Summarising earlier history")))
        return messages, usage

    def halt(self, reason: str) -> None:
        """The bot stops the task itself (not a person): it fails with `reason`."""
        if self._main is not None and not (self.halted or self.stop_by):
            self.halted = reason
            self._main.cancel()

    def stop(self, by: str) -> None:
        """A person's Stop: the task ends as stopped (its result is still taken)."""
        if self._main is not None and not (self.halted or self.stop_by):
            self.stop_by = by
            self._main.cancel()

    def drop(self) -> None:
        """This process lost the task to the sweep of another: end it without a word."""
        if self._main is not None and not self.dropped:
            self.dropped = True
            self._main.cancel()

    async def _finish(self, status: TaskStatus, error: str) -> None:
        await self.writes.flush()  # the steps' events come before the end's
        await self._release_containers()
        status, error, outcome = await self._take_result(status, error)
        await self._close_turn(status, error, outcome)
        if await self._record_final(status, error, outcome):
            await self._announce(status, error, outcome)

    async def _take_result(self, status: TaskStatus, error: str) -> tuple[TaskStatus, str, Outcome]:
        """The finishing step commits the workspace and hands the result to the mirror."""
        ctx, task = self.ctx, self.task
        outcome = Outcome()
        if self.prepared is not None and self.thread.tip_sha and not self.planning:
            try:
                self.thread, outcome = await self.steps.finish(self.thread, task, self.prepared,
                                                               commit_message(task, trailers(task)))
            except Exception as exc:
                log.exception("could not take the result of task %s", task.id)
                outcome = Outcome(refused=f"Committing the changes failed: {brief(exc)}")
            if outcome.refused:
                status, error = S.FAILED, (f"{error} — {outcome.refused}" if error else outcome.refused)
        with contextlib.suppress(Exception):  # (also when preparing failed after mounting it)
            await ctx.disks.detach(self.ref.thread_id)

        if outcome.patch:
            await ctx.store.set_patch(self.ref.task_id, outcome.patch)
        return status, error, outcome

    def _tally(self) -> AgentResult:
        """What the agent came to: its result, or so far when the run was cut short."""
        if self.result is not None:
            return self.result
        if self.agent is not None:
            return self.agent.so_far()
        return AgentResult(answer="", error="", usage=Usage(), context_tokens=0, commands=0)

    async def _close_turn(self, status: TaskStatus, error: str, outcome: Outcome) -> None:
        """The codex-shaped stream: files changed inside the turn, and always a turn."""
        if outcome.files:
            changes = tuple(FileChangeEntry(f.path, f.kind) for f in outcome.files)
            await self.emit(ItemCompleted(FileChange(f"task_{self.task.id}_files", changes)))
        if not self.turn_started:  # the --json stream always has a turn, even when preparing failed
            await self.emit(TurnStarted())
        if status == S.DONE:
            end = self.result.turn_end if self.result else None
            await self.emit(end or TurnCompleted(self._tally().usage))
        else:
            await self.emit(TurnFailed(error or (f"stopped by {self.stop_by}" if self.stop_by else status)))

    async def _record_final(self, status: TaskStatus, error: str, outcome: Outcome) -> bool:
        """The final status, if the task is still this worker's (a sweep may have taken it)."""
        ctx, task = self.ctx, self.task
        tally = self._tally()
        usage = tally.usage
        moved = await move(
            ctx.store, self.ref.task_id, status, among=frozenset({S.RUNNING}), of_worker=self.worker,
            # (redacted: these columns reach the digest, announcements and pull requests)
            error=ctx.bus.redactor.text(error[:2000]), answer=ctx.bus.redactor.text(tally.answer),
            finished_at=utcnow(),
            stopped_by=self.stop_by if status == S.STOPPED else "", announced=False,
            nothing_to_report=nothing_to_report(status, self.result, outcome),
            input_tokens=usage.input_tokens, cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens)
        if moved is None:
            log.warning("task %s ended here, but another process had marked it final already", task.id)
            return False
        if tally.context_tokens:
            await ctx.store.update_thread(self.ref.thread_id, context_tokens=tally.context_tokens)
        return True

    async def _announce(self, status: TaskStatus, error: str, outcome: Outcome) -> None:
        ctx, thread = self.ctx, self.thread
        tally = self._tally()
        answer = tally.answer
        pushable = bool(thread.repo_url and thread.repo_trusted and thread.branch and thread.tip_sha
                        and thread.tip_sha != thread.base_sha) and not self.planning
        wanted = status == S.DONE and bool(outcome.files) and self.repo is not None and pushes(
            self.settings, self.repo.auto_push)
        push = await ctx.repo_ops.auto_push(thread, self.task, answer) if pushable and wanted else None
        await self.emit(TaskFinished(
            status=status, answer=answer, error=error, files=outcome.files, elapsed_s=time.monotonic() - self.started,
            usage=tally.usage, stopped_by=self.stop_by if status == S.STOPPED else "",
            branch=thread.branch, repo=(self.repo.name if self.repo else thread.repo_url),
            has_patch=bool(outcome.patch), pushable=pushable and not (push and push.ok),
            pr_url=push.pr_url if push and push.pr_url else thread.pr_url,
            push=push.code.value if push else "", push_detail=push.detail if push else "",
            left_out=tuple(LeftOut(p, n) for p, n in outcome.left_out),
            plan="awaiting" if self.planning and status == S.DONE and answer.strip() else "", **await automation_fields(
                ctx.store, self.task, nothing_to_report(status, self.result, outcome))))
        await ctx.store.update_task(self.ref.task_id, announced=True)

    async def _release_containers(self) -> None:
        """The agent's container (and with it every process the agent started) goes first, however the
        task ended; anything left is removed by task label."""
        ctx, task = self.ctx, self.task
        try:
            unused = await taken_warm(self)  # (taken, then preparing failed or chose a cold one)
            if unused is not None:
                await unused.close()
            if self.sandbox is not None:
                await self.sandbox.close()
            if self.network:
                await ctx.sandboxes.close_network(self.ref.task_id)
        except Exception:
            log.exception("could not remove the sandbox of task %s; retrying by label", task.id)
            try:
                await ctx.sandboxes.remove_task(self.ref.task_id)
            except Exception:
                log.exception("task %s: its containers are left for the next reaping", task.id)
        try:  # then its skills (whether or not gathering them finished: a Stop may have cut it short)
            await ctx.git.run(release, self.settings, self.ref.task_id)
        except Exception:
            log.exception("task %s: could not remove its skills folder", task.id)


def _uncancel() -> None:
    """The task goes on to finish (a Stop or a halt is not a cancellation of the whole run)."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()
