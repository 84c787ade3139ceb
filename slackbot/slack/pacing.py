"""Posting paced per channel: Slack allows about one message per second per channel, with short
bursts; a bucket per channel keeps us under it instead of collecting 429s."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient


class Poster:
    def __init__(self, client: AsyncWebClient, *, per_s: float = 1.0, burst: int = 4) -> None:
        self.client = client
        self.per_s = per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, time)
        self._locks: dict[str, asyncio.Lock] = {}

    async def post(self, **kwargs: Any) -> Any:
        """chat.postMessage, waiting for the channel's turn first."""
        channel = kwargs["channel"]
        async with self._locks.setdefault(channel, asyncio.Lock()):
            tokens, last = self._buckets.get(channel, (float(self.burst), time.monotonic()))
            now = time.monotonic()
            tokens = min(float(self.burst), tokens + (now - last) * self.per_s)
            if tokens < 1.0:
                await asyncio.sleep((1.0 - tokens) / self.per_s)
                now, tokens = time.monotonic(), 1.0
            self._buckets[channel] = (tokens - 1.0, now)
        return await self.client.chat_postMessage(**kwargs)
