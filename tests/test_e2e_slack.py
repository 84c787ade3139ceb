"""Slack-facing behaviour end to end: HTTP mode, rate limits, concurrency, duplicates, commands."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from slackbot.app import Bot
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.helpers import block_text, bot_messages, mention, wait_final


@pytest.mark.docker
async def test_http_mode_signed_delivery_and_healthz(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACK_APP_TOKEN="")
    model.script([shell("echo via-http"), text("HTTP works.")])
    async with Bot(settings, port=0) as bot:
        base = f"http://127.0.0.1:{bot.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["mode"] == "http"
        payload, ts = slack.mention("C1", "U1", "do it over http")
        status, _ = await slack.http_deliver(f"{base}/slack/events", payload)
        assert status == 200
        # A retry of the same delivery, and a forged one, start nothing.
        status, _ = await slack.http_deliver(f"{base}/slack/events", payload, retry_num=1, retry_reason="http_timeout")
        assert status == 200
        forged, _ = await slack.http_deliver(f"{base}/slack/events", slack.mention("C1", "U1", "x")[0],
                                             bad_signature=True)
        assert forged == 401
        final = await wait_final(slack, "C1", ts)
        assert "HTTP works." in block_text(final)
        await asyncio.sleep(0.5)
        assert len([m for m in bot_messages(slack, "C1", ts) if "#" in (m.get("text") or "")]) >= 1
    assert len([r for r in model.requests]) == 2


@pytest.mark.docker
async def test_duplicate_deliveries_start_one_task(slack, model, bot):
    model.script([text("only once")])
    payload, ts = slack.mention("C1", "U1", "once please")
    first = await slack.socket_send("events_api", payload)
    again = await slack.socket_send("events_api", payload, retry_attempt=1, retry_reason="timeout")
    # The same message as a `message` event (Slack sends both when message.channels is on).
    as_message = await slack.socket_send("events_api", slack.message_event("C1", ts))
    for envelope in (first, again, as_message):
        await slack.wait_ack(envelope)
    await wait_final(slack, "C1", ts)
    await asyncio.sleep(1)
    assert len(model.requests) == 1
    assert slack.count("reactions.add") == 1


@pytest.mark.docker
async def test_slack_429_during_updates_is_honoured(slack, model, bot):
    slack.fail_next("chat.update", status=429, retry_after=1, times=2)
    model.script([shell("echo one"), shell("echo two"), text("Finished despite 429s.")])
    ts = await mention(slack, "survive rate limits")
    final = await wait_final(slack, "C1", ts)
    assert "Finished despite 429s." in block_text(final)
    status = bot_messages(slack, "C1", ts)[0]
    await slack.wait_for(lambda: slack.message("C1", status["ts"])["text"].startswith("✅ Done"), timeout=20)
    answered_429 = [c for c in slack.calls if c.method == "chat.update" and c.status == 429]
    assert len(answered_429) == 2
    # Retry-After honoured: the retry came at least a second after the 429.
    updates = [c for c in slack.calls if c.method == "chat.update"]
    i = updates.index(answered_429[0])
    assert updates[i + 1].time - updates[i].time >= 0.9


@pytest.mark.docker
async def test_ten_concurrent_tasks_cause_no_429(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_MAX_TASKS=10, SLACKBOT_MAX_TASKS_PER_USER=10,
                             SLACKBOT_MAX_TASKS_PER_CHANNEL=10, SLACKBOT_UPDATE_BUDGET_PER_MIN=40)
    for i in range(10):
        model.script_for(f"job-{i}", [shell(f"echo start {i}; sleep 1"), shell(f"echo mid {i}; sleep 1"),
                                      shell(f"echo end {i}"), text(f"finished job-{i}")])
    async with Bot(settings, port=0):
        threads = []
        for i in range(10):
            threads.append(await mention(slack, f"job-{i}", channel=f"C{i % 3}", user=f"U{i}"))
        for i, ts in enumerate(threads):
            final = await wait_final(slack, f"C{i % 3}", ts, timeout=180)
            assert f"finished job-{i}" in block_text(final)
        for i, ts in enumerate(threads):
            status = bot_messages(slack, f"C{i % 3}", ts)[0]
            await slack.wait_for(lambda s=status, c=f"C{i % 3}": slack.message(c, s["ts"])["text"].startswith("✅"),
                                 timeout=120)
    assert slack.rate_limited == []
    assert slack.max_updates_in_window(60) <= 40  # the budget, under the fake's 50 a minute
    assert slack.block_errors == []
    # Each status message was edited at most once per 1.5 s (as sent; times here are as received,
    # which a loaded machine delays unevenly by a few hundred milliseconds).
    by_message: dict[str, list[float]] = {}
    for c in slack.calls:
        if c.method == "chat.update" and c.status == 200:
            by_message.setdefault(c.params["ts"], []).append(c.time)
    for times in by_message.values():
        gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
        assert all(g >= 1.1 for g in gaps), gaps


async def test_agent_help_and_unknown_command(slack, model, bot):
    ok = await slack.socket_send("slash_commands", slack.slash_command_payload("/agent", "help", "U1", "C1"))
    await slack.wait_ack(ok)
    bad = await slack.socket_send("slash_commands", slack.slash_command_payload("/agent", "frobnicate", "U1", "C1"))
    await slack.wait_ack(bad)
    await slack.wait_for(lambda: len(slack.responses) >= 2, timeout=10)
    texts = [r["body"].get("text", "") for r in slack.responses]
    assert any("/agent tasks" in t for t in texts)
    assert any("Unknown command `frobnicate`" in t for t in texts)


async def test_empty_mention_gets_a_hint(slack, model, bot):
    ts = await mention(slack, "")
    await slack.wait_for(lambda: any("Tell me what to do" in (m.get("text") or "")
                                     for m in bot_messages(slack, "C1", ts)), timeout=10)
    assert model.requests == []
