"""Many processes on one database: Stop latency across processes, and Slack's budget at fifty tasks.

    python bench/many_processes.py [--runs 7] [--tasks 50] [--minutes 2] [--pg URL]

1. Stop pressed in a front-only process (`run --no-worker`) → the task's container gone, for a
   task running in a separate `worker` process; on SQLite and, with --pg (or SLACKBOT_TEST_PG), on
   Postgres. Median of --runs.
2. Fifty concurrent tasks over two workers behind one front: chat.update calls per rolling minute
   and the 429s the fake Slack served (it limits chat.update to 50 a minute, as Slack's tier does).

Every process is a real `python -m slackbot` subprocess; Slack and the model are the test fakes over
real HTTP; containers run on the real Docker engine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from tests.db import Databases  # noqa: E402
from tests.fakes import FakeSlack, ScriptedModel, shell, text  # noqa: E402
from tests.helpers import bot_messages, mention, wait_final  # noqa: E402
from tests.test_cli import cli_env  # noqa: E402
from tests.processes import spawn, stop_all  # noqa: E402


def agent_container(api: docker.APIClient, task_id: int) -> str:
    found = api.containers(filters={"label": [f"slackbot.task={task_id}", "slackbot.role=agent"]})
    return found[0]["Id"] if found else ""


def container_exists(api: docker.APIClient, cid: str) -> bool:
    return bool(api.containers(all=True, filters={"id": cid}))


async def stop_latency(db_url: str, runs: int) -> list[float]:
    api = docker.APIClient()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stop-"))
    async with FakeSlack() as slack, ScriptedModel() as model:
        env = cli_env(tmp, slack, model, DATABASE_URL=db_url)
        procs = [await spawn(env, "run", "--no-worker", "--port", "0")]
        times: list[float] = []
        try:
            await slack.wait_socket_connected(timeout=30)
            procs.append(await spawn(env, "worker"))
            for n in range(runs):
                model.script_for(f"stop-{n}", [shell("sleep 600")])
                ts = await mention(slack, f"stop-{n}")
                task_id = n + 1
                cid = ""
                while not cid:
                    await asyncio.sleep(0.05)
                    cid = agent_container(api, task_id)
                while not model.requests_for(f"stop-{n}"):  # the agent runs its command
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
                status_ts = bot_messages(slack, "C1", ts)[0]["ts"]
                payload = slack.block_action_payload("task_stop", str(task_id), "U1", "C1", status_ts, thread_ts=ts)
                pressed = time.monotonic()
                await slack.socket_send("interactive", payload)
                while container_exists(api, cid):
                    await asyncio.sleep(0.01)
                times.append(time.monotonic() - pressed)
                await wait_final(slack, "C1", ts, timeout=60)
        finally:
            await stop_all(procs)
    api.close()
    return times


async def budget(db_url: str, tasks: int, minutes: float) -> tuple[dict[str, float], int, int]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    async with FakeSlack() as slack, ScriptedModel() as model:
        limits = {"SLACKBOT_MAX_TASKS": str(tasks), "SLACKBOT_MAX_TASKS_PER_USER": str(tasks),
                  "SLACKBOT_MAX_TASKS_PER_CHANNEL": str(tasks), "SLACKBOT_WORKER_MAX_TASKS": str(tasks // 2 + 1),
                  "SLACKBOT_SANDBOX_MEMORY": "128m"}
        env = cli_env(tmp, slack, model, DATABASE_URL=db_url, **limits)
        steps = max(2, int(minutes * 60 / 8))
        for n in range(tasks):  # commands of a few seconds each, for `minutes`: a busy status each
            model.script_for(f"busy-{n}:", [shell(f"sleep {4 + n % 5}") for _ in range(steps)] + [text("done")])
        procs = [await spawn(env, "run", "--no-worker", "--port", "0")]
        try:
            await slack.wait_socket_connected(timeout=30)
            procs += [await spawn(env, "worker"), await spawn(env, "worker")]
            threads = []
            for n in range(tasks):
                channel = f"C{n % 10}"
                threads.append((channel, await mention(slack, f"busy-{n}:", channel=channel)))
            start = time.monotonic()
            for channel, ts in threads:
                await wait_final(slack, channel, ts, timeout=minutes * 60 + 600)
            elapsed = time.monotonic() - start
        finally:
            await stop_all(procs)
        updates = sorted(c.time for c in slack.calls if c.method == "chat.update")
        per_min = [sum(1 for u in updates if t <= u < t + 60) for t in updates] or [0]
        span = (updates[-1] - updates[0]) if len(updates) > 1 else 60.0
        stats = {"elapsed_s": elapsed, "updates": len(updates), "max_per_min": max(per_min),
                 "mean_per_min": len(updates) / max(span / 60, 1.0)}
        return stats, len(slack.rate_limited), len([c for c in slack.calls if c.method == "chat.postMessage"])


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, "
            f"max {max(values) * 1000:.0f}, n={len(values)})")


async def main(args: argparse.Namespace) -> None:
    kinds = ["sqlite"] + (["postgres"] if args.pg else [])
    print(f"machine: {os.uname().nodename}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("\nStop pressed in the front → the worker's container gone")
    for kind in kinds:
        dbs = Databases(kind, Path(tempfile.mkdtemp(prefix="bench-db-")), args.pg or None)
        try:
            print(f"  {kind:9} {summary(await stop_latency(dbs.new('stop'), args.runs))}")
        finally:
            dbs.close()
    print(f"\n{args.tasks} concurrent tasks over two workers and one front")
    for kind in kinds if args.budget_all else kinds[-1:]:
        dbs = Databases(kind, Path(tempfile.mkdtemp(prefix="bench-db-")), args.pg or None)
        try:
            stats, limited, posts = await budget(dbs.new("budget"), args.tasks, args.minutes)
        finally:
            dbs.close()
        print(f"  {kind:9} chat.update: {stats['updates']} in {stats['elapsed_s']:.0f} s, at most "
              f"{stats['max_per_min']} in any 60 s (mean {stats['mean_per_min']:.1f}/min); "
              f"chat.postMessage: {posts}; 429s served: {limited}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--pg", default=os.environ.get("SLACKBOT_TEST_PG", ""))
    p.add_argument("--budget-all", action="store_true", help="the budget run on every database, not only the last")
    asyncio.run(main(p.parse_args()))
