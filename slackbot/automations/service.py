"""What the Slack surface (commands, the modal, watched channels, the webhook route) asks of
automations: create, change, run now, and the two event triggers with their limits."""

from __future__ import annotations

import asyncio
import hashlib
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
from ..store.models import utcnow
from .cron import next_fires, trigger
from .matching import compile_pattern, matches
from .runner import Firing, Runner, webhook_context

EVENT_CAUSES = ("message", "webhook")
WATCH_CHECK_S = 2.0


class HookCode(StrEnum):
    STARTED = "started"
    DENIED = "denied"  # unknown automation, not a webhook, or a wrong secret: all look the same
    PAUSED = "paused"
    LIMITED = "limited"
    DUPLICATE = "duplicate"


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

    async def _room(self, automation: Automation) -> bool:
        assert automation.id is not None
        since = utcnow() - timedelta(hours=1)
        return await self.store.runs_since(automation.id, since, EVENT_CAUSES) < self.runs_per_hour

    async def on_message(self, *, channel: str, ts: str, user: str, text: str) -> list[AutomationRun]:
        """A new top-level message (a person's or another app's) in `channel`: each watching
        automation whose pattern matches runs in the message's thread, within its hourly limit."""
        started = []
        for automation in await self.watching(channel):
            if not await matches(automation.pattern, text) or not await self._room(automation):
                continue
            who = f"<@{user}>" if user else "an app"
            run = await self.runner.fire(automation, Firing(
                f"message:{channel}:{ts}", "message", context=f"A message from {who}:\n{text}",
                thread_ts=ts, channel=channel))
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

    async def on_webhook(self, automation_id: int, secret: str, body: Any, delivery: str = "") -> HookResult:
        automation = await self.store.get(automation_id)
        if (automation is None or automation.trigger != "webhook" or not automation.secret_hash
                or not hmac.compare_digest(automation.secret_hash, secret_hash(secret))):
            return HookResult(HookCode.DENIED)
        if not automation.enabled:
            return HookResult(HookCode.PAUSED)
        if not await self._room(automation):
            return HookResult(HookCode.LIMITED)
        key = f"webhook:{delivery[:100]}" if delivery else f"webhook:{uuid.uuid4().hex}"
        run = await self.runner.fire(automation, Firing(key, "webhook", context=webhook_context(body)))
        return HookResult(HookCode.STARTED, run) if run else HookResult(HookCode.DUPLICATE)
