"""The status-edit budget against the fake Slack: coalescing, final first, per-message spacing."""

from __future__ import annotations

import asyncio

from slackbot.slack.app import web_client
from slackbot.slack.updater import StatusUpdater
from tests.conftest import make_settings


async def test_coalesces_spaces_and_sends_finals_first(slack, model, tmp_path):
    client = web_client(make_settings(tmp_path, slack, model))
    messages = []
    for i in range(3):
        resp = await client.chat_postMessage(channel="C1", text=f"status {i}")
        messages.append(resp["ts"])
    updater = StatusUpdater(client, per_min=3, min_interval_s=1.0)
    runner = asyncio.create_task(updater.run())
    try:
        updater.submit("C1", messages[0], "a0", [])
        await slack.wait_for(lambda: slack.count("chat.update") == 1, timeout=5)
        # A burst of intermediate states for message 0 collapses into its newest one.
        for n in range(1, 6):
            updater.submit("C1", messages[0], f"a{n}", [])
        updater.submit("C1", messages[1], "b-intermediate", [])
        updater.submit("C1", messages[2], "c-final", [], final=True)
        await slack.wait_for(lambda: slack.count("chat.update") == 3, timeout=10)
        texts = [c.params["text"] for c in slack.calls if c.method == "chat.update"]
        assert texts[1] == "c-final"  # the final state jumped the queue
        assert texts[2] in ("a5", "b-intermediate")
        # The budget (3 per minute) is spent: nothing more goes out for now.
        await asyncio.sleep(1.5)
        assert slack.count("chat.update") == 3
        assert "a1" not in texts and "a4" not in texts
        times = [c.time for c in slack.calls if c.method == "chat.update" and c.params["ts"] == messages[0]]
        assert all(b - a >= 0.95 for a, b in zip(times, times[1:]))
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_quarter_of_the_budget_is_kept_for_final_states(slack, model, tmp_path):
    """Many tasks' progress cannot spend the whole minute: a task that ends shows ✅ at once."""
    client = web_client(make_settings(tmp_path, slack, model))
    messages = [(await client.chat_postMessage(channel="C1", text=f"status {i}"))["ts"] for i in range(5)]
    updater = StatusUpdater(client, per_min=4, min_interval_s=0.1)  # 3 for progress, 1 kept for finals
    runner = asyncio.create_task(updater.run())
    try:
        for i in range(4):
            updater.submit("C1", messages[i], f"working {i}", [])
        await slack.wait_for(lambda: slack.count("chat.update") == 3, timeout=5)
        await asyncio.sleep(0.5)
        assert slack.count("chat.update") == 3  # the fourth working state waits for the next minute
        updater.submit("C1", messages[4], "✅ done", [], final=True)
        await slack.wait_for(lambda: slack.count("chat.update") == 4, timeout=5)
        assert [c.params["text"] for c in slack.calls if c.method == "chat.update"][-1] == "✅ done"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
