"""Schedules from the database, fired by APScheduler in every process, each time at most once.

APScheduler 3 cannot share a job store between processes, so the database stays the source of
truth: each process keeps in-memory jobs in step with the automation table (a change counter,
looked at every few seconds), and a job that fires claims the (automation, scheduled time) row
first; the process that loses the claim does nothing. At start, times missed while no process
was up are caught up once or skipped (SLACKBOT_AUTOMATION_CATCH_UP).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ..store import Automation, AutomationRun, AutomationStore
from ..store.models import utcnow
from .cron import CronError, as_utc, fire_key, fires, trigger
from .runner import Firing, Runner

log = logging.getLogger(__name__)
SYNC_S = 5.0  # changes made elsewhere reach this process's jobs within this (and a database read)
LATE_S = 3600.0  # a job that wakes up later than this after its time leaves the time to catch-up
RECENT_WINDOW = timedelta(days=8)
Clock = Callable[[], datetime]


def latest_fire(automation: Automation, after: datetime, upto: datetime) -> datetime | None:
    """The latest scheduled time in (after, upto], or None."""
    trig = trigger(automation.cron, ZoneInfo(automation.tz))
    start = max(after, upto - RECENT_WINDOW)  # a frequent schedule has a time in the last days
    found = _last_between(trig, start, upto)
    if found is None and start > after:  # a rare one (monthly) may not
        found = _last_between(trig, after, upto)
    return found


def _last_between(trig: Any, after: datetime, upto: datetime) -> datetime | None:
    last: datetime | None = None
    for nxt in fires(trig, after):
        if as_utc(nxt) > upto:
            break
        last = nxt
    return last


class Scheduler:
    def __init__(self, automations: AutomationStore, runner: Runner, *, catch_up: str = "once",
                 clock: Clock = utcnow, sync_s: float = SYNC_S) -> None:
        self.automations = automations
        self.runner = runner
        self.catch_up_mode = catch_up
        self.clock = clock
        self.sync_s = sync_s
        self.aps = AsyncIOScheduler(timezone=timezone.utc, job_defaults={
            # Claims decide what runs; APScheduler only wakes us (late wake-ups still claim the time).
            "misfire_grace_time": int(LATE_S), "coalesce": True, "max_instances": 4})
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._extra: list[Callable[[], Awaitable[None]]] = []  # other job owners kept in step (the digest)
        self._seen = -1
        self._loop: asyncio.Task[None] | None = None

    def also_sync(self, sync: Callable[[], Awaitable[None]]) -> None:
        self._extra.append(sync)

    async def start(self) -> None:
        self.aps.start()
        await self.catch_up(self.clock())
        await self.sync()
        self._loop = asyncio.create_task(self._watch(), name="automation-sync")

    async def stop(self) -> None:
        if self._loop:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        if self.aps.running:
            self.aps.shutdown(wait=False)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.sync_s)
            try:
                await self.sync()
            except Exception:
                log.exception("could not bring the schedules up to date")

    async def sync(self, *, force: bool = False) -> None:
        """Jobs made, changed or removed to match the database; cheap when nothing changed."""
        counter = await self.automations.changes()
        if counter == self._seen and not force:
            await self._sync_extra()
            return
        self._seen = counter
        wanted: dict[str, Automation] = {f"automation-{a.id}": a for a in await self.automations.enabled("schedule")}
        for job_id in list(self._signatures):
            if job_id.startswith("automation-") and job_id not in wanted:
                self.remove(job_id)
        for job_id, automation in wanted.items():
            signature = (automation.cron, automation.tz)
            if self._signatures.get(job_id) == signature:
                continue
            try:
                trig = trigger(automation.cron, ZoneInfo(automation.tz))
            except (CronError, ValueError, KeyError) as exc:
                log.warning("automation %s has an unusable schedule: %s", automation.id, exc)
                continue
            self.add(job_id, trig, self._fire, (automation.id,), signature)
        await self._sync_extra()

    async def _sync_extra(self) -> None:
        for extra in self._extra:  # one failing (the digest's saved settings) never stops the others
            try:
                await extra()
            except Exception:
                log.exception("could not bring other scheduled jobs up to date")

    def add(self, job_id: str, trig: Any, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
            signature: tuple[Any, ...]) -> None:
        self.aps.add_job(fn, trig, args=args, id=job_id, replace_existing=True)
        self._signatures[job_id] = signature

    def remove(self, job_id: str) -> None:
        if self.aps.get_job(job_id):
            self.aps.remove_job(job_id)
        self._signatures.pop(job_id, None)

    def job_ids(self) -> set[str]:
        return {job.id for job in self.aps.get_jobs()}

    async def _fire(self, automation_id: int) -> None:
        try:
            await self.fire_due(automation_id, self.clock())
        except Exception:
            log.exception("automation %s: the scheduled run failed", automation_id)

    async def fire_due(self, automation_id: int, now: datetime) -> AutomationRun | None:
        """Runs the automation for its latest scheduled time up to `now`, unless some process did."""
        automation = await self.automations.get(automation_id)
        if automation is None or not automation.enabled or automation.trigger != "schedule":
            return None
        due = latest_fire(automation, now - timedelta(seconds=LATE_S), now)
        if due is None:
            return None
        return await self.runner.fire(automation, Firing(fire_key(due), "schedule", fire_at=as_utc(due)))

    async def catch_up(self, now: datetime) -> list[AutomationRun]:
        """Times missed while no process was up: one run for the latest (`once`) or none (`skip`)."""
        started = []
        for automation in await self.automations.enabled("schedule"):
            assert automation.id is not None
            since = automation.last_fire_at or automation.created_at
            since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
            try:
                missed = latest_fire(automation, since, now)
            except (CronError, ValueError, KeyError):
                continue
            if missed is None:
                continue
            if self.catch_up_mode == "skip":
                await self.automations.skip_to(automation.id, as_utc(missed))
                log.info("automation %s: skipped the run missed at %s", automation.id, missed)
                continue
            run = await self.runner.fire(automation, Firing(fire_key(missed), "catch-up", fire_at=as_utc(missed)))
            if run is not None:
                started.append(run)
        return started
