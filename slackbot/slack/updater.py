"""Edits of status messages under one workspace-wide budget.

All chat.update calls share `per_min` per rolling minute; one message is edited at most every
`min_interval_s`; a newer state replaces a pending one (coalescing); final states go first, and a quarter of the budget is theirs alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)
Key = tuple[str, str]
WINDOW_S = 61.0  # a minute, plus a margin for clock skew between us and Slack


@dataclass
class _Edit:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    final: bool
    since: float = field(default_factory=time.monotonic)


class StatusUpdater:
    def __init__(self, client: AsyncWebClient, *, per_min: int = 45, min_interval_s: float = 1.5) -> None:
        self.client = client
        self.per_min = max(1, per_min)
        self.reserve = self.per_min // 4  # for final states only
        self.min_interval_s = min_interval_s
        self._pending: dict[Key, _Edit] = {}
        self._last_sent: dict[Key, float] = {}
        self._last_body: dict[Key, tuple[str, str]] = {}  # what the message shows now (skip repeats)
        self._sent: collections.deque[float] = collections.deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.sent_count = 0

    def submit(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]], *, final: bool = False) -> None:
        key = (channel, ts)
        old = self._pending.get(key)
        self._pending[key] = _Edit(channel, ts, text, blocks, final or bool(old and old.final),
                                   old.since if old else time.monotonic())
        self._idle.clear()
        self._wake.set()

    async def flush(self, timeout: float = 30.0) -> None:
        """Waits until every submitted edit was sent (for shutdown and tests)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            edit, wait = self._next()
            if edit is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            key = (edit.channel, edit.ts)
            if self._last_body.get(key) == (edit.text, repr(edit.blocks)):
                self._pending.pop(key, None)  # the message shows this already: no call spent
                continue
            room = self._room(edit.final)
            if room > 0:  # wait, and choose again then: a final state may have come meanwhile
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(room):
                        await self._wake.wait()
                continue
            self._sent.append(time.monotonic())
            # Take the newest state of this message right before sending.
            edit = self._pending.pop(key, edit)
            body = (edit.text, repr(edit.blocks))
            if self._last_body.get(key) == body:
                continue  # the message shows this already: no call spent
            self._last_sent[key] = time.monotonic()
            if await self._send(edit):
                if edit.final:  # a final state is never edited again: forget the message
                    self._last_body.pop(key, None)
                    self._last_sent.pop(key, None)
                else:
                    self._last_body[key] = body

    def _next(self) -> tuple[_Edit | None, float]:
        now = time.monotonic()
        ready, wait = [], self.min_interval_s
        for key, edit in self._pending.items():
            due = self._last_sent.get(key, -1e9) + self.min_interval_s
            if due <= now:
                ready.append(edit)
            else:
                wait = min(wait, due - now)
        if not ready:
            return None, max(wait, 0.01)
        return min(ready, key=lambda e: (not e.final, e.since)), 0.0

    def _room(self, final: bool) -> float:
        """0 when an edit may be sent now, else how long until it may. Edits of working states
        leave a quarter of the budget to final ones, so a task's ✅ never waits a minute behind
        other tasks' progress."""
        now = time.monotonic()
        while self._sent and now - self._sent[0] >= WINDOW_S:
            self._sent.popleft()
        limit = self.per_min if final else max(1, self.per_min - self.reserve)
        if len(self._sent) < limit:
            return 0.0
        return WINDOW_S - (now - self._sent[len(self._sent) - limit]) + 0.01

    async def _send(self, edit: _Edit) -> bool:
        try:
            await self.client.chat_update(channel=edit.channel, ts=edit.ts, text=edit.text, blocks=edit.blocks)
            self.sent_count += 1
            return True
        except SlackApiError as exc:
            log.warning("chat.update failed for %s/%s: %s", edit.channel, edit.ts, exc.response.get("error"))
        except Exception:
            log.exception("chat.update failed for %s/%s", edit.channel, edit.ts)
        return False
