"""The run manager: records tasks, queues them in the database, runs them within the limits.

The queue lives in the database, so a `slackbot worker` process can claim from it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from ..protocol import TaskFinished, TaskProgress, TaskQueued, TaskRef, Usage, event_from_dict
from ..store import AgentThread, Limits, Task
from ..store.models import utcnow
from .task_run import RunContext, TaskRun, task_ref

log = logging.getLogger(__name__)
DISK_GUARD_S = 1.0


class RunManager:
    def __init__(self, ctx: RunContext, *, run_worker: bool = True, poll_s: float = 2.0,
                 recover: bool = True) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.bus = ctx.bus
        self.run_worker = run_worker
        self.poll_s = poll_s
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        s = ctx.settings
        self.limits = Limits(s.max_tasks, s.max_tasks_per_user, s.max_tasks_per_channel)
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stop_reason: dict[int, str] = {}
        self._positions: dict[int, int] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._guard: asyncio.Task[None] | None = None
        self._runs: dict[int, TaskRun] = {}
        self._closing = False
        self._recover = recover
        self.only: set[int] | None = None  # when set, claim just these tasks (the terminal `exec`)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.run_worker:
            if self._recover:
                await self.recover()
            self._dispatcher = asyncio.create_task(self._dispatch(), name="run-dispatcher")
            self._guard = asyncio.create_task(self._guard_disk(), name="disk-guard")

    async def stop(self) -> None:
        """Cancels the dispatcher and running tasks; they are marked interrupted for the next start."""
        self._closing = True
        self._wake.set()
        for loop_task in (self._dispatcher, self._guard):
            if loop_task:
                loop_task.cancel()
                await asyncio.gather(loop_task, return_exceptions=True)
        running = list(self._running.values())
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def recover(self) -> None:
        """After a crash: running tasks (of no live worker) are interrupted, their containers removed."""
        for task in await self.store.tasks_with_status("running"):
            await self._quietly(self.ctx.sandboxes.remove_task(task.id), f"remove the sandbox of #{task.id}")
            await self.store.update_task(task.id, status="interrupted", finished_at=utcnow(),
                                         error="interrupted by a restart", announced=False)
        await self._announce_leftovers()
        for task in await self.store.tasks_with_status("pending"):
            await self.store.update_task(task.id, status="queued", queued_at=utcnow())
        await self._quietly(self.store.prune_seen(), "prune old delivery ids")
        reaped = await self._quietly(self.ctx.sandboxes.reap(frozenset()), "remove leftover sandboxes")
        if reaped:
            log.info("removed %d leftover sandbox containers", len(reaped))
        self._wake.set()

    async def _announce_leftovers(self) -> None:
        """A task marked final whose final message never went out (a crash between the two) gets it now."""
        for task in await self.store.unannounced_tasks():
            thread = await self.store.get_thread(task.thread_id)
            if thread is None:
                continue
            stored = await self.store.last_event(task.id, "task.finished")
            event = event_from_dict(stored) if stored else TaskFinished(
                status=task.status, answer=task.answer, error=task.error,  # type: ignore[arg-type]
                stopped_by=task.stopped_by,
                usage=Usage(task.input_tokens, task.cached_input_tokens, task.output_tokens))
            await self.bus.emit(task_ref(task, thread), event)
            await self.store.update_task(task.id, announced=True)

    @staticmethod
    async def _quietly(coro: Any, what: str) -> Any:
        """Docker may be down at start; tasks then fail with a clear message, but the bot runs."""
        try:
            return await coro
        except Exception as exc:
            log.warning("could not %s: %s", what, exc)
            return None

    # ---- submitting ------------------------------------------------------------------------

    async def record(self, *, channel: str, thread_ts: str, user: str, user_name: str, text: str,
                     mention_ts: str, model: str = "", user_email: str = "",
                     repo: dict[str, Any] | None = None, status: str = "pending") -> TaskRef:
        """Records a task that is not yet runnable (its status message is not posted yet, or its
        repository is still to be chosen: status "choosing"). `repo` binds a new agent thread."""
        thread, task = await self.store.new_task(
            channel=channel, thread_ts=thread_ts, requester=user, requester_name=user_name, prompt=text,
            mention_ts=mention_ts, model=model, requester_email=user_email, repo=repo, status=status)
        return task_ref(task, thread)

    async def enqueue(self, ref: TaskRef, status_ts: str = "") -> TaskRef:
        if await self.store.transition(ref.task_id, ("pending", "choosing"), status="queued",
                                       status_ts=status_ts, queued_at=utcnow()) is None:
            return ref  # queued already (a double click on the repository chooser)
        self._wake.set()
        if not self.run_worker:  # otherwise the dispatcher publishes, after claiming what it can
            await self._publish_positions()
        return TaskRef(**{**ref.__dict__, "status_ts": status_ts})

    async def submit(self, **kwargs: Any) -> TaskRef:
        return await self.enqueue(await self.record(**kwargs))

    # ---- stopping --------------------------------------------------------------------------

    async def stop_task(self, task_id: int, by: str) -> str:
        """Stops a queued or running task; returns what happened, in words."""
        task = await self.store.get_task(task_id)
        if task is None:
            return f"There is no task #{task_id}."
        if task.status in ("queued", "choosing", "pending"):
            if await self.store.transition(task_id, ("queued", "choosing", "pending"), status="stopped",
                                           stopped_by=by, finished_at=utcnow()) is None:
                return f"Task #{task_id} has just started; press Stop again."
            thread = await self.store.get_thread(task.thread_id)
            await self.bus.emit(task_ref(task, thread), TaskFinished(status="stopped", stopped_by=by))
            await self._publish_positions()
            return f"Task #{task_id} was removed from the queue."
        running = self._running.get(task_id)
        if task.status != "running" or running is None:
            return f"Task #{task_id} is not running ({task.status})."
        if task_id in self._stop_reason:
            return f"Task #{task_id} is already stopping."
        self._stop_reason[task_id] = by
        thread = await self.store.get_thread(task.thread_id)
        await self.bus.emit(task_ref(task, thread), TaskProgress("Stopping…"))
        running.cancel()
        return f"Stopping task #{task_id}."

    # ---- repositories ----------------------------------------------------------------------

    async def check_repo(self, url: str, branch: str = "") -> str:
        """Empty when the repository (and branch) can be reached; else what is wrong."""
        return await self.ctx.repo_ops.check(url, branch)

    async def url_refusal(self, url: str, *, trusted: bool) -> str:
        """Why a `repo=URL` may not be used (a non-admin's is `trusted=False`); "" when it may."""
        return await self.ctx.repo_ops.refusal(url, trusted=trusted)

    async def push(self, task_id: int, *, by: str) -> str:
        task = await self.store.get_task(task_id)
        if task is None:
            return f"There is no task #{task_id}."
        thread = await self.store.get_thread(task.thread_id)
        active = [t for t in await self.store.thread_tasks(thread.id) if t.status in ("queued", "running")]
        if active:
            return f"Task #{active[0].id} is still working in this thread; push when it has finished."
        result = await self.ctx.repo_ops.push(thread, task)
        log.info("push of thread %s by %s: %s", thread.id, by, result.message)
        return result.message

    def is_running_here(self, task_id: int) -> bool:
        return task_id in self._running

    # ---- the queue -------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._closing:
            try:
                while not self._closing:
                    only = frozenset(self.only) if self.only is not None else None
                    task = await self.store.claim_next(self.limits, self.worker_name, only)
                    if task is None:
                        break
                    self._start(task)
                await self._publish_positions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher error; retrying")
            self._wake.clear()
            # The poll picks up tasks other processes queued. (asyncio.timeout, unlike wait_for
            # on 3.11, never swallows a cancellation that races with the wake-up.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()

    def _start(self, task: Task) -> None:
        self._positions.pop(task.id, None)
        runner = asyncio.create_task(self._run(task), name=f"task-{task.id}")
        self._running[task.id] = runner

    async def _run(self, task: Task) -> None:
        try:
            thread = await self.store.get_thread(task.thread_id)
            assert isinstance(thread, AgentThread)
            run = self._runs[task.id] = TaskRun(self.ctx, task, thread, self._stop_reason)
            await run.run()
            await self._follow_up_leftovers(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never silent: the thread hears of it even when finishing failed
            log.exception("task %s crashed", task.id)
            await self._fail_crashed(task, exc)
        finally:
            self._running.pop(task.id, None)
            self._runs.pop(task.id, None)
            self._stop_reason.pop(task.id, None)
            self._wake.set()

    async def _guard_disk(self) -> None:
        """Each workspace fits the disk when its task starts; tasks growing together may not. When free
        space falls under the reserve (the database lives there), the task with the largest workspace
        is stopped, and so on each second until there is room; under half the reserve, all of them."""
        disks, reserve = self.ctx.disks, self.ctx.settings.size("disk_reserve")
        while True:
            await asyncio.sleep(DISK_GUARD_S)
            try:
                free = disks.free_bytes() if self._runs else reserve
                if free >= reserve:
                    continue
                runs = sorted(self._runs.values(), key=lambda r: disks.allocated(r.thread.id), reverse=True)
                # Under half the reserve, every task stops: the database must stay writable.
                for run in runs if free < reserve // 2 else runs[:1]:
                    run.halt("The bot's disk is nearly full, so this task (among those with the largest "
                             "workspaces) was stopped.")
            except Exception:
                log.exception("disk guard failed")

    async def _fail_crashed(self, task: Task, exc: Exception) -> None:
        try:
            if await self.store.transition(task.id, ("running",), status="failed", finished_at=utcnow(),
                                           error=f"internal error: {exc}"[:2000]) is None:
                return  # it reached a final status; only what came after failed
            thread = await self.store.get_thread(task.thread_id)
            await self.bus.emit(task_ref(task, thread), TaskFinished(
                status="failed", error=f"Internal error ({exc.__class__.__name__}): {exc}"))
        except Exception:
            log.exception("could not report the crash of task %s", task.id)

    async def _follow_up_leftovers(self, task: Task) -> None:
        """Replies that arrived as the task was ending were not read by it: they start a follow-up
        (after a Stop they wait for the next reply instead)."""
        done = await self.store.get_task(task.id)
        if done is None or done.status not in ("done", "failed"):
            return
        rows = await self.store.peek_inbox(task.thread_id)
        if not rows:
            return
        thread = await self.store.get_thread(task.thread_id)
        ref = await self.record(channel=thread.channel, thread_ts=thread.thread_ts, user=rows[0].user,
                                user_name=rows[0].user_name, text=rows[0].text, mention_ts=rows[0].ts)
        await self.store.take_inbox(task.thread_id, ref.task_id, only=[rows[0].id])
        await self.enqueue(ref)

    async def _publish_positions(self) -> None:
        queued = await self.store.tasks_with_status("queued")
        for position, task in enumerate(queued, start=1):
            if self._positions.get(task.id) == position:
                continue
            self._positions[task.id] = position
            thread = await self.store.get_thread(task.thread_id)
            await self.bus.emit(task_ref(task, thread), TaskQueued(position))
