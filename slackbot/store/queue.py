"""The task queue across processes: claims under one lock, stop requests, a dead worker's tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlmodel import Session, col, select

from ..protocol import TaskStatus
from .coord import bump_queue, lock_claims, notify
from .models import Task, utcnow

if TYPE_CHECKING:
    from .store import Store

QUEUED, RUNNING = TaskStatus.QUEUED.value, TaskStatus.RUNNING.value


@dataclass(frozen=True)
class Limits:
    total: int  # running tasks of the whole installation
    per_user: int
    per_channel: int
    per_worker: int = 0  # running tasks of one worker process (0: no limit beyond `total`)


class Queue:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def claim_next(self, limits: Limits, worker: str, *, pinned_only: bool = False) -> Task | None:
        """Moves the oldest queued task that fits the limits to running for `worker`, and returns it.

        Claims take the installation's claim lock first (`lock_claims`), so the limits are counted
        and the task taken in one transaction no other claimer interleaves with; on Postgres the
        candidates are also read FOR UPDATE SKIP LOCKED, passing over a task another transaction is
        changing (a Stop) instead of waiting for it. A task pinned to a worker (a terminal's `exec`)
        is claimed only by that worker; with `pinned_only` the worker claims nothing else.
        """
        def fn(s: Session) -> Task | None:
            lock_claims(s)
            running = s.exec(select(Task).where(Task.status == RUNNING)).all()
            mine = sum(1 for t in running if t.worker == worker)
            if len(running) >= limits.total or (limits.per_worker and mine >= limits.per_worker):
                s.commit()
                return None
            by_user: dict[str, int] = {}
            by_channel: dict[str, int] = {}
            busy_threads = {t.thread_id for t in running}
            for t in running:
                by_user[t.requester] = by_user.get(t.requester, 0) + 1
                by_channel[t.channel] = by_channel.get(t.channel, 0) + 1
            q = select(Task).where(Task.status == QUEUED)
            q = q.where(Task.pinned == worker) if pinned_only else q.where(col(Task.pinned).in_(("", worker)))
            q = q.order_by(col(Task.queued_at), col(Task.id))
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            for task in s.exec(q).all():
                if (by_user.get(task.requester, 0) >= limits.per_user
                        or by_channel.get(task.channel, 0) >= limits.per_channel
                        or task.thread_id in busy_threads):
                    busy_threads.add(task.thread_id)  # keep a thread's tasks in order
                    continue
                # Compare-and-set as well: a task is never run twice, whatever the lock.
                if not s.exec(update(Task).where(col(Task.id) == task.id, col(Task.status) == QUEUED).values(
                        status=RUNNING, worker=worker, started_at=utcnow())).rowcount:
                    continue
                s.commit()
                s.refresh(task)
                return task
            s.commit()
            return None
        return await self.store.run(fn)

    async def request_stop(self, task_id: int, by: str) -> Task | None:
        """Records a Stop for a running task and tells its worker; None when it is not running or
        a Stop was asked for already."""
        def fn(s: Session) -> Task | None:
            changed = s.exec(update(Task).where(col(Task.id) == task_id, col(Task.status) == RUNNING,
                                                col(Task.stop_by) == "").values(stop_by=by)).rowcount
            if changed:
                notify(s, f"stop:{task_id}")
            s.commit()
            return s.get(Task, task_id) if changed else None
        return await self.store.run(fn)

    async def stops_for(self, worker: str) -> list[Task]:
        """The worker's running tasks somebody asked to stop."""
        return await self.store.run(lambda s: list(s.exec(select(Task).where(
            Task.status == RUNNING, Task.worker == worker, Task.stop_by != "")).all()))

    async def running_on(self, worker: str) -> list[Task]:
        return await self.store.run(lambda s: list(s.exec(select(Task).where(
            Task.status == RUNNING, Task.worker == worker)).all()))

    async def pinned_to(self, worker: str) -> list[Task]:
        """Tasks only `worker` may run that are still waiting for it."""
        return await self.store.run(lambda s: list(s.exec(select(Task).where(
            Task.status == QUEUED, Task.pinned == worker)).all()))

    async def stale_pending(self, older_than: timedelta) -> list[Task]:
        """Tasks recorded but never queued (their front died before posting the status message)."""
        limit = utcnow() - older_than
        return await self.store.run(lambda s: list(s.exec(select(Task).where(
            Task.status == TaskStatus.PENDING.value, Task.created_at < limit)).all()))

    async def changed(self) -> None:
        def fn(s: Session) -> None:
            bump_queue(s)
            s.commit()
        await self.store.run(fn)
