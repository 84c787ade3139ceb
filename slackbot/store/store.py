"""Database access. Every call runs on the store's own bounded executor, never on the event loop."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, create_engine, func, select

from . import migrations
from .models import AgentThread, EventRow, HistoryRow, InboxRow, SeenRow, Task, utcnow

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "stopped", "interrupted")


@dataclass(frozen=True)
class Limits:
    total: int
    per_user: int
    per_channel: int


class Store:
    def __init__(self, url: str, *, workers: int = 4, timeout_s: float = 30.0) -> None:
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": timeout_s} if sqlite else {},
            pool_pre_ping=not sqlite)
        if sqlite:
            sa_event.listen(self.engine, "connect", _sqlite_pragmas)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="db")
        self._timeout_s = timeout_s

    async def run(self, fn: Callable[[Session], T]) -> T:
        def job() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                return fn(session)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout_s):
            return await loop.run_in_executor(self._executor, job)

    async def upgrade(self) -> migrations.SchemaState:
        """Migrates the schema to the code's head (the state found is returned); raises
        SchemaTooNew for a database a newer slackbot migrated. No timeout: a migration takes what it takes."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, migrations.upgrade, self.engine)

    async def schema(self) -> migrations.SchemaState:
        return await self.run(lambda s: migrations.state(s.connection()))

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    async def ping(self) -> None:
        await self.run(lambda s: s.exec(select(func.count()).select_from(Task)).one())

    # ---- deliveries ------------------------------------------------------------------------

    async def first_time(self, *keys: str) -> bool:
        """Records delivery keys; False when any of them was seen before (a retry or a double)."""
        def fn(s: Session) -> bool:
            if not self._mark(s, keys):
                return False
            s.commit()
            return True
        return await self.run(fn)

    async def seen(self, *keys: str) -> bool:
        """Whether any of these delivery keys was recorded (read only: marking comes with the record)."""
        return await self.run(lambda s: any(s.get(SeenRow, k) is not None for k in keys))

    async def new_task_once(self, keys: tuple[str, ...], *, channel: str, thread_ts: str, requester: str,
                            requester_name: str, prompt: str, mention_ts: str, model: str, requester_email: str = "",
                            repo: dict[str, Any] | None = None,
                            status: str = "pending") -> tuple[AgentThread, Task] | None:
        """`new_task` and the delivery keys in one transaction: None when a key was seen before (a
        retry or a twin of this delivery recorded it). A failure records neither, so a delivery is
        never marked seen without its task."""
        def fn(s: Session) -> tuple[AgentThread, Task] | None:
            for _attempt in range(3):
                if not self._mark(s, keys):
                    return None
                thread = s.exec(select(AgentThread).where(
                    AgentThread.channel == channel, AgentThread.thread_ts == thread_ts)).first()
                if thread is None:
                    thread = AgentThread(channel=channel, thread_ts=thread_ts, requester=requester, **(repo or {}))
                    s.add(thread)
                    try:
                        s.flush()
                    except IntegrityError:  # another delivery made the thread meanwhile: again, with it
                        s.rollback()
                        continue
                task = Task(thread_id=thread.id, channel=channel, requester=requester, requester_name=requester_name,
                            requester_email=requester_email, prompt=prompt, mention_ts=mention_ts, model=model,
                            status=status)
                s.add(task)
                s.commit()
                s.refresh(thread)
                s.refresh(task)
                return thread, task
            raise RuntimeError("the agent thread kept changing while the task was recorded")
        return await self.run(fn)

    async def add_inbox_once(self, keys: tuple[str, ...], thread_id: int, *, user: str, user_name: str, text: str,
                             ts: str) -> int | None:
        """`add_inbox` and the delivery keys in one transaction; None when a key was seen before."""
        def fn(s: Session) -> int | None:
            if not self._mark(s, keys):
                return None
            row = InboxRow(thread_id=thread_id, user=user, user_name=user_name, text=text, ts=ts)
            s.add(row)
            s.commit()
            return row.id
        return await self.run(fn)

    @staticmethod
    def _mark(s: Session, keys: tuple[str, ...]) -> bool:
        """Adds the delivery keys to the session's transaction; False (rolled back) when one exists.
        Written first, so on SQLite the transaction holds the write lock before it reads anything."""
        if not keys:
            return True
        try:
            for k in keys:
                s.add(SeenRow(key=k))
            s.flush()
            return True
        except IntegrityError:
            s.rollback()
            return False

    # ---- threads and tasks -----------------------------------------------------------------

    async def thread_for(self, channel: str, thread_ts: str) -> AgentThread | None:
        return await self.run(lambda s: s.exec(select(AgentThread).where(
            AgentThread.channel == channel, AgentThread.thread_ts == thread_ts)).first())

    async def get_thread(self, thread_id: int) -> AgentThread | None:
        return await self.run(lambda s: s.get(AgentThread, thread_id))

    async def get_threads(self, thread_ids: set[int]) -> dict[int, AgentThread]:
        rows = await self.run(lambda s: s.exec(select(AgentThread).where(AgentThread.id.in_(thread_ids))).all())
        return {t.id: t for t in rows}

    async def new_task(self, **fields: Any) -> tuple[AgentThread, Task]:
        """Records a task (not yet runnable: pending or choosing) in the thread's agent thread,
        creating it if new (`new_task_once` without delivery keys)."""
        recorded = await self.new_task_once((), **fields)
        assert recorded is not None  # with no keys, nothing can have been seen before
        return recorded

    async def get_task(self, task_id: int) -> Task | None:
        return await self.run(lambda s: s.get(Task, task_id))

    async def update(self, model: type[M], row_id: Any, **fields: Any) -> M | None:
        """Sets fields of one row; returns it (None when it does not exist)."""
        def fn(s: Session) -> M | None:
            row = s.get(model, row_id)
            if row is None:
                return None
            for k, v in fields.items():
                setattr(row, k, v)
            s.add(row)
            s.commit()
            s.refresh(row)
            return row
        return await self.run(fn)

    async def update_task(self, task_id: int, **fields: Any) -> Task | None:
        return await self.update(Task, task_id, **fields)

    async def update_thread(self, thread_id: int, **fields: Any) -> AgentThread:
        return await self.update(AgentThread, thread_id, **fields)

    async def transition(self, task_id: int, from_statuses: tuple[str, ...], **fields: Any) -> Task | None:
        """Compare-and-set: updates the task only if its status is one of `from_statuses`; returns it
        then, else None (someone else moved it first: a double click, another worker)."""
        def fn(s: Session) -> Task | None:
            changed = s.execute(update(Task).where(Task.id == task_id, Task.status.in_(from_statuses))
                                .values(**fields)).rowcount
            s.commit()
            return _fresh(s, task_id) if changed else None
        return await self.run(fn)

    async def claim_next(self, limits: Limits, worker: str, only: frozenset[int] | None = None) -> Task | None:
        """Moves the oldest queued task that fits the limits to running, and returns it.

        The final step is a compare-and-set on the status, so two workers never run one task; on
        Postgres the candidate select can become FOR UPDATE SKIP LOCKED when many workers share it.
        `only` restricts the claim to some task ids (a terminal `exec` claims just its own task).
        """
        def fn(s: Session) -> Task | None:
            running = s.exec(select(Task).where(Task.status == "running")).all()
            if len(running) >= limits.total:
                return None
            by_user: dict[str, int] = {}
            by_channel: dict[str, int] = {}
            busy_threads = {t.thread_id for t in running}
            for t in running:
                by_user[t.requester] = by_user.get(t.requester, 0) + 1
                by_channel[t.channel] = by_channel.get(t.channel, 0) + 1
            queued = s.exec(select(Task).where(Task.status == "queued").order_by(Task.queued_at, Task.id)).all()
            for task in queued:
                if only is not None and task.id not in only:
                    continue
                if (by_user.get(task.requester, 0) >= limits.per_user
                        or by_channel.get(task.channel, 0) >= limits.per_channel
                        or task.thread_id in busy_threads):
                    busy_threads.add(task.thread_id)  # keep a thread's tasks in order
                    continue
                claimed = s.execute(update(Task).where(Task.id == task.id, Task.status == "queued").values(
                    status="running", worker=worker, started_at=utcnow())).rowcount
                s.commit()
                if claimed:
                    return _fresh(s, task.id)
            return None
        return await self.run(fn)

    async def tasks_with_status(self, *statuses: str) -> list[Task]:
        """Oldest first; queued tasks in queue order."""
        return await self.run(lambda s: list(s.exec(
            select(Task).where(Task.status.in_(statuses)).order_by(Task.queued_at, Task.id)).all()))

    async def unannounced_tasks(self) -> list[Task]:
        """Tasks with a final status whose final message was never delivered (a crash in between)."""
        return await self.run(lambda s: list(s.exec(
            select(Task).where(Task.status.in_(FINAL), Task.announced == False)  # noqa: E712
            .order_by(Task.id)).all()))

    async def recent_tasks(self, *, channel: str | None = None, user: str | None = None,
                           limit: int = 15) -> list[Task]:
        def fn(s: Session) -> list[Task]:
            q = select(Task).where(Task.status != "pending")
            if channel:
                q = q.where(Task.channel == channel)
            if user:
                q = q.where(Task.requester == user)
            return list(s.exec(q.order_by(Task.id.desc()).limit(limit)).all())
        return await self.run(fn)

    async def thread_tasks(self, thread_id: int) -> list[Task]:
        return await self.run(lambda s: list(s.exec(
            select(Task).where(Task.thread_id == thread_id).order_by(Task.id)).all()))

    # ---- events ----------------------------------------------------------------------------

    async def add_event(self, task_id: int, data: dict[str, Any]) -> None:
        def fn(s: Session) -> None:
            s.add(EventRow(task_id=task_id, type=data["type"], data=json.dumps(data)))
            s.commit()
        await self.run(fn)

    async def last_event(self, task_id: int, kind: str) -> dict[str, Any] | None:
        row = await self.run(lambda s: s.exec(select(EventRow).where(EventRow.task_id == task_id, EventRow.type == kind)
                                              .order_by(EventRow.id.desc())).first())
        return json.loads(row.data) if row else None

    async def events(self, task_id: int) -> list[dict[str, Any]]:
        rows = await self.run(lambda s: list(s.exec(
            select(EventRow).where(EventRow.task_id == task_id).order_by(EventRow.id)).all()))
        return [json.loads(r.data) for r in rows]

    # ---- model history ---------------------------------------------------------------------

    async def add_history(self, thread_id: int, task_id: int, message: dict[str, Any], tokens: int) -> None:
        def fn(s: Session) -> None:
            s.add(HistoryRow(thread_id=thread_id, task_id=task_id, data=json.dumps(message), tokens=tokens))
            s.commit()
        await self.run(fn)

    async def history(self, thread_id: int) -> list[HistoryRow]:
        return await self.run(lambda s: list(s.exec(
            select(HistoryRow).where(HistoryRow.thread_id == thread_id).order_by(HistoryRow.id)).all()))

    async def set_summary(self, thread_id: int, summary: str, upto: int) -> None:
        await self.update(AgentThread, thread_id, summary=summary, summary_upto=upto)

    # ---- inbox (steering) ------------------------------------------------------------------

    async def add_inbox(self, thread_id: int, *, user: str, user_name: str, text: str, ts: str) -> int:
        def fn(s: Session) -> int:
            row = InboxRow(thread_id=thread_id, user=user, user_name=user_name, text=text, ts=ts)
            s.add(row)
            s.commit()
            return row.id
        return await self.run(fn)

    async def peek_inbox(self, thread_id: int) -> list[InboxRow]:
        rows = await self.run(lambda s: list(s.exec(select(InboxRow).where(
            InboxRow.thread_id == thread_id, InboxRow.consumed_by.is_(None))).all()))
        return sorted(rows, key=lambda r: (_ts_key(r.ts), r.id))

    async def take_inbox(self, thread_id: int, task_id: int, only: list[int] | None = None) -> list[InboxRow]:
        """Marks the thread's unread replies (or just the rows `only`) as consumed by this task and
        returns them, oldest first. Each row is taken by compare-and-set: two takers never share one."""
        def fn(s: Session) -> list[InboxRow]:
            q = select(InboxRow).where(InboxRow.thread_id == thread_id, InboxRow.consumed_by.is_(None))
            if only is not None:
                q = q.where(InboxRow.id.in_(only))
            taken = []
            for row in s.exec(q.order_by(InboxRow.id)).all():
                if s.execute(update(InboxRow).where(InboxRow.id == row.id, InboxRow.consumed_by.is_(None))
                             .values(consumed_by=task_id)).rowcount:
                    taken.append(row)
            s.commit()
            # Replies are handled concurrently, so insertion order may differ from Slack's.
            return sorted(taken, key=lambda r: (_ts_key(r.ts), r.id))
        return await self.run(fn)

    async def prune_seen(self, older_than: timedelta = timedelta(days=7)) -> None:
        def fn(s: Session) -> None:
            for row in s.exec(select(SeenRow).where(SeenRow.created_at < utcnow() - older_than)).all():
                s.delete(row)
            s.commit()
        await self.run(fn)


def _fresh(s: Session, task_id: int) -> Task:
    task = s.get(Task, task_id)
    s.refresh(task)  # the session may hold the row as it was before an UPDATE statement
    return task


def _ts_key(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return float("inf")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
