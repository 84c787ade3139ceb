"""The store on SQLite and on PostgreSQL (tests/db.py): what processes sharing one database rely on.
Deliveries recorded once, compare-and-set moves, replies taken once, claims in order within the
limits, times in UTC. "Another process" is a second Store on the same database: its own engine,
connections and threads."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, make_url, text

from slackbot.protocol import TaskStatus
from slackbot.store import Limits, Queue, Store, Task
from slackbot.store.models import utcnow
from tests.db import is_postgres

QUEUED, RUNNING, DONE = TaskStatus.QUEUED.value, TaskStatus.RUNNING.value, TaskStatus.DONE.value


@pytest.fixture
async def store(db_url):
    opened = Store(db_url)
    await opened.upgrade()
    yield opened
    await opened.aclose()


@pytest.fixture
async def other(db_url, store):
    """A second process's store on the same database (migrated by the first)."""
    opened = Store(db_url)
    yield opened
    await opened.aclose()


def mention(thread_ts: str, *, channel: str = "C1", user: str = "U1", **extra) -> dict:
    return dict(channel=channel, thread_ts=thread_ts, requester=user, requester_name=user, prompt="do it",
                mention_ts=thread_ts, model="m", **extra)


async def queued(store: Store, thread_ts: str, at: datetime, **fields) -> Task:
    _thread, task = await store.new_task(**mention(thread_ts, **fields))
    moved = await store.transition(task.id, [TaskStatus.PENDING], status=QUEUED, queued_at=at)
    assert moved is not None
    return moved


def as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# ---- deliveries ----------------------------------------------------------------------------

async def test_a_delivery_makes_one_task_however_often_and_wherever_it_arrives(store, other):
    first = await store.new_task_once(("event:Ev1", "msg:C1:1.0"), **mention("1.0"))
    assert first is not None
    # The same message again: a retry (same event id) and its twin (`message`, another event id).
    assert await store.new_task_once(("event:Ev1", "msg:C1:1.0"), **mention("1.0")) is None
    assert await other.new_task_once(("event:Ev2", "msg:C1:1.0"), **mention("1.0")) is None
    assert [t.id for t in await store.thread_tasks(first[0].id)] == [first[1].id]
    assert await store.seen("event:Ev2") is False  # a refused delivery records none of its keys

    # Five deliveries of one message at once, from two processes: one task.
    results = await asyncio.gather(*(
        (store if i % 2 else other).new_task_once((f"event:Ew{i}", "msg:C1:2.0"), **mention("2.0"))
        for i in range(5)))
    made = [r for r in results if r is not None]
    assert len(made) == 1
    assert len(await store.thread_tasks(made[0][0].id)) == 1

    # Two different mentions in one new thread at once: two tasks, one agent thread.
    results = await asyncio.gather(store.new_task_once(("event:Ex1",), **mention("3.0")),
                                   other.new_task_once(("event:Ex2",), **mention("3.0")))
    assert None not in results
    (thread_a, task_a), (thread_b, task_b) = results
    assert thread_a.id == thread_b.id and task_a.id != task_b.id


async def test_first_time_is_true_once_per_key(store, other):
    assert await store.first_time("event:E1", "msg:C1:9.0") is True
    assert await other.first_time("event:E1") is False
    assert await store.first_time("event:E2", "msg:C1:9.0") is False  # one key seen: the whole delivery
    assert await store.seen("event:E2") is False
    answers = await asyncio.gather(*((store if i % 2 else other).first_time("event:E3") for i in range(6)))
    assert sorted(answers) == [False] * 5 + [True]


# ---- tasks ---------------------------------------------------------------------------------

async def test_transition_is_compare_and_set(store, other):
    _thread, task = await store.new_task(**mention("1.0"))
    assert (await store.transition(task.id, [TaskStatus.PENDING], status=QUEUED, queued_at=utcnow())).status == QUEUED
    assert await store.transition(task.id, [TaskStatus.PENDING], status=QUEUED) is None  # a double click

    # A Stop and a start at once, from two processes: one wins, and the row is the winner's.
    won = await asyncio.gather(
        store.transition(task.id, [TaskStatus.QUEUED], status=TaskStatus.STOPPED.value, stopped_by="U9"),
        other.transition(task.id, [TaskStatus.QUEUED], status=RUNNING, started_at=utcnow()))
    winners = [t for t in won if t is not None]
    assert len(winners) == 1
    row = await other.get_task(task.id)
    assert (row.status, row.stopped_by) == (winners[0].status, winners[0].stopped_by)


async def test_only_the_tasks_own_worker_moves_it_with_worker(store):
    queue = Queue(store)
    task = await queued(store, "1.0", utcnow())
    assert (await queue.claim_next(Limits(total=1, per_user=1, per_channel=1), "w1")).id == task.id
    assert await store.transition(task.id, [TaskStatus.RUNNING], of_worker="w2", status=DONE) is None
    done = await store.transition(task.id, [TaskStatus.RUNNING], of_worker="w1", status=DONE, finished_at=utcnow())
    assert done is not None and (done.status, done.worker) == (DONE, "w1")


# ---- replies (steering) --------------------------------------------------------------------

async def test_two_takers_never_share_a_reply(store, other):
    thread, task = await store.new_task(**mention("1.0"))
    ids = [await store.add_inbox(thread.id, user="U2", user_name="Bo", text=f"reply {i}", ts=f"{10 + i}.5")
           for i in range(30)]
    one, two = await asyncio.gather(store.take_inbox(thread.id, task.id), other.take_inbox(thread.id, task.id + 1))
    taken = [r.id for r in one] + [r.id for r in two]
    assert sorted(taken) == ids  # every reply once, none twice
    for rows in (one, two):
        assert [r.ts for r in rows] == sorted((r.ts for r in rows), key=float)  # oldest first
    assert await store.peek_inbox(thread.id) == []
    assert await store.take_inbox(thread.id, task.id) == []

    late = await store.add_inbox(thread.id, user="U2", user_name="Bo", text="late", ts="99.0")
    later = await store.add_inbox(thread.id, user="U2", user_name="Bo", text="later", ts="98.0")
    assert [r.id for r in await other.take_inbox(thread.id, task.id, only=[late])] == [late]
    assert [r.text for r in await store.peek_inbox(thread.id)] == ["later"]
    assert [r.id for r in await store.take_inbox(thread.id, task.id, only=[late, later])] == [later]


# ---- claims --------------------------------------------------------------------------------

async def test_claims_take_the_oldest_task_that_fits_the_limits(store):
    queue = Queue(store)
    start = utcnow() - timedelta(minutes=10)
    at = [start + timedelta(seconds=i) for i in range(10)]
    a1 = await queued(store, "1.0", at[1], user="U1", channel="C1")
    a2 = await queued(store, "1.0", at[2], user="U1", channel="C1")  # the same thread: after a1
    b = await queued(store, "2.0", at[0], user="U2", channel="C2")  # the oldest
    c = await queued(store, "3.0", at[3], user="U1", channel="C2")
    pinned = await queued(store, "4.0", at[4], user="U3", channel="C3", pinned="terminal-1")
    limits = Limits(total=3, per_user=1, per_channel=5)

    assert (await queue.claim_next(limits, "w1")).id == b.id
    claimed = await queue.claim_next(limits, "w1")
    assert claimed.id == a1.id
    assert (claimed.status, claimed.worker) == (RUNNING, "w1") and claimed.started_at is not None
    # a2 waits for a1 (its thread), c for U1's running task, and the pinned task for its worker.
    assert await queue.claim_next(limits, "w1") is None

    await store.transition(a1.id, [TaskStatus.RUNNING], status=DONE)
    assert (await queue.claim_next(limits, "w1")).id == a2.id  # older than c
    assert await queue.claim_next(limits, "w1") is None
    await store.transition(a2.id, [TaskStatus.RUNNING], status=DONE)
    assert (await queue.claim_next(limits, "w1")).id == c.id

    d = await queued(store, "5.0", at[5], user="U4", channel="C2")
    assert await queue.claim_next(Limits(total=2, per_user=9, per_channel=9), "w1") is None  # b and c run
    assert await queue.claim_next(Limits(total=9, per_user=9, per_channel=2), "w1") is None  # both in C2
    assert (await queue.claim_next(Limits(total=3, per_user=1, per_channel=3), "w1")).id == d.id
    assert await queue.claim_next(Limits(total=9, per_user=9, per_channel=9), "w1") is None
    assert await queue.claim_next(Limits(total=9, per_user=9, per_channel=9), "w2", pinned_only=True) is None
    assert (await queue.claim_next(Limits(total=9, per_user=9, per_channel=9), "terminal-1",
                                   pinned_only=True)).id == pinned.id
    running = await store.tasks_with_status(TaskStatus.RUNNING)
    assert [(t.id, t.worker) for t in running] == [
        (b.id, "w1"), (c.id, "w1"), (pinned.id, "terminal-1"), (d.id, "w1")]  # queue order


async def test_claimers_in_two_processes_take_each_task_once_within_the_total(store, other):
    start = utcnow() - timedelta(minutes=10)
    tasks = [await queued(store, f"{i}.0", start + timedelta(seconds=i), user=f"U{i}", channel=f"C{i}")
             for i in range(8)]
    limits = Limits(total=5, per_user=5, per_channel=5)
    queues = [Queue(store), Queue(other)]
    claimed = await asyncio.gather(*(queues[i % 2].claim_next(limits, f"w{i % 2}") for i in range(12)))
    ids = [t.id for t in claimed if t is not None]
    assert sorted(ids) == [t.id for t in tasks[:5]]  # the five oldest, each once
    running = await other.tasks_with_status(TaskStatus.RUNNING)
    assert sorted((t.id, t.worker) for t in running) == sorted((t.id, t.worker) for t in claimed if t)


# ---- times ---------------------------------------------------------------------------------

async def test_times_are_stored_in_utc_whatever_the_servers_zone(databases):
    url = databases.new()
    if is_postgres(url):  # a server (here: a database) in another zone than UTC
        execute(url, f'ALTER DATABASE "{make_url(url).database}" SET timezone TO \'America/New_York\'')
    store = Store(url)
    try:
        await store.upgrade()
        _thread, task = await store.new_task(**mention("1.0"))
        written = as_utc(task.created_at)
        assert abs(written - utcnow()) < timedelta(minutes=1)
        read = await read_task(url, task.id)
        assert as_utc(read.created_at) == written
        # Stored as UTC wall-clock time, so other processes (and people reading the table) agree.
        epoch = ("SELECT extract(epoch FROM created_at) FROM task" if is_postgres(url)
                 else "SELECT CAST(strftime('%s', created_at) AS REAL) FROM task")
        assert abs(float(execute(url, epoch)[0][0]) - written.timestamp()) < 1.5
        # Comparisons in SQL against this process's clock.
        await store.first_time("event:old")
        await store.prune_seen(older_than=timedelta(hours=1))
        assert await store.seen("event:old")
        await store.prune_seen(older_than=timedelta(seconds=-5))
        assert not await store.seen("event:old")
    finally:
        await store.aclose()


async def read_task(url: str, task_id: int) -> Task:
    """The task as a fresh process reads it."""
    fresh = Store(url)
    try:
        return await fresh.get_task(task_id)
    finally:
        await fresh.aclose()


def execute(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()
