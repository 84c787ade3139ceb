"""The daily digest, on time in every process's scheduler and posted once per channel and day
(a delivery key claimed before posting). A channel may have its own time and zone (saved settings)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from ..runs.effective import effective
from ..settings import Settings
from ..store import SavedSettings, Store
from ..store.models import utcnow
from ..store.reports import Reports
from .chart import chart_png
from .digest import Digest, gather, parse_prices
from .scheduler import Clock, Scheduler

log = logging.getLogger(__name__)
PREFIX = "digest-"
_DAY = timedelta(days=1)


class DigestOut(Protocol):
    """Where digests go (the Slack surface, or the CLI's poster)."""

    async def post_digest(self, digest: Digest, chart: bytes | None) -> None: ...


class DigestJob:
    def __init__(self, store: Store, surface: DigestOut, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.store = store
        self.reports = Reports(store)
        self.saved = SavedSettings(store)
        self.surface = surface
        self.settings = settings
        self.clock = clock
        self.prices = parse_prices(settings.prices)
        self._jobs: dict[str, tuple[str, str]] = {}

    async def when(self, channel: str = "") -> tuple[str, str]:
        """(HH:MM or "" for off, time zone) for a channel: its saved values, the workspace's, the
        environment's. A saved value that is not a time or a zone is passed over (and logged)."""
        s = await effective(self.store, self.settings, channel)
        return s.digest_time, s.timezone

    async def sync(self, scheduler: Scheduler) -> None:
        """One job per distinct (time, zone) in use; kept in step with saved settings."""
        wanted = {await self.when()}
        for channel in (await self.saved.channels_with("digest_time")) | (await self.saved.channels_with("timezone")):
            wanted.add(await self.when(channel))
        ids = {f"{PREFIX}{at}-{tz}": (at, tz) for at, tz in wanted if at}
        for job_id in [j for j in self._jobs if j not in ids]:
            scheduler.remove(job_id)
            self._jobs.pop(job_id)
        for job_id, (at, tz) in ids.items():
            if job_id not in self._jobs:
                hour, minute = at.split(":")
                scheduler.add(job_id, CronTrigger(hour=int(hour), minute=int(minute), timezone=ZoneInfo(tz)),
                              self._fire, (at, tz), (at, tz))
                self._jobs[job_id] = (at, tz)

    async def _fire(self, at: str, tz: str) -> None:
        try:
            await self.post_due(self.clock(), at, tz)
        except Exception:
            log.exception("the digest at %s %s failed", at, tz)

    async def post_due(self, now: datetime, at: str, tz: str) -> list[Digest]:
        """The digest of every active channel whose digest is at `at` in `tz`."""
        posted = []
        for channel in await self.all_channels(now):
            if await self.when(channel) == (at, tz):
                digest = await self.post(channel, now, once=True)
                if digest is not None:
                    posted.append(digest)
        return posted

    async def post(self, channel: str, now: datetime, *, once: bool) -> Digest | None:
        """Posts the channel's digest for the day ending `now`; `once`: not if posted already today."""
        digest = await self.build(channel, now)
        if digest is None:
            return None
        if once and not await self.store.first_time(f"digest:{channel}:{digest.day.isoformat()}"):
            return None
        await self.surface.post_digest(digest, await self.chart(digest))
        return digest

    async def build(self, channel: str, now: datetime) -> Digest | None:
        s = await effective(self.store, self.settings, channel)
        prices = self.prices if s.prices == self.settings.prices else parse_prices(s.prices)
        digest = await gather(self.reports, channel, until=now, tz=ZoneInfo(s.timezone), prices=prices)
        to = s.digest_channel.split(",")[0].strip()
        # (a direct message's digest never goes into a channel)
        if digest is not None and to[:1] in ("C", "G") and channel[:1] in ("C", "G") and to != channel:
            return dataclasses.replace(digest, post_to=to)
        return digest

    async def all_channels(self, now: datetime) -> list[str]:
        return await self.reports.channels_with_activity(now - _DAY, now)

    @staticmethod
    async def chart(digest: Digest) -> bytes | None:
        # Drawing takes tens of milliseconds of CPU: off the event loop.
        return await asyncio.to_thread(chart_png, digest.history)

