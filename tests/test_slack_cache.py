"""Slack lookups kept by the front: callers asking at once share one call."""

from __future__ import annotations

import asyncio

import pytest

from slackbot.slack.deps import _cached


async def test_callers_asking_at_once_share_one_call_and_a_failure_is_not_kept():
    cache: dict = {}
    calls = 0

    async def users_info():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"user": {"name": "ann"}}

    got = await asyncio.gather(*(_cached(cache, "U1", 60, users_info, "user", {}) for _ in range(20)))
    assert got == [{"name": "ann"}] * 20 and calls == 1
    assert await _cached(cache, "U1", 60, users_info, "user", {}) == {"name": "ann"} and calls == 1

    async def failing():
        raise RuntimeError("ratelimited")

    with pytest.raises(RuntimeError):
        await asyncio.gather(*(_cached(cache, "U2", 60, failing, "user", {}) for _ in range(3)))
    assert "U2" not in cache
    assert await _cached(cache, "U2", 60, users_info, "user", {}) == {"name": "ann"}
