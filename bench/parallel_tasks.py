"""Parallel tasks beside a minimal Bolt app, and the bot's memory per active task.

    python bench/parallel_tasks.py [--tasks 10,50] [--runs 3] [--rss 10,50] [--channels 10] [--users 10]

(`--tasks ''` or `--rss ''` leaves that part out. The bot inherits this environment, so
`SLACKBOT_WARM_POOL=10 python bench/parallel_tasks.py --pause 30` tries another setting.)

1. N tasks at once (one `sleep 1` command between two model calls each), sent as N mentions over
   C channels by U people, to the bot (`python -m slackbot run`, limits raised to N) and to
   bench/minimal_bolt.py (no database, no limits, no pacing): wall time from the first mention sent
   to the last final answer posted (median of --runs, each with a fresh app and fakes), Slack Web
   API calls per task (by method; the warm-up task excluded; the bot's late status edits
   included), 429s served.
2. The bot's resident memory (VmRSS of its process) with 0, 10 and 50 tasks active at once, each
   in a `sleep 600`; the tasks are stopped with their Stop buttons afterwards.

Both apps run as subprocesses against the test fakes (Slack with its rate limits, a scripted
model) served from this process over real HTTP; containers run on the real Docker engine
(SLACKBOT_SANDBOX_IMAGE, else slackbot-sandbox:latest).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from tests.fakes import FakeSlack, ScriptedModel, shell, text  # noqa: E402
from tests.helpers import mention, status_message, wait_final  # noqa: E402

IMAGE = os.environ.get("SLACKBOT_SANDBOX_IMAGE", "slackbot-sandbox:latest")
MINIMAL = Path(__file__).with_name("minimal_bolt.py")
LOGS = Path(tempfile.gettempdir()) / "parallel_tasks-logs"  # the apps' stderr, kept after their data goes
WORKING = ("⚙️", "⏳")  # a status message that still shows a task at work
METHODS = {"chat.postMessage": "postMessage", "chat.update": "update", "reactions.add": "reactions",
           "users.info": "users.info"}  # counted apart, with the names the table shows


@dataclass
class Run:
    """One run of N tasks against a fresh app."""

    wall_s: float
    calls: collections.Counter[str]  # Web API calls by method
    limited: int  # 429s served
    late_s: float  # from the last final answer to the app's last Slack call (the bot's status edits)
    waited_s: float  # for the machine to be quiet first
    done: int  # tasks whose final answer came (a task whose posts failed never ends)


@dataclass
class Row:
    app: str
    tasks: int
    runs: list[Run]

    @property
    def wall_s(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    def per_task(self, methods: list[str] | None) -> float:
        """Calls of `methods` (None: all) per task, averaged over the runs."""
        n = sum(sum(v for m, v in r.calls.items() if methods is None or m in methods) for r in self.runs)
        return n / (self.tasks * len(self.runs))


@dataclass
class App:
    """One app under test, as a subprocess with its stderr kept in `log`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self, slack: FakeSlack) -> None:
        self.log.parent.mkdir(exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(*self.argv, env=self.env, stdout=log, stderr=log)
        try:
            await slack.wait_socket_connected(timeout=60)
        except AssertionError:
            raise SystemExit(f"{self.name} did not connect; its log: {self.log}") from None

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 120)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def base_env(slack: FakeSlack, model: ScriptedModel) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK", "OPENAI", "DATABASE_URL"))}
    env.update({"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
                "SLACK_SIGNING_SECRET": slack.signing_secret, "SLACK_API_URL": slack.api_url,
                "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "sk-bench-0123456789"})
    return env


def bot_app(tmp: Path, slack: FakeSlack, model: ScriptedModel, tasks: int) -> App:
    # Defaults everywhere but the limits (each at least the tasks sent) and the digest (a bench
    # crossing 17:00 UTC would post one).
    limit = str(max(tasks, 8))
    env = base_env(slack, model) | {
        "SLACKBOT_MODEL": "bench", "SLACKBOT_DATA_DIR": str(tmp / "data"), "SLACKBOT_SANDBOX_IMAGE": IMAGE,
        "SLACKBOT_MAX_TASKS": limit, "SLACKBOT_MAX_TASKS_PER_USER": limit, "SLACKBOT_MAX_TASKS_PER_CHANNEL": limit,
        "SLACKBOT_DIGEST_TIME": ""}
    return App("bot", [sys.executable, "-m", "slackbot", "run", "--port", "0"], env, LOGS / f"{tmp.name}.log")


def minimal_app(tmp: Path, slack: FakeSlack, model: ScriptedModel) -> App:
    env = base_env(slack, model) | {"SANDBOX_IMAGE": IMAGE}
    return App("minimal Bolt", [sys.executable, str(MINIMAL)], env, LOGS / f"{tmp.name}.log")


class Finals:
    """When each marker's final answer was posted, read from the fake's calls as they come."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.seen = len(slack.calls)
        self.at: dict[str, float] = {}

    def scan(self, markers: list[str]) -> int:
        calls = self.slack.calls
        while self.seen < len(calls):
            call = calls[self.seen]
            self.seen += 1
            if call.method == "chat.postMessage" and call.status == 200:
                body = str(call.params)
                for m in markers:
                    if m not in self.at and answer_of(m) in body:
                        self.at[m] = call.time
        return len(self.at)

    async def wait(self, markers: list[str], stall_s: float = 120) -> None:
        """Until every marker's answer came, or none came for `stall_s` (a task that failed)."""
        last = time.monotonic()
        while (done := self.scan(markers)) < len(markers) and time.monotonic() - last < stall_s:
            await asyncio.sleep(0.1)
            if self.scan(markers) > done:
                last = time.monotonic()


def answer_of(marker: str) -> str:
    return f"all done {marker}"


Thread = tuple[str, str, str]  # channel, thread ts, requester


async def send(slack: FakeSlack, markers: list[str], channels: int, users: int, first: int = 0) -> list[Thread]:
    """Every mention at once, the i-th in channel C{i mod channels} by U{100 + i mod users}."""
    where = [(f"C{i % channels}", f"U{100 + i % users}") for i in range(first, first + len(markers))]
    sent = await asyncio.gather(*(mention(slack, f"check the build {m}", channel=c, user=u)
                                  for m, (c, u) in zip(markers, where)))
    return [(c, ts, u) for (c, u), ts in zip(where, sent)]


async def settle(slack: FakeSlack, threads: list[Thread], cap: float = 240) -> None:
    """Until every status message shows its end and Slack heard nothing for 3 s (or `cap`)."""
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        busy = any((status_message(slack, c, ts) or {}).get("text", "").startswith(WORKING) for c, ts, _ in threads)
        quiet = not slack.calls or time.monotonic() - slack.calls[-1].time > 3
        if not busy and quiet:
            return
        await asyncio.sleep(0.5)


async def warm_up(slack: FakeSlack, model: ScriptedModel) -> None:
    """One task first: image, imports and clients ready before anything is measured."""
    model.script_for("[warm]", [shell("true"), text(answer_of("[warm]"))])
    finals = Finals(slack)
    threads = await send(slack, ["[warm]"], 1, 1)
    await slack.wait_for(lambda: finals.scan(["[warm]"]), timeout=180)
    await settle(slack, threads)


async def parallel(make: str, tasks: int, channels: int, users: int, pause: float) -> tuple[str, Run]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-parallel-{make}-"))
    async with FakeSlack() as slack, ScriptedModel() as model:
        app = bot_app(tmp, slack, model, tasks) if make == "bot" else minimal_app(tmp, slack, model)
        try:
            await app.start(slack)
            await warm_up(slack, model)
            await asyncio.sleep(pause)  # what the warm-up set going in the background (the bot's warm pool)
            markers = [f"[t{tasks}-{i}]" for i in range(tasks)]
            for m in markers:
                model.script_for(m, [shell("sleep 1"), text(answer_of(m))])
            waited = await machine_quiet()
            first_call, limited_before = len(slack.calls), len(slack.rate_limited)
            finals = Finals(slack)
            started = time.monotonic()
            threads = await send(slack, markers, channels, users)
            await finals.wait(markers)
            last = max(finals.at.values(), default=started)
            await settle(slack, threads)
        finally:
            await app.stop()
            cleanup(tmp)
    calls = slack.calls[first_call:]
    late = max(c.time for c in calls) - last
    counts = collections.Counter(c.method for c in calls)
    return app.name, Run(last - started, counts, len(slack.rate_limited) - limited_before, late, waited,
                         len(finals.at))


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the machine so far."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


async def machine_quiet(limit: float = 0.2, cap: float = 300) -> float:
    """Waits (up to `cap`) for three quiet seconds in a row: this machine may be shared (a test run
    beside the bench changes its numbers). Returns the seconds waited."""
    start, quiet = time.monotonic(), 0
    while quiet < 3 and time.monotonic() - start < cap:
        busy0, total0 = cpu_times()
        await asyncio.sleep(1)
        busy1, total1 = cpu_times()
        quiet = quiet + 1 if (busy1 - busy0) <= limit * max(1, total1 - total0) else 0
    return time.monotonic() - start


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS in kB, threads) of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


async def sample(pid: int) -> tuple[float, int]:
    """Median RSS (MB) over five samples half a second apart, and the threads at the end."""
    values = []
    for _ in range(5):
        rss, threads = memory_kb(pid)
        values.append(rss / 1024)
        await asyncio.sleep(0.5)
    return statistics.median(values), threads


async def memory(levels: list[int], channels: int, users: int) -> list[tuple[int, float, int]]:
    """The bot's RSS with 0 and then each level of tasks active at once."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    rows: list[tuple[int, float, int]] = []
    async with FakeSlack() as slack, ScriptedModel() as model:
        app = bot_app(tmp, slack, model, max(levels))
        threads: list[Thread] = []
        try:
            await app.start(slack)
            assert app.proc is not None
            await warm_up(slack, model)
            await asyncio.sleep(2)
            rows.append((0, *await sample(app.proc.pid)))
            markers: list[str] = []
            for level in levels:
                new = [f"[m-{i}]" for i in range(len(markers), level)]
                for m in new:
                    model.script_for(m, [shell("sleep 600"), text(answer_of(m))])
                markers += new
                threads += await send(slack, new, channels, users, first=len(threads))
                # Active: each task asked the model once and runs its command (and no task ended).
                await slack.wait_for(lambda: all(model.requests_for(m) for m in markers), timeout=600, interval=0.2)
                await asyncio.sleep(3)
                rows.append((level, *await sample(app.proc.pid)))
            await press_stop(slack, threads)
        finally:
            await app.stop()
            cleanup(tmp)
    return rows


async def press_stop(slack: FakeSlack, threads: list[Thread]) -> None:
    """Each task's Stop, pressed by its requester; then every final answer."""
    for channel, ts, user in threads:
        status = status_message(slack, channel, ts)
        if status is None:
            continue
        task_id = re.search(r"#(\d+)", status["text"]).group(1)  # type: ignore[union-attr]
        payload = slack.block_action_payload("task_stop", task_id, user, channel, status["ts"], thread_ts=ts)
        await slack.wait_ack(await slack.socket_send("interactive", payload), timeout=30)
    for channel, ts, _ in threads:
        await wait_final(slack, channel, ts, timeout=300)


def cleanup(tmp: Path) -> None:
    """Containers a killed app left (the bot's by its data directory's instance, the baseline's by
    label), loop mounts under `tmp`, then `tmp`."""
    client = docker.from_env()
    try:
        from slackbot.app import instance_label
        from slackbot.settings import Settings

        instance = instance_label(Settings(SLACKBOT_DATA_DIR=str(tmp / "data"), DATABASE_URL=""))
        for label in ("bench.minimal=1", f"slackbot.instance={instance}"):
            for c in client.containers.list(all=True, filters={"label": label}):
                with contextlib.suppress(docker.errors.APIError):
                    c.remove(force=True)
    finally:
        client.close()
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(str(tmp) + "/")]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    shutil.rmtree(tmp, ignore_errors=True)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    total = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    return (f"machine: {os.cpu_count()} CPUs ({cpu}), {total} GB RAM, Python {sys.version.split()[0]}, "
            f"image {IMAGE}, code {tree()}")


def tree() -> str:
    """The commit the bot's code is at, and how many of its files differ from it."""
    root = str(MINIMAL.parents[1])
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if commit.returncode != 0:
        return f"{root} (not a git checkout)"
    changed = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "slackbot"], capture_output=True,
                             text=True).stdout.splitlines()
    return f"{commit.stdout.strip()}" + (f" + {len(changed)} changed files under slackbot/" if changed else "")


def print_parallel(rows: list[Row], channels: int, users: int) -> None:
    print(f"\nParallel tasks (`sleep 1` between two model calls; {channels} channel(s), {users} people; "
          f"wall s: median of {len(rows[0].runs)} runs)")
    heads = ["app", "tasks", "done", "wall s", "min–max s", "calls/task", *METHODS.values(), "other", "429s",
             "calls after"]
    print("  " + " | ".join(f"{h:>12}" for h in heads))
    for r in rows:
        walls = [run.wall_s for run in r.runs]
        cells = [r.app, str(r.tasks), f"{min(run.done for run in r.runs)}", f"{r.wall_s:.1f}", f"{min(walls):.1f}–{max(walls):.1f}",
                 f"{r.per_task(None):.1f}", *(f"{r.per_task([m]):.1f}" for m in METHODS),
                 f"{r.per_task(None) - r.per_task(list(METHODS)):.1f}", str(sum(run.limited for run in r.runs)),
                 f"{max(run.late_s for run in r.runs):.0f} s"]
        print("  " + " | ".join(f"{c:>12}" for c in cells))
    for r in rows:
        others = sum((run.calls for run in r.runs), collections.Counter())
        listed = ", ".join(f"{m} {n / len(r.runs) / r.tasks:.1f}" for m, n in sorted(others.items()) if m not in METHODS)
        if listed:
            print(f"  other calls of {r.app} at {r.tasks}, per task: {listed}")
    print("  (done: fewest tasks answered in a run; wall s: to the last answer that came; 429s: all runs together; "
          "calls after: the longest from the last answer to the app's last Slack call)")
    for n in sorted({r.tasks for r in rows}):
        pair = {r.app: r for r in rows if r.tasks == n}
        if "bot" in pair and "minimal Bolt" in pair:
            bot, minimal = pair["bot"], pair["minimal Bolt"]
            unanswered = [r.app for r in (bot, minimal) if min(run.done for run in r.runs) < n]
            ratio = (f"{bot.wall_s / minimal.wall_s:.2f}" if not unanswered
                     else f"not comparable ({' and '.join(unanswered)} left tasks unanswered)")
            print(f"  {n} tasks: bot / minimal wall time = {ratio} (target at 10: ≤ 1.00); "
                  f"bot 429s {sum(run.limited for run in bot.runs)} (target at 50: 0)")


def print_memory(rows: list[tuple[int, float, int]]) -> None:
    print("\nBot memory (VmRSS of `python -m slackbot run`, median of 5 samples)")
    print(f"  {'active tasks':>12} | {'RSS MB':>8} | {'threads':>7}")
    for level, rss, threads in rows:
        print(f"  {level:>12} | {rss:>8.1f} | {threads:>7}")
    base = rows[0][1]
    for level, rss, _ in rows[1:]:
        print(f"  {level} tasks: {(rss - base) / level:.2f} MB per active task (target < 5)")


async def main(args: argparse.Namespace) -> None:
    print(machine())
    if args.tasks:
        rows = []
        for n in args.tasks:
            for make in ("minimal", "bot"):
                runs = []
                for _ in range(args.runs):
                    name, run = await parallel(make, n, args.channels, args.users, args.pause)
                    runs.append(run)
                    print(f"  ({name}, {n} tasks: {run.done} answered in {run.wall_s:.1f} s; waited "
                          f"{run.waited_s:.0f} s for a quiet machine)", flush=True)
                rows.append(Row(name, n, runs))
        print_parallel(rows, args.channels, args.users)
    if args.rss:
        print_memory(await memory(args.rss, args.channels, args.users))


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=numbers, default=[10, 50], help="parallel task counts, e.g. 10,50 ('' skips)")
    p.add_argument("--rss", type=numbers, default=[10, 50], help="active task counts for RSS ('' skips)")
    p.add_argument("--runs", type=int, default=3, help="runs of each task count, each app")
    p.add_argument("--pause", type=float, default=5.0, help="seconds between the warm-up task and the measured ones")
    p.add_argument("--channels", type=int, default=10)
    p.add_argument("--users", type=int, default=10)
    asyncio.run(main(p.parse_args()))
