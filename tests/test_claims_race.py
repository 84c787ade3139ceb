"""Claims racing across connections: the global, per-user, per-channel and per-thread limits hold
when several workers claim at the same moment (each Store here is its own connection pool, as a
separate process's would be). Without the claim lock these rounds go over the limits."""

from __future__ import annotations

import asyncio

from slackbot.protocol import TaskStatus
from slackbot.store import Limits, Queue, Store

ROUNDS = 10
CLAIMERS = 4


async def _round(stores: list[Store], limits: Limits, tasks: list[dict]) -> list[int]:
    first = stores[0]
    ids = []
    for fields in tasks:
        _, task = await first.new_task(requester_name="", prompt="p", mention_ts="", model="", **fields)
        await first.transition(task.id, [TaskStatus.PENDING], status="queued")
        ids.append(task.id)
    claims = await asyncio.gather(*(Queue(s).claim_next(limits, f"w{i}") for i, s in enumerate(stores)))
    for task in claims:  # end them, so the next round starts from nothing running
        if task is not None:
            await first.transition(task.id, [TaskStatus.RUNNING], status="done")
    for task_id in ids:
        await first.transition(task_id, [TaskStatus.QUEUED], status="stopped")
    return [t.id for t in claims if t is not None]


async def test_limits_hold_with_workers_racing(db_url):
    stores = [Store(db_url) for _ in range(CLAIMERS)]
    await stores[0].upgrade()
    try:
        for n in range(ROUNDS):
            # One user, four tasks in four threads: per user 1.
            claimed = await _round(stores, Limits(10, 1, 10), [
                {"channel": "C1", "thread_ts": f"{n}.{i}", "requester": "U1"} for i in range(4)])
            assert len(claimed) == 1, f"round {n}: per-user limit broken: {claimed}"
            # One channel: per channel 2.
            claimed = await _round(stores, Limits(10, 10, 2), [
                {"channel": "C2", "thread_ts": f"{n}.c{i}", "requester": f"U{i}"} for i in range(4)])
            assert len(claimed) == 2, f"round {n}: per-channel limit broken: {claimed}"
            # Installation-wide: 3.
            claimed = await _round(stores, Limits(3, 10, 10), [
                {"channel": f"C{i}", "thread_ts": f"{n}.t{i}", "requester": f"U{i}"} for i in range(4)])
            assert len(claimed) == 3, f"round {n}: total limit broken: {claimed}"
            # One thread: never two tasks on its workspace.
            claimed = await _round(stores, Limits(10, 10, 10), [
                {"channel": "C3", "thread_ts": f"{n}.same", "requester": f"U{i}"} for i in range(4)])
            assert len(claimed) == 1, f"round {n}: two tasks of one thread running: {claimed}"
    finally:
        for s in stores:
            await s.aclose()
