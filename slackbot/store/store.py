"""Database access. Every call runs on the store's own bounded executor, never on the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Callable, Iterable, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, create_engine, func, select

from ..protocol import FINAL_STATUSES, TaskStatus
from . import migrations
from .coord import bump_queue, notify
from .models import AgentThread, EventRow, HistoryRow, InboxRow, PatchRow, RepoBinding, SeenRow, Task, utcnow

T = TypeVar("T")
NUL, NUL_SHOWN = "\x00", "\ufffd"  # PostgreSQL text cannot hold NUL (SQLite can): stored as U+FFFD on both
M = TypeVar("M", bound=SQLModel)
FINAL = tuple(FINAL_STATUSES)


class Store:
    def __init__(self, url: str, *, workers: int = 4, timeout_s: float = 30.0) -> None:
        sqlite = url.startswith("sqlite")
        if sqlite:
            options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": timeout_s}}
        else:
            # Each executor thread holds at most one connection; a dropped one is replaced, not used.
            options = {"pool_pre_ping": True, "pool_size": workers, "max_overflow": 0, "pool_timeout": timeout_s}
            if url.startswith("postgresql"):
                # Times are UTC in `timestamp without time zone` columns: the session's zone converts
                # an aware datetime written or compared there, so it must be UTC, whatever the server's.
                options["connect_args"] = {"options": "-c timezone=UTC"}
        self.engine = create_engine(url, **options)
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
                            repo: RepoBinding | None = None, status: TaskStatus = TaskStatus.PENDING,
                            pinned: str = "", automation_id: int | None = None,
                            files: list[dict[str, Any]] | None = None) -> tuple[AgentThread, Task] | None:
        """`new_task` and the delivery keys in one transaction: None when a key was seen before (a
        retry or a twin of this delivery recorded it). A failure records neither, so a delivery is
        never marked seen without its task. `files`: attached in Slack ({id, name, size, mimetype, url})."""
        def fn(s: Session) -> tuple[AgentThread, Task] | None:
            for _attempt in range(3):
                if not self._mark(s, keys):
                    return None
                thread = s.exec(select(AgentThread).where(
                    AgentThread.channel == channel, AgentThread.thread_ts == thread_ts)).first()
                if thread is None:
                    thread = AgentThread(channel=channel, thread_ts=thread_ts, requester=requester,
                                         **(dataclasses.asdict(repo) if repo else {}))
                    s.add(thread)
                    try:
                        s.flush()
                    except IntegrityError:  # another delivery made the thread meanwhile: again, with it
                        s.rollback()
                        continue
                assert thread.id is not None  # read or flushed: the row has its key
                task = Task(thread_id=thread.id, channel=channel, requester=requester,
                            requester_name=_text(requester_name), requester_email=_text(requester_email),
                            prompt=_text(prompt), mention_ts=mention_ts, model=model, status=str(status),
                            pinned=pinned, automation_id=automation_id, files=_files(files))
                s.add(task)
                s.commit()
                s.refresh(thread)
                s.refresh(task)
                return thread, task
            raise RuntimeError("the agent thread kept changing while the task was recorded")
        return await self.run(fn)

    async def add_inbox_once(self, keys: tuple[str, ...], thread_id: int, *, user: str, user_name: str, text: str,
                             ts: str, files: list[dict[str, Any]] | None = None) -> int | None:
        """`add_inbox` and the delivery keys in one transaction; None when a key was seen before."""
        def fn(s: Session) -> int | None:
            if not self._mark(s, keys):
                return None
            row = InboxRow(thread_id=thread_id, user=user, user_name=_text(user_name), text=_text(text), ts=ts,
                           files=_files(files))
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
        rows = await self.run(lambda s: s.exec(select(AgentThread).where(col(AgentThread.id).in_(thread_ids))).all())
        return {t.id: t for t in rows if t.id is not None}

    async def new_task(self, **fields: Any) -> tuple[AgentThread, Task]:
        """Records a task (not yet runnable: pending or choosing) in the thread's agent thread,
        creating it if new (`new_task_once` without delivery keys)."""
        recorded = await self.new_task_once((), **fields)
        assert recorded is not None  # with no keys, nothing can have been seen before
        return recorded

    async def get_task(self, task_id: int) -> Task | None:
        return await self.run(lambda s: s.get(Task, task_id))

    async def get_tasks(self, task_ids: set[int]) -> dict[int, Task]:
        rows = await self.run(lambda s: s.exec(select(Task).where(col(Task.id).in_(task_ids))).all())
        return {t.id: t for t in rows if t.id is not None}

    async def update(self, model: type[M], row_id: Any, **fields: Any) -> M | None:
        """Sets fields of one row; returns it (None when it does not exist)."""
        def fn(s: Session) -> M | None:
            row = s.get(model, row_id)
            if row is None:
                return None
            for k, v in _texts(fields).items():
                setattr(row, k, v)
            s.add(row)
            s.commit()
            s.refresh(row)
            return row
        return await self.run(fn)

    async def update_task(self, task_id: int, **fields: Any) -> Task | None:
        """Fields other than the status (that moves only by `transition`, from `runs/states.py`)."""
        if "status" in fields:
            raise ValueError("a task's status changes only through runs.states")
        return await self.update(Task, task_id, **fields)

    async def update_thread(self, thread_id: int, **fields: Any) -> AgentThread:
        thread = await self.update(AgentThread, thread_id, **fields)
        assert thread is not None, f"agent thread {thread_id}"  # threads are never deleted
        return thread

    async def transition(self, task_id: int, from_statuses: Iterable[TaskStatus], *, of_worker: str | None = None,
                         queue_changed: bool = False, **fields: Any) -> Task | None:
        """Compare-and-set: updates the task only if its status is one of `from_statuses` (and, with
        `of_worker`, it is that worker's); returns it then, else None (someone else moved it first: a
        double click, another worker, the sweep after a worker was presumed dead). Only
        `runs/states.py` calls it with a new status. `queue_changed` tells waiting workers."""
        if "worker" in fields:  # set by claims alone; `of_worker` is the condition
            raise ValueError("a task's worker is set only by a claim")
        def fn(s: Session) -> Task | None:
            q = update(Task).where(col(Task.id) == task_id, col(Task.status).in_([str(f) for f in from_statuses]))
            if of_worker is not None:
                q = q.where(col(Task.worker) == of_worker)
            changed = s.exec(q.values(**_texts(fields))).rowcount
            if changed and queue_changed:
                bump_queue(s)
            s.commit()
            return _fresh(s, task_id) if changed else None
        return await self.run(fn)

    async def tasks_with_status(self, *statuses: TaskStatus) -> list[Task]:
        """Oldest first; queued tasks in queue order."""
        return await self.run(lambda s: list(s.exec(
            select(Task).where(col(Task.status).in_([str(x) for x in statuses]))
            .order_by(col(Task.queued_at), col(Task.id))).all()))

    async def unannounced_tasks(self) -> list[Task]:
        """Tasks with a final status whose final message was never delivered (a crash in between)."""
        return await self.run(lambda s: list(s.exec(
            select(Task).where(col(Task.status).in_(FINAL), Task.announced == False)  # noqa: E712
            .order_by(col(Task.id))).all()))

    async def recent_tasks(self, *, channel: str | None = None, user: str | None = None,
                           limit: int = 15) -> list[Task]:
        def fn(s: Session) -> list[Task]:
            q = select(Task).where(Task.status != TaskStatus.PENDING.value)
            if channel:
                q = q.where(Task.channel == channel)
            if user:
                q = q.where(Task.requester == user)
            return list(s.exec(q.order_by(col(Task.id).desc()).limit(limit)).all())
        return await self.run(fn)

    async def thread_tasks(self, thread_id: int) -> list[Task]:
        return await self.run(lambda s: list(s.exec(
            select(Task).where(Task.thread_id == thread_id).order_by(col(Task.id))).all()))

    # ---- events ----------------------------------------------------------------------------

    async def add_event(self, task_id: int, data: dict[str, Any]) -> int:
        def fn(s: Session) -> int:
            row = EventRow(task_id=task_id, type=data["type"], data=json.dumps(data))
            s.add(row)
            s.flush()
            notify(s, "event")
            s.commit()
            assert row.id is not None  # flushed: the row has its key
            return row.id
        return await self.run(fn)

    async def events_after(self, after: int, limit: int = 500) -> list[EventRow]:
        """Events of every task with an id above `after`, in id order (the Slack output's feed)."""
        return await self.run(lambda s: list(s.exec(
            select(EventRow).where(col(EventRow.id) > after).order_by(col(EventRow.id)).limit(limit)).all()))

    async def last_event_id(self) -> int:
        return await self.run(lambda s: s.exec(select(func.max(EventRow.id))).one() or 0)

    async def set_patch(self, task_id: int, patch: str) -> None:
        def fn(s: Session) -> None:
            s.merge(PatchRow(task_id=task_id, text=_text(patch)))
            s.commit()
        await self.run(fn)

    async def patch(self, task_id: int) -> str:
        row = await self.run(lambda s: s.get(PatchRow, task_id))
        return row.text if row else ""

    async def last_event(self, task_id: int, kind: str) -> dict[str, Any] | None:
        row = await self.run(lambda s: s.exec(select(EventRow).where(EventRow.task_id == task_id, EventRow.type == kind)
                                              .order_by(col(EventRow.id).desc())).first())
        return json.loads(row.data) if row else None

    async def events(self, task_id: int) -> list[dict[str, Any]]:
        rows = await self.run(lambda s: list(s.exec(
            select(EventRow).where(EventRow.task_id == task_id).order_by(col(EventRow.id))).all()))
        return [json.loads(r.data) for r in rows]

    # ---- model history ---------------------------------------------------------------------

    async def add_history(self, thread_id: int, task_id: int, message: dict[str, Any], tokens: int) -> None:
        def fn(s: Session) -> None:
            s.add(HistoryRow(thread_id=thread_id, task_id=task_id, data=json.dumps(message), tokens=tokens))
            s.commit()
        await self.run(fn)

    async def history(self, thread_id: int) -> list[HistoryRow]:
        return await self.run(lambda s: list(s.exec(
            select(HistoryRow).where(HistoryRow.thread_id == thread_id).order_by(col(HistoryRow.id))).all()))

    async def set_summary(self, thread_id: int, summary: str, upto: int) -> None:
        await self.update(AgentThread, thread_id, summary=summary, summary_upto=upto)

    # ---- inbox (steering) ------------------------------------------------------------------

    async def add_inbox(self, thread_id: int, *, user: str, user_name: str, text: str, ts: str,
                        files: list[dict[str, Any]] | None = None) -> int:
        def fn(s: Session) -> int:
            row = InboxRow(thread_id=thread_id, user=user, user_name=_text(user_name), text=_text(text), ts=ts,
                           files=_files(files))
            s.add(row)
            s.commit()
            assert row.id is not None  # committed: the row has its key
            return row.id
        return await self.run(fn)

    async def peek_inbox(self, thread_id: int) -> list[InboxRow]:
        rows = await self.run(lambda s: list(s.exec(select(InboxRow).where(
            InboxRow.thread_id == thread_id, col(InboxRow.consumed_by).is_(None))).all()))
        return sorted(rows, key=lambda r: (_ts_key(r.ts), r.id))

    async def take_inbox(self, thread_id: int, task_id: int, only: list[int] | None = None) -> list[InboxRow]:
        """Marks the thread's unread replies (or just the rows `only`) as consumed by this task and
        returns them, oldest first. Each row is taken by compare-and-set: two takers never share one."""
        def fn(s: Session) -> list[InboxRow]:
            q = select(InboxRow).where(InboxRow.thread_id == thread_id, col(InboxRow.consumed_by).is_(None))
            if only is not None:
                q = q.where(col(InboxRow.id).in_(only))
            taken = []
            for row in s.exec(q.order_by(col(InboxRow.id))).all():
                if s.exec(update(InboxRow).where(col(InboxRow.id) == row.id, col(InboxRow.consumed_by).is_(None))
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


def _text(value: Any) -> Any:
    """A NUL (the model, command output or a repository's file can carry one) stored as U+FFFD."""
    return value.replace(NUL, NUL_SHOWN) if isinstance(value, str) and NUL in value else value


def _files(files: list[dict[str, Any]] | None) -> str:
    """Attached files as the `files` columns keep them (JSON text; a NUL in a name stored as U+FFFD)."""
    return _text(json.dumps(files or []))


def _texts(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: _text(v) for k, v in fields.items()}


def _fresh(s: Session, task_id: int) -> Task:
    task = s.get(Task, task_id)
    assert task is not None  # tasks are never deleted
    s.refresh(task)  # the session may hold the row as it was before an UPDATE statement
    return task


def _ts_key(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return float("inf")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # Switching a new file to WAL needs it to itself: a process migrating it meanwhile answers
    # "locked" at once (no busy wait for this one). The mode is kept in the file, so waiting until
    # the first process has set it is enough.
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the bot loses nothing,
    # a power cut may lose the last commits (never consistency). Every task's start commits several
    # times, and an fsync each cost it tens of milliseconds on a busy disk.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
