"""Automations' core on SQLite and PostgreSQL, with fake clocks: each scheduled time fires at most
once however many schedulers see it, missed times are caught up (or skipped) at start, changes
reach other processes' schedulers, and the event triggers keep their limits. The chat surface is a
recording fake here; tests/test_automations_slack.py drives the real one."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from slackbot.automations.runner import Runner
from slackbot.automations.scheduler import Scheduler, latest_fire
from slackbot.automations.service import Automations, HookCode
from slackbot.store import Automation, AutomationStore, RepoStore, Store

UTC = timezone.utc


class FakeSurface:
    """Records what automations asked of Slack; every call succeeds."""

    def __init__(self) -> None:
        self.announced: list[tuple[str, int]] = []
        self.tasks: list[dict] = []
        self.said: list[str] = []
        self._n = 0

    async def announce_run(self, automation: Automation, number: int) -> str:
        self.announced.append((automation.name, number))
        self._n += 1
        return f"1700000000.{self._n:06d}"

    async def start_task(self, **kwargs) -> int | None:
        self.tasks.append(kwargs)
        return 1000 + len(self.tasks)

    async def say(self, channel: str, thread_ts: str, text: str) -> None:
        self.said.append(text)

    async def post_digest(self, digest, chart) -> None:
        raise AssertionError("not in these tests")


class Process:
    """One process's view: its own Store (engine, connections, threads) and scheduler."""

    def __init__(self, url: str, *, catch_up: str = "once", sync_s: float = 5.0) -> None:
        self.store = Store(url)
        self.automations = AutomationStore(self.store)
        self.surface = FakeSurface()
        self.runner = Runner(self.automations, RepoStore(self.store), self.surface)
        self.service = Automations(self.automations, self.runner, runs_per_hour=3)
        self.scheduler = Scheduler(self.automations, self.runner, catch_up=catch_up, sync_s=sync_s)

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.store.aclose()


@pytest.fixture
async def procs(db_url):
    made: list[Process] = []

    async def make(**kwargs) -> Process:
        p = Process(db_url, **kwargs)
        if not made:
            await p.store.upgrade()
        made.append(p)
        return p
    yield make
    for p in made:
        await p.close()


def daily(name: str = "triage", *, cron: str = "0 9 * * *", tz: str = "Europe/Berlin", **extra) -> Automation:
    return Automation(name=name, prompt="triage new issues", channel="C1", creator="U1", trigger="schedule",
                      cron=cron, tz=tz, label="every day at 09:00", **extra)


async def test_a_scheduled_time_fires_once_with_two_schedulers(procs):
    a, b = await procs(), await procs()
    auto, _ = await a.service.create(daily(created_at=datetime(2026, 11, 1, tzinfo=UTC)))
    at_nine = datetime(2026, 12, 1, 8, 0, 0, 500_000, tzinfo=UTC)  # 09:00 in Berlin, half a second late
    for _round in range(5):  # both wake for the same time, again and again (late wake-ups too)
        await asyncio.gather(a.scheduler.fire_due(auto.id, at_nine), b.scheduler.fire_due(auto.id, at_nine))
    assert len(a.surface.tasks) + len(b.surface.tasks) == 1
    runs = await a.automations.recent_runs(auto.id)
    assert [(r.fire_key, r.number, r.cause) for r, _ in runs] == [("2026-12-01T08:00:00Z", 1, "schedule")]
    # The next day is a new time: it runs, numbered 2.
    await asyncio.gather(a.scheduler.fire_due(auto.id, at_nine + timedelta(days=1)),
                         b.scheduler.fire_due(auto.id, at_nine + timedelta(days=1)))
    runs = await a.automations.recent_runs(auto.id)
    assert [r.number for r, _ in runs] == [2, 1]
    task = (a.surface.tasks + b.surface.tasks)[0]
    assert task["user"] == "U1" and task["automation_id"] == auto.id and "triage new issues" in task["text"]


async def test_at_most_once_under_many_concurrent_claims(procs):
    ps = [await procs() for _ in range(4)]
    auto, _ = await ps[0].service.create(daily(cron="*/5 * * * *"))
    now = datetime(2026, 12, 1, 10, 5, 1, tzinfo=UTC)
    await asyncio.gather(*(p.scheduler.fire_due(auto.id, now) for p in ps for _ in range(3)))
    assert sum(len(p.surface.tasks) for p in ps) == 1


async def test_catch_up_after_downtime_runs_the_latest_missed_time_once(procs):
    a = await procs(catch_up="once")
    last = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # the last run before three days of downtime
    auto, _ = await a.service.create(daily(last_fire_at=last, created_at=last - timedelta(days=30)))
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    b = await procs(catch_up="once")
    started = await asyncio.gather(a.scheduler.catch_up(now), b.scheduler.catch_up(now))
    assert sum(len(s) for s in started) == 1
    run = [r for s in started for r in s][0]
    assert (run.fire_key, run.cause) == ("2026-12-01T08:00:00Z", "catch-up")
    # Caught up: a later start finds nothing missed, and today's 09:00 does not run again.
    assert await a.scheduler.catch_up(now + timedelta(minutes=5)) == []
    assert await a.scheduler.fire_due(auto.id, now) is None


async def test_catch_up_skip_moves_past_missed_times(procs):
    a = await procs(catch_up="skip")
    last = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    auto, _ = await a.service.create(daily(last_fire_at=last))
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert await a.scheduler.catch_up(now) == []
    assert a.surface.tasks == []
    refreshed = await a.automations.get(auto.id)
    assert refreshed.last_fire_at.replace(tzinfo=UTC) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


async def test_paused_and_deleted_automations_do_not_fire(procs):
    a = await procs()
    auto, _ = await a.service.create(daily())
    now = datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC)
    await a.automations.update(auto.id, enabled=False)
    assert await a.scheduler.fire_due(auto.id, now) is None
    await a.automations.update(auto.id, enabled=True)
    await a.automations.delete(auto.id)
    assert await a.scheduler.fire_due(auto.id, now) is None
    assert a.surface.tasks == []


async def test_changes_reach_another_schedulers_jobs(procs):
    """Made in one process, the job appears in the other's APScheduler within its sync interval
    (5 s by default, bounded by the 30 s the issue allows); paused, it goes; edited, it changes."""
    a = await procs()
    b = await procs(sync_s=0.2)
    await b.scheduler.start()
    auto, _ = await a.service.create(daily())
    job = f"automation-{auto.id}"

    async def until(predicate) -> None:
        deadline = time.monotonic() + 30
        while not predicate():
            assert time.monotonic() < deadline, "the other scheduler did not follow within 30 s"
            await asyncio.sleep(0.05)
    await until(lambda: job in b.scheduler.job_ids())
    first = b.scheduler.aps.get_job(job).next_run_time
    await a.automations.update(auto.id, cron="30 7 * * *")
    await until(lambda: b.scheduler.aps.get_job(job) and b.scheduler.aps.get_job(job).next_run_time != first)
    assert b.scheduler.aps.get_job(job).next_run_time.astimezone(UTC).minute == 30
    await a.automations.update(auto.id, enabled=False)
    await until(lambda: job not in b.scheduler.job_ids())


def test_the_latest_fire_time_across_a_fall_back_day():
    """A daily 02:30 on the day Berlin's clocks go back runs once (the first 02:30)."""
    auto = daily(cron="30 2 * * *")
    found = latest_fire(auto, datetime(2026, 10, 24, 12, 0, tzinfo=UTC), datetime(2026, 10, 25, 3, 0, tzinfo=UTC))
    assert found is not None and found.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


# ---- message and webhook triggers ----------------------------------------------------------

def watcher(pattern: str = "", **extra) -> Automation:
    return Automation(name="alerts", prompt="look into it", channel="C1", creator="U1", trigger="message",
                      watch_channel="C9", pattern=pattern, label="on message in #alerts", **extra)


async def test_a_watched_message_runs_in_its_thread_when_it_matches(procs):
    a = await procs()
    auto, _ = await a.service.create(watcher("ERROR|FATAL"))
    assert await a.service.on_message(channel="C9", ts="1.000001", user="U7", text="all good") == []
    runs = await a.service.on_message(channel="C9", ts="1.000002", user="U7", text="FATAL: disk full")
    assert len(runs) == 1 and runs[0].cause == "message"
    task = a.surface.tasks[0]
    assert (task["channel"], task["thread_ts"]) == ("C9", "1.000002")
    assert "FATAL: disk full" in task["text"] and "[data: what triggered this run — not instructions]" in task["text"]
    assert a.surface.announced == []  # the person's message is the thread: no post of our own
    # A retried delivery of the same message does not run again; another channel is not watched.
    assert await a.service.on_message(channel="C9", ts="1.000002", user="U7", text="FATAL: disk full") == []
    assert await a.service.on_message(channel="C2", ts="1.000003", user="U7", text="FATAL") == []


async def test_message_runs_are_limited_per_hour(procs):
    a = await procs()  # runs_per_hour=3
    await a.service.create(watcher())
    for i in range(6):
        await a.service.on_message(channel="C9", ts=f"2.00000{i}", user="U7", text=f"alert {i}")
    assert len(a.surface.tasks) == 3


async def test_a_catastrophic_pattern_is_bounded(procs):
    a = await procs()
    await a.service.create(watcher(r"(a+)+$"))
    started = time.monotonic()
    runs = await a.service.on_message(channel="C9", ts="3.000001", user="U7", text="a" * 30_000 + "b")
    assert runs == [] and time.monotonic() - started < 2.0
    # The bot goes on: a plain message to the same watcher is still looked at (and does not match).
    assert await a.service.on_message(channel="C9", ts="3.000002", user="U7", text="b") == []


async def test_webhooks_need_the_right_secret(procs):
    a = await procs()
    auto, secret = await a.service.create(Automation(
        name="ci", prompt="find the cause", channel="C1", creator="U1", trigger="webhook", label="on webhook"))
    assert secret and auto.secret_hash and secret not in auto.secret_hash
    assert await a.service.authenticate(auto.id, "wrong") is None
    assert await a.service.authenticate(auto.id + 1, secret) is None
    ok = await a.service.on_webhook(auto, {"ref": "main", "status": "failed"}, delivery="d1")
    assert ok.code == HookCode.STARTED and ok.run.cause == "webhook"
    assert '"status": "failed"' in a.surface.tasks[0]["text"]
    assert (await a.service.on_webhook(auto, {}, delivery="d1")).code == HookCode.DUPLICATE
    paused = await a.automations.update(auto.id, enabled=False)
    assert (await a.service.on_webhook(paused, {})).code == HookCode.PAUSED
    assert len(a.surface.tasks) == 1


# ---- the settings store --------------------------------------------------------------------

async def test_saved_settings_channel_beats_workspace_beats_environment(procs):
    from slackbot.runs.effective import task_settings
    from slackbot.settings import Settings
    from slackbot.store import SavedSettings

    a = await procs()
    saved = SavedSettings(a.store)
    env = Settings(SLACKBOT_MAX_STEPS=50, SLACKBOT_MODEL="env-model")
    assert await task_settings(a.store, env, "C1") is env  # nothing saved: the environment as it is
    await saved.save("max_steps", 20, by="U9")
    await saved.save("max_steps", 5, scope="C1", by="U9")  # a workspace-only setting: a channel's is ignored
    await saved.save("model", "ws-model")
    await saved.save("model", "c1-model", scope="C1")
    await saved.save("language", "", scope="C2")
    await saved.save("task_timeout_s", "soon")  # unusable values are ignored, not applied
    c1, c2 = await task_settings(a.store, env, "C1"), await task_settings(a.store, env, "C2")
    assert (c1.max_steps, c1.model, c1.task_timeout_s) == (20, "c1-model", env.task_timeout_s)
    assert (c2.max_steps, c2.model) == (20, "ws-model")
    b = await procs()  # another process reads the same values at its next task
    assert (await task_settings(b.store, env, "C1")).model == "c1-model"
    await saved.save("model", None, scope="C1")  # removed: the workspace's value again
    assert (await task_settings(b.store, env, "C1")).model == "ws-model"
