"""What the Slack surface (commands, the modal, watched channels, the webhook route) asks of
automations: create, change, run now, and the two event triggers with their limits."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from ..store import Automation, AutomationRun, AutomationStore
from ..store.automations import RunCap, RunCapReached
from ..store.models import utcnow
from .cron import next_fires, trigger
from .matching import compile_pattern, matches
from .runner import Firing, Runner, webhook_context

log = logging.getLogger(__name__)
EVENT_CAUSES = ("message", "webhook")
WATCH_CHECK_S = 2.0
MESSAGE_BUDGET_S = 0.3  # matching one message against every watcher of its channel
WATCHERS_PER_CHANNEL = 20


class HookCode(StrEnum):
    STARTED = "started"
    DENIED = "denied"  # unknown automation, not a webhook, or a wrong secret: all look the same
    PAUSED = "paused"
    LIMITED = "limited"
    DUPLICATE = "duplicate"


class TooMany(ValueError):
    pass


@dataclass(frozen=True)
class HookResult:
    code: HookCode
    run: AutomationRun | None = None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Automations:
    def __init__(self, automations: AutomationStore, runner: Runner, *, runs_per_hour: int) -> None:
        self.store = automations
        self.runner = runner
        self.runs_per_hour = runs_per_hour
        # Every top-level message asks which automations watch its channel: kept in memory,
        # reloaded when the change counter moves (looked at no more often than WATCH_CHECK_S).
        self._watchers: dict[str, list[Automation]] = {}
        self._watch_counter = -1
        self._watch_checked = 0.0
        self._watch_lock = asyncio.Lock()

    async def create(self, automation: Automation) -> tuple[Automation, str]:
        """Stores a validated automation; a webhook's secret is returned once and kept only hashed."""
        secret = ""
        if automation.trigger == "webhook":
            secret = secrets.token_urlsafe(32)
            automation.secret_hash = secret_hash(secret)
        if automation.trigger == "schedule":
            trigger(automation.cron, ZoneInfo(automation.tz))  # raises CronError
        if automation.trigger == "message":
            compile_pattern(automation.pattern)  # raises PatternError
            watching = await self.store.in_watch(automation.watch_channel)
            if len(watching) >= WATCHERS_PER_CHANNEL:
                raise TooMany(f"<#{automation.watch_channel}> has {len(watching)} automations watching it already, "
                              f"the most there may be; delete one first (`/automation list` in their channels).")
        return await self.store.create(automation), secret

    async def run_now(self, automation: Automation) -> AutomationRun | None:
        return await self.runner.fire(automation, Firing(f"manual:{uuid.uuid4().hex}", "manual"))

    @staticmethod
    def may_change(automation: Automation, user: str, *, admin: bool) -> bool:
        return admin or automation.creator == user

    @staticmethod
    def next_times(automation: Automation, count: int = 3, now: datetime | None = None) -> list[datetime]:
        if automation.trigger != "schedule" or not automation.enabled:
            return []
        tz = ZoneInfo(automation.tz)
        return next_fires(trigger(automation.cron, tz), (now or utcnow()).astimezone(tz), count)

    def _cap(self) -> RunCap:
        return RunCap(self.runs_per_hour, utcnow() - timedelta(hours=1), EVENT_CAUSES)

    async def on_message(self, *, channel: str, ts: str, user: str, text: str) -> list[AutomationRun]:
        """A new top-level message (a person's or another app's) in `channel`: each watching
        automation whose pattern matches runs in the message's thread, within its hourly cap.
        Matching one message has a time budget, however many automations watch the channel."""
        started = []
        deadline = time.monotonic() + MESSAGE_BUDGET_S
        for automation in await self.watching(channel):
            if time.monotonic() > deadline:
                log.warning("message %s/%s: matching ran out of time; later watchers skipped", channel, ts)
                break
            if not await matches(automation.pattern, text):
                continue
            who = f"<@{user}>" if user else "an app"
            try:
                run = await self.runner.fire(automation, Firing(
                    f"message:{channel}:{ts}", "message", context=f"A message from {who}:\n{text}",
                    thread_ts=ts, channel=channel), cap=self._cap())
            except RunCapReached:
                log.info("automation %s: hourly cap reached; message %s/%s skipped", automation.id, channel, ts)
                continue
            if run is not None:
                started.append(run)
        return started

    async def watching(self, channel: str) -> list[Automation]:
        async with self._watch_lock:
            if time.monotonic() - self._watch_checked >= WATCH_CHECK_S:
                self._watch_checked = time.monotonic()
                counter = await self.store.changes()
                if counter != self._watch_counter:
                    watchers: dict[str, list[Automation]] = {}
                    for automation in await self.store.enabled("message"):
                        watchers.setdefault(automation.watch_channel, []).append(automation)
                    self._watchers, self._watch_counter = watchers, counter
        return self._watchers.get(channel, [])

    async def authenticate(self, automation_id: int, secret: str) -> Automation | None:
        """The webhook automation this secret opens; None for every kind of failure alike."""
        automation = await self.store.get(automation_id)
        if (automation is None or automation.trigger != "webhook" or not automation.secret_hash
                or not hmac.compare_digest(automation.secret_hash, secret_hash(secret))):
            return None
        return automation

    async def on_webhook(self, automation: Automation, body: Any, delivery: str = "") -> HookResult:
        """A call `authenticate` let through: a run with the body as context, within the hourly cap."""
        if not automation.enabled:
            return HookResult(HookCode.PAUSED)
        key = f"webhook:{delivery[:100]}" if delivery else f"webhook:{uuid.uuid4().hex}"
        try:
            run = await self.runner.fire(automation, Firing(key, "webhook", context=webhook_context(body)),
                                         cap=self._cap())
        except RunCapReached:
            return HookResult(HookCode.LIMITED)
        return HookResult(HookCode.STARTED, run) if run else HookResult(HookCode.DUPLICATE)
