"""The run manager: records tasks, queues them in the database, runs them within the limits.

Every process (front, worker, the terminal's `exec`) has one. Processes share the queue through
the database: a worker claims under the installation's claim lock, a Stop pressed in any process
reaches the worker running the task (Postgres NOTIFY, or its short poll), and when a worker dies
any live process marks its tasks interrupted and tells their threads (`workers.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import timedelta
from typing import Any, Callable

from ..agent.skill_catalog import Catalog
from ..protocol import TaskFinished, TaskProgress, TaskQueued, TaskRef, TaskStatus, Usage, event_from_dict
from ..store import AgentThread, Coord, Limits, Queue, RepoBinding, Repository, Task, WorkerRow
from ..store.models import utcnow
from .outcomes import PushCode, PushResult, StopCode, StopResult, brief
from . import skill_set
from .guards import retention
from .plan import Plans
from .signals import Signals
from .states import WAITING, move
from .task_run import RunContext, TaskRun, task_ref
from .workers import BEATS, Identity, WorkerRegistry

log = logging.getLogger(__name__)
RETENTION_EVERY_S = 600.0
DISK_GUARD_S = 1.0
CLAIM_AT_LEAST_S = 5.0  # a worker tries to claim this often even when told of no change
S = TaskStatus


class RunManager:
    def __init__(self, ctx: RunContext, *, identity: Identity, signals: Signals, run_worker: bool = True,
                 pinned_only: bool = False) -> None:
        """`pinned_only`: claim only tasks pinned to this process (the terminal's `exec`)."""
        self.ctx = ctx
        self.store = ctx.store
        self.bus = ctx.bus
        self.signals = signals
        self.run_worker = run_worker
        self.pinned_only = pinned_only
        s = ctx.settings
        self.queue = Queue(ctx.store)
        self.coord = Coord(ctx.store)
        self.registry = WorkerRegistry(self.coord, identity, lease_s=s.worker_lease_s, on_dead=self._after_death,
                                       on_lost=self._lost)
        self.limits = Limits(s.max_tasks, s.max_tasks_per_user, s.max_tasks_per_channel, s.worker_max_tasks)
        self.plans = Plans(ctx.store, ctx.bus, s)  # plan first: approve, revise, cancel
        self.positions_owner: Callable[[], bool] = lambda: False  # the Slack output holder shows positions
        self._running: dict[int, asyncio.Task[None]] = {}
        self._runs: dict[int, TaskRun] = {}
        self._positions: dict[int, int] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def worker_name(self) -> str:
        return self.registry.id

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.ctx.sandboxes.worker = self.worker_name
        await self.registry.start()  # registers, then cleans up after processes found dead
        await self._quietly(self._announce_leftovers(), "announce unannounced final states")
        await self._quietly(self.store.prune_seen(), "prune old delivery ids")
        loops = [(self._housekeeping, "run-housekeeping"), (self._show_positions, "queue-positions")]
        if self.run_worker:
            live = await self.registry.live_ids()
            reaped = await self._quietly(self.ctx.sandboxes.reap(live), "remove leftover sandboxes")
            if reaped:
                log.info("removed %d leftover sandbox containers", len(reaped))
            self.ctx.sandboxes.keep_warm()
            loops += [(self._dispatch, "run-dispatcher"), (self._guard_disk, "disk-guard"),
                      (self._watch_stops, "stop-watcher")]
        self._loops = [asyncio.create_task(fn(), name=name) for fn, name in loops]

    async def stop(self) -> None:
        """Cancels the loops and running tasks (they are marked interrupted), then leaves."""
        self._closing = True
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        running = list(self._running.values())
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.registry.stop()

    async def _after_death(self, dead: WorkerRow) -> None:
        """A process stopped renewing its lease: its running tasks are interrupted (or stopped, when
        a Stop was asked for) and their threads told; its containers on this engine removed."""
        for task in await self.queue.running_on(dead.id):
            assert task.id is not None  # read from the store, as every row below
            await self._quietly(self.ctx.sandboxes.remove_task(task.id), f"remove the sandbox of #{task.id}")
            fields: dict[str, Any] = {"finished_at": utcnow(), "announced": False}
            if task.stop_by:
                moved = await move(self.store, task.id, S.STOPPED, among=frozenset({S.RUNNING}), of_worker=dead.id,
                                   stopped_by=task.stop_by, **fields)
            else:
                moved = await move(self.store, task.id, S.INTERRUPTED, among=frozenset({S.RUNNING}),
                                   of_worker=dead.id, error="interrupted by a restart of the process running it",
                                   **fields)
            if moved:
                await self._announce(moved)
        for task in await self.queue.pinned_to(dead.id):  # a terminal's task whose terminal is gone
            assert task.id is not None
            moved = await move(self.store, task.id, S.INTERRUPTED, among=frozenset({S.QUEUED}), finished_at=utcnow(),
                               error="interrupted: the terminal that asked for it stopped", announced=False)
            if moved:
                await self._announce(moved)
        await self._quietly(self.ctx.sandboxes.remove_worker(dead.id), f"remove what worker {dead.id} left")

    async def _lost(self) -> None:
        """Others presumed this process dead and interrupted its tasks: drop them without a word
        (their threads were told), and go on under the new identity."""
        self.ctx.sandboxes.worker = self.worker_name
        for run in list(self._runs.values()):
            run.drop()

    async def _announce_leftovers(self) -> None:
        """A task marked final whose final message never went out (its process died between the
        two) gets it now; tasks of live processes are theirs to announce."""
        live = await self.registry.live_ids()
        for task in await self.store.unannounced_tasks():
            if task.worker not in live:
                await self._announce(task)

    async def _announce(self, task: Task) -> None:
        thread = await self.store.get_thread(task.thread_id)
        if thread is None:
            return
        assert task.id is not None
        stored = await self.store.last_event(task.id, "task.finished")
        event = event_from_dict(stored) if stored else TaskFinished(
            status=S(task.status), answer=task.answer, error=task.error, stopped_by=task.stopped_by,
            usage=Usage(task.input_tokens, task.cached_input_tokens, task.output_tokens))
        await self.bus.emit(task_ref(task, thread), event)
        await self.store.update_task(task.id, announced=True)

    async def _housekeeping(self) -> None:
        """Tasks recorded but never queued (their front died before posting the status) are queued."""
        lease = self.ctx.settings.worker_lease_s
        forgot_at = 0.0
        while True:
            await asyncio.sleep(lease / BEATS)
            if time.monotonic() - forgot_at > RETENTION_EVERY_S:
                forgot_at = time.monotonic()
                await self._quietly(retention(self.ctx), "delete old transcripts")
            try:
                for task in await self.queue.stale_pending(timedelta(seconds=lease)):
                    assert task.id is not None
                    if await self.plans.queue(task.id, frozenset({S.PENDING})):
                        log.info("queued task %s, recorded by a process that stopped before queueing it", task.id)
            except Exception:
                log.exception("housekeeping failed")

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
                     mention_ts: str, model: str = "", user_email: str = "", repo: RepoBinding | None = None,
                     status: TaskStatus = S.PENDING, pinned: bool = False) -> TaskRef:
        """Records a task that is not yet runnable (its status message is not posted yet, or its
        repository is still to be chosen: CHOOSING). `repo` binds a new agent thread; `pinned`
        leaves the task to this process alone (the terminal's `exec`)."""
        thread, task = await self.store.new_task(
            channel=channel, thread_ts=thread_ts, requester=user, requester_name=user_name, prompt=text,
            mention_ts=mention_ts, model=model, requester_email=user_email, repo=repo, status=status,
            pinned=self.worker_name if pinned else "")
        return task_ref(task, thread)

    async def enqueue(self, ref: TaskRef, status_ts: str = "") -> TaskRef:
        if not await self.plans.queue(ref.task_id, frozenset({S.PENDING, S.CHOOSING}), status_ts=status_ts):
            return ref  # queued already (a double click on the repository chooser)
        self.signals.local("queue")
        return TaskRef(**{**ref.__dict__, "status_ts": status_ts})

    async def choose_repo(self, task_id: int, repo: RepoBinding) -> TaskRef | None:
        """The requester picked the repository of a CHOOSING task: bind its thread; None when
        picked already (a double click)."""
        task = await move(self.store, task_id, S.PENDING, among=frozenset({S.CHOOSING}))
        if task is None:
            return None
        thread = await self.store.update_thread(task.thread_id, **dataclasses.asdict(repo))
        return task_ref(task, thread)

    # ---- stopping --------------------------------------------------------------------------

    async def stop_task(self, task_id: int, by: str) -> StopResult:
        """Stops a queued or running task, wherever it runs."""
        task = await self.store.get_task(task_id)
        if task is None:
            return StopResult(StopCode.NOT_FOUND, task_id)
        if S(task.status) in WAITING:
            moved = await move(self.store, task_id, S.STOPPED, among=WAITING, stopped_by=by, finished_at=utcnow(),
                               announced=False)
            if moved is not None:
                await self._announce(moved)
                return StopResult(StopCode.DEQUEUED, task_id, S.STOPPED)
            task = await self.store.get_task(task_id)  # claimed meanwhile: stop it running
            assert task is not None
        if S(task.status) != S.RUNNING:
            return StopResult(StopCode.NOT_RUNNING, task_id, S(task.status))
        if await self.queue.request_stop(task_id, by) is None:
            again = await self.store.get_task(task_id)
            if again is not None and again.status == S.RUNNING:
                return StopResult(StopCode.ALREADY_STOPPING, task_id, S.RUNNING)
            return StopResult(StopCode.NOT_RUNNING, task_id, S(again.status) if again else None)
        local = self._runs.get(task_id)
        if local is not None:  # here: no need to wait for the notice
            local.stop(by)
        thread = await self.store.get_thread(task.thread_id)
        if thread is not None:
            await self.bus.emit(task_ref(task, thread), TaskProgress("Stopping…"))
        return StopResult(StopCode.STOPPING, task_id, S.RUNNING)

    async def _watch_stops(self) -> None:
        """Stops asked for in other processes, for tasks running here."""
        wake = self.signals.waiter("stop")
        while True:
            await wake.wait()
            if not self._runs:
                continue
            try:
                for task in await self.queue.stops_for(self.worker_name):
                    assert task.id is not None
                    run = self._runs.get(task.id)
                    if run is not None:
                        run.stop(task.stop_by)
            except Exception:
                log.exception("could not look for stop requests")

    # ---- repositories ----------------------------------------------------------------------

    async def check_repo(self, url: str, branch: str = "") -> str:
        """Empty when the repository (and branch) can be reached; else what is wrong."""
        return await self.ctx.repo_ops.check(url, branch)

    async def skills(self, repo: Repository | None) -> tuple[Catalog, str]:
        """The skills a task with `repo` could use, and a note on the repository's own."""
        return await skill_set.listing(self.ctx, repo)

    async def url_refusal(self, url: str, *, trusted: bool) -> str:
        """Why a `repo=URL` may not be used (a non-admin's is `trusted=False`); "" when it may."""
        return await self.ctx.repo_ops.refusal(url, trusted=trusted)

    async def push(self, task_id: int, *, by: str) -> PushResult:
        task = await self.store.get_task(task_id)
        thread = await self.store.get_thread(task.thread_id) if task else None
        if task is None or thread is None:
            return PushResult(PushCode.NOT_FOUND, task_id=task_id)
        active = [t for t in await self.store.thread_tasks(task.thread_id) if t.status in (S.QUEUED, S.RUNNING)]
        if active:
            assert active[0].id is not None
            return PushResult(PushCode.BUSY, branch=thread.branch, task_id=active[0].id)
        result = await self.ctx.repo_ops.push(thread, task)
        log.info("push of thread %s by %s: %s", thread.id, by, result.code)
        return result

    # ---- the queue -------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        seen, last_claim, signalled = -1, 0.0, False
        wake = self.signals.waiter("queue")
        while not self._closing:
            try:
                # A signal says something was queued: claimed at once (the counter is for polling).
                counter = seen if signalled else await self.coord.queue_counter()
                if signalled or counter != seen or time.monotonic() - last_claim >= CLAIM_AT_LEAST_S:
                    seen, last_claim = counter, time.monotonic()
                    while not self._closing:
                        task = await self.queue.claim_next(self.limits, self.worker_name,
                                                           pinned_only=self.pinned_only)
                        if task is None:
                            break
                        self._start(task)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher error; retrying")
            signalled = await wake.wait()

    def _start(self, task: Task) -> None:
        assert task.id is not None  # claimed: read from the store
        self._positions.pop(task.id, None)
        runner = asyncio.create_task(self._run(task), name=f"task-{task.id}")
        self._running[task.id] = runner

    async def _run(self, task: Task) -> None:
        assert task.id is not None
        try:
            thread = await self.store.get_thread(task.thread_id)
            assert isinstance(thread, AgentThread)
            run = self._runs[task.id] = TaskRun(self.ctx, task, thread, worker=self.worker_name)
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
            self.signals.local("queue")

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
                runs = sorted(self._runs.values(), key=lambda r: disks.allocated(r.ref.thread_id), reverse=True)
                # Under half the reserve, every task stops: the database must stay writable.
                for run in runs if free < reserve // 2 else runs[:1]:
                    run.halt("The bot's disk is nearly full, so this task (among those with the largest "
                             "workspaces) was stopped.")
            except Exception:
                log.exception("disk guard failed")

    async def _fail_crashed(self, task: Task, exc: Exception) -> None:
        assert task.id is not None
        try:
            moved = await move(self.store, task.id, S.FAILED, among=frozenset({S.RUNNING}), of_worker=self.worker_name,
                               finished_at=utcnow(), error=f"internal error: {brief(exc)}")
            if moved is None:
                return  # it reached a final status; only what came after failed
            thread = await self.store.get_thread(task.thread_id)
            if thread is not None:
                await self.bus.emit(task_ref(task, thread), TaskFinished(
                    status=S.FAILED, error=f"Internal error ({exc.__class__.__name__}): {brief(exc)}"))
        except Exception:
            log.exception("could not report the crash of task %s", task.id)

    async def _follow_up_leftovers(self, task: Task) -> None:
        """Replies that arrived as the task was ending were not read by it: they start a follow-up
        (after a Stop they wait for the next reply instead)."""
        assert task.id is not None
        done = await self.store.get_task(task.id)
        if done is None or done.status not in (S.DONE, S.FAILED):
            return
        rows = await self.store.peek_inbox(task.thread_id)
        if not rows:
            return
        thread = await self.store.get_thread(task.thread_id)
        assert thread is not None and rows[0].id is not None
        ref = await self.record(channel=thread.channel, thread_ts=thread.thread_ts, user=rows[0].user,
                                user_name=rows[0].user_name, text=rows[0].text, mention_ts=rows[0].ts)
        await self.store.take_inbox(task.thread_id, ref.task_id, only=[rows[0].id])
        await self.enqueue(ref)

    async def _show_positions(self) -> None:
        """Queue positions, shown by the one process that renders to Slack."""
        seen = -1
        wake = self.signals.waiter("queue", poll_s=1.0)
        while True:
            await wake.wait()
            if not self.positions_owner():
                continue
            try:
                counter = await self.coord.queue_counter()
                if counter != seen:
                    seen = counter
                    await self._publish_positions()
            except Exception:
                log.exception("could not publish queue positions")

    async def _publish_positions(self) -> None:
        queued = await self.store.tasks_with_status(S.QUEUED)
        self._positions = {k: v for k, v in self._positions.items() if k in {t.id for t in queued}}
        for position, task in enumerate(queued, start=1):
            assert task.id is not None
            if self._positions.get(task.id) == position:
                continue
            self._positions[task.id] = position
            thread = await self.store.get_thread(task.thread_id)
            if thread is not None:
                await self.bus.emit(task_ref(task, thread), TaskQueued(position))
