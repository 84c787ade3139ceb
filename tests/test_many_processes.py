"""Many processes on one database, as a team scales out: a Slack front (`run --no-worker`) and two
`worker` processes, each a real subprocess, on SQLite and on Postgres.

Ten tasks spread over both workers; a worker starting leaves the running tasks alone; Stop pressed
in the front and a steering reply reach the worker that runs the task; a worker killed with
`kill -9` has its tasks marked interrupted and their threads told, the other's untouched; a worker
on another host that stops renewing its lease is swept within the lease.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest

from sqlalchemy import update

from slackbot.protocol import TaskStatus
from slackbot.store import Coord, Store, Task, WorkerRow
from slackbot.store.models import utcnow
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.helpers import block_text, bot_messages, mention, reply, wait_final
from tests.processes import spawn, stop_all, until
from tests.test_cli import cli_env
from tests.test_e2e_steering import press, task_containers

pytestmark = pytest.mark.docker
LEASE_S = 6.0


def by_worker(settings) -> Counter:
    return Counter(c["Labels"].get("slackbot.worker", "") for c in task_containers(settings)
                   if c["Labels"].get("slackbot.role") == "agent" and c["State"] == "running")


async def running_tasks(store: Store) -> dict[int, str]:
    return {t.id: t.worker for t in await store.tasks_with_status(TaskStatus.RUNNING)}


async def test_front_and_two_workers_share_the_queue(slack, model, tmp_path, db_url):
    extra = {"DATABASE_URL": db_url, "SLACKBOT_MAX_TASKS": "10", "SLACKBOT_MAX_TASKS_PER_USER": "10",
             "SLACKBOT_MAX_TASKS_PER_CHANNEL": "10", "SLACKBOT_WORKER_MAX_TASKS": "5",
             "SLACKBOT_WORKER_LEASE_S": str(LEASE_S)}
    env = cli_env(tmp_path, slack, model, **extra)
    settings = make_settings(tmp_path / "data", slack, model, **extra)
    store = Store(db_url)
    for i in range(9):
        model.script_for(f"job-{i}", [shell("sleep 600")])
    model.script_for("job-steer", [shell("sleep 4"), text("Heard you.")])
    procs: list[asyncio.subprocess.Process] = []
    try:
        procs.append(await spawn(env, "run", "--no-worker", "--port", "0"))
        await slack.wait_socket_connected(timeout=30)
        first = await spawn(env, "worker")
        procs.append(first)
        threads = {}
        for i in range(9):
            threads[i] = await mention(slack, f"job-{i}")
        threads["steer"] = await mention(slack, "job-steer")

        # The first worker takes its five; the rest wait.
        running = await until(lambda: _at_least(store, 5), 60, "five tasks running")
        assert len(set(running.values())) == 1
        await asyncio.sleep(1.0)
        before = await running_tasks(store)
        assert len(before) == 5, "a worker runs at most SLACKBOT_WORKER_MAX_TASKS"

        # A second worker starting leaves them alone and takes the other five.
        second = await spawn(env, "worker")
        procs.append(second)
        running = await until(lambda: _at_least(store, 10), 60, "ten tasks running")
        assert all(running[t] == w for t, w in before.items()), "running tasks kept their worker"
        assert sorted(Counter(running.values()).values()) == [5, 5]
        await until(lambda: _containers(settings, 10), 60, "ten agent containers")
        assert sorted(by_worker(settings).values()) == [5, 5]

        # A steering reply reaches the worker running that task (through the database).
        steer_ts = threads["steer"]
        await until(lambda: _asked(model, "job-steer"), 30, "the steered task running")
        await reply(slack, "also mention the weather", channel="C1", thread_ts=steer_ts)
        final = await wait_final(slack, "C1", steer_ts, timeout=60)
        assert "Heard you." in block_text(final)
        last = model.requests_for("job-steer")[-1].body
        assert any("also mention the weather" in str(m.get("content")) for m in last["messages"])

        # Stop pressed in the front reaches the worker running the task (one still running: the
        # steered task has finished by now).
        running = await running_tasks(store)
        victim_id = next(t for t, w in running.items() if w != running[min(running)])
        victim = await store.get_task(victim_id)
        victim_ts = victim.mention_ts
        status_ts = bot_messages(slack, "C1", victim_ts)[0]["ts"]
        await press(slack, "task_stop", str(victim_id), "U1", "C1", status_ts, victim_ts)
        await until(lambda: _gone(settings, victim_id), 30, "the stopped task's container removed")
        await slack.wait_for(lambda: slack.message("C1", status_ts)["text"].startswith("⏹️ Stopped by <@U1>"),
                             timeout=30)

        # kill -9 of one worker: its tasks are interrupted and told; the other's run on.
        running = await running_tasks(store)
        doomed_worker = running[min(running)]
        doomed = {t for t, w in running.items() if w == doomed_worker}
        survivors = {t for t, w in running.items() if w != doomed_worker}
        assert doomed and survivors
        killed = first if await _is_worker_of(store, first, doomed_worker) else second
        killed.send_signal(signal.SIGKILL)
        await killed.wait()
        started = time.monotonic()
        for task_id in doomed:
            task = await store.get_task(task_id)
            await slack.wait_for(lambda ts=task.mention_ts: any(
                "interrupted by a restart" in block_text(m) for m in bot_messages(slack, "C1", ts)),
                timeout=LEASE_S + 10)
        assert time.monotonic() - started < LEASE_S + 10
        for task_id in doomed:
            assert (await store.get_task(task_id)).status == TaskStatus.INTERRUPTED
        await until(lambda: _only(settings, survivors), 30, "the dead worker's containers removed")
        still = await running_tasks(store)
        assert set(still) == survivors, "the other worker's tasks are untouched"

        # A worker on another host that stops renewing: swept within its lease by the live ones.
        await _ghost_is_swept(store, slack)
    finally:
        await stop_all(procs)
        await store.aclose()
    await until(lambda: _containers_gone(settings), 30, "no containers left after shutdown")


async def _ghost_is_swept(store: Store, slack) -> None:
    """A row as a worker on another host would leave it, running a task, then silent."""
    ts = "1800000000.000100"
    coord = Coord(store)
    await coord.register(WorkerRow(id="elsewhere:1:ghost", kind="worker", host="another-host", pid=1, proc="x/1",
                                   lease_s=LEASE_S, seen_at=utcnow() - timedelta(seconds=LEASE_S / 4)))
    _, task = await store.new_task(channel="C1", thread_ts=ts, requester="U1", requester_name="Ann",
                                   prompt="a task elsewhere", mention_ts=ts, model="")
    await store.run(lambda s: _hand_to(s, task.id, "elsewhere:1:ghost"))
    started = time.monotonic()
    await slack.wait_for(lambda: any("interrupted by a restart" in block_text(m)
                                     for m in bot_messages(slack, "C1", ts)), timeout=LEASE_S + 10)
    assert time.monotonic() - started <= LEASE_S, "a dead worker's threads are told within its lease"
    assert (await store.get_task(task.id)).status == TaskStatus.INTERRUPTED
    assert not any(w.id == "elsewhere:1:ghost" for w in await coord.workers())


def _hand_to(s, task_id: int, worker: str) -> None:
    """As if that worker had claimed it (claims are the only writer of a task's worker)."""
    s.execute(update(Task).where(Task.id == task_id).values(status="running", worker=worker))
    s.commit()


async def _asked(model, marker: str) -> bool:
    return bool(model.requests_for(marker))


async def _at_least(store: Store, n: int):
    running = await running_tasks(store)
    return running if len(running) >= n else None


async def _containers(settings, n: int) -> bool:
    return sum(by_worker(settings).values()) >= n


async def _gone(settings, task_id: int) -> bool:
    return not any(c["Labels"].get("slackbot.task") == str(task_id) for c in task_containers(settings))


async def _only(settings, task_ids: set[int]) -> bool:
    live = {int(c["Labels"].get("slackbot.task", "0")) for c in task_containers(settings)}
    return live <= task_ids


async def _containers_gone(settings) -> bool:
    return not task_containers(settings)


async def _is_worker_of(store: Store, proc: asyncio.subprocess.Process, worker_id: str) -> bool:
    return worker_id.split(":")[1] == str(proc.pid)


async def test_exec_runs_its_own_task_while_a_worker_shares_the_database(slack, model, tmp_path, db_url):
    """The terminal's task is pinned to its process: a worker on the same database never takes it."""
    env = cli_env(tmp_path, slack, model, DATABASE_URL=db_url, SLACKBOT_WORKER_LEASE_S=str(LEASE_S))
    model.script_for("from the terminal", [shell("echo hi"), text("Terminal task done.")])
    store = Store(db_url)
    await store.upgrade()
    worker = await spawn(env, "worker")
    try:
        await until(lambda: _kinds(store, "worker"), 30, "the worker registered")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "slackbot", "exec", "from the terminal",
                                                    env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert "Terminal task done." in out.decode()
        task = (await store.recent_tasks(channel="cli", limit=1))[0]
        assert task.worker.split(":")[1] == str(proc.pid), "the exec process ran its own task"
        assert task.pinned == task.worker
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 60)
        await store.aclose()


async def _kinds(store: Store, kind: str) -> bool:
    return any(w.kind == kind for w in await Coord(store).workers())
