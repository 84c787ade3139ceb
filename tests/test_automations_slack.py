"""Automations through the real bot, the fake Slack and model, and real sandboxes: a scheduled
run is a task thread with live status under its "⏱ name — run #N" post; a run with nothing to
report collapses (or disappears); watched channels and webhooks start runs; the bot's own posts
never do."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import aiohttp
import pytest

from slackbot.store import Automation
from tests.fakes import shell, tool_calls
from tests.helpers import block_text, bot_messages, wait_final

UTC = timezone.utc
NINE = datetime(2026, 12, 1, 9, 0, 1, tzinfo=UTC)


def report(message: str, nothing: bool):
    return tool_calls([("report", {"message": message, "nothing_to_report": nothing})])


async def make(bot, **fields) -> tuple[Automation, str]:
    values = dict(name="triage", prompt="triage new issues and summarise", channel="C1", creator="U1",
                  trigger="schedule", cron="0 9 * * *", tz="UTC", label="every day at 09:00")
    values.update(fields)
    return await bot.deps.automations.create(Automation(**values))


def replies(slack, channel: str, thread_ts: str) -> list[dict]:
    """The bot's messages in a thread, its first message left out."""
    return [m for m in bot_messages(slack, channel, thread_ts) if m["ts"] != thread_ts]


def top_level(slack, channel: str, starts: str) -> list[dict]:
    return [m for m in slack.messages.get(channel, {}).values() if m.get("thread_ts") in (None, m["ts"]) and m.get("bot_id")
            and block_text(m).startswith(starts)]


@pytest.mark.docker
async def test_a_scheduled_run_is_a_task_thread_with_live_status(slack, model, bot):
    model.script([shell("echo 3 new issues"), report("Three new issues, none urgent.", False)])
    auto, _ = await make(bot)
    run = await bot.scheduler.fire_due(auto.id, NINE)
    assert run is not None and run.number == 1
    [post] = await slack.wait_for(lambda: top_level(slack, "C1", "⏱ triage — run #1"), timeout=10)
    final = await wait_final(slack, "C1", post["ts"])
    assert "Three new issues, none urgent." in block_text(final)
    status = replies(slack, "C1", post["ts"])[0]
    await slack.wait_for(lambda: slack.message("C1", status["ts"])["text"].startswith("✅ Done"), timeout=15)
    assert slack.message("C1", status["ts"]).get("edits")  # live: edited as it went
    # The task is an ordinary one, requested by the automation's creator.
    [task] = await bot.store.recent_tasks(channel="C1", limit=5)
    assert (task.requester, task.automation_id, task.nothing_to_report) == ("U1", auto.id, False)
    # The model was offered the report tool (automation runs only) and told which run this is.
    first = model.requests[0].body
    assert "report" in [t["function"]["name"] for t in first["tools"]]
    assert "run #1 of the automation “triage”" in first["messages"][-1]["content"]
    assert slack.block_errors == []


@pytest.mark.docker
async def test_nothing_to_report_collapses_to_one_line(slack, model, bot):
    model.script([report("No new issues.", True)])
    auto, _ = await make(bot)
    await bot.scheduler.fire_due(auto.id, NINE)
    [post] = await slack.wait_for(lambda: top_level(slack, "C1", "⏱ triage — run #1"), timeout=10)
    await slack.wait_for(lambda: "nothing to report" in block_text(slack.message("C1", post["ts"])), timeout=60)
    said = [block_text(m) for m in replies(slack, "C1", post["ts"])]
    assert any("Nothing to report." in r for r in said)
    assert not any("No new issues." in r for r in said)  # no full final reply
    [task] = await bot.store.recent_tasks(channel="C1", limit=5)
    assert task.nothing_to_report


@pytest.mark.docker
async def test_nothing_to_report_is_suppressed_when_notify_is_changes_only(slack, model, bot):
    model.script([report("No new issues.", True)])
    auto, _ = await make(bot, notify="changes")
    await bot.scheduler.fire_due(auto.id, NINE)
    [post] = await slack.wait_for(lambda: top_level(slack, "C1", "⏱ triage — run #1"), timeout=10)
    await slack.wait_for(lambda: slack.message("C1", post["ts"]) is None, timeout=60)
    assert [m for m in slack.thread("C1", post["ts"]) if m.get("bot_id")] == []


@pytest.mark.docker
async def test_a_watched_channel_starts_runs_but_never_on_the_bots_own_posts(slack, model, bot):
    model.script([report("Disk is full on db-1; see df output.", False)])
    await make(bot, name="alerts", trigger="message", cron="", watch_channel="C9", pattern="FATAL",
               label="on message in #alerts")
    # The bot's own post in the watched channel (and an automation's) is never a trigger.
    own = slack.store_message("C9", text="FATAL: from the bot itself", user=slack.bot_user_id, bot_id=slack.bot_id)
    await _deliver(slack, slack.message_event("C9", own["ts"]))
    no_match = slack.post_user_message("C9", "U7", "all quiet")
    await _deliver(slack, slack.message_event("C9", no_match))
    other_app = slack.store_message("C9", text="FATAL: disk full on db-1", bot_id="B_OTHER_APP",
                                    subtype="bot_message", username="monitor")
    await _deliver(slack, slack.message_event("C9", other_app["ts"]))
    final = await wait_final(slack, "C9", other_app["ts"])
    assert "Disk is full" in block_text(final)
    assert replies(slack, "C9", own["ts"]) == [] and replies(slack, "C9", no_match) == []
    assert "FATAL: disk full on db-1" in model.requests[0].body["messages"][-1]["content"]


@pytest.mark.docker
async def test_webhooks_start_runs_with_the_right_secret_only(slack, model, bot):
    model.script([report("CI failed on a flaky test.", False)])
    auto, secret = await make(bot, name="ci-failed", trigger="webhook", cron="", label="on webhook")
    url = f"http://127.0.0.1:{bot.port}/hooks/automations/{auto.id}"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"x": 1}, headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.post(url, json={"x": 1}) as resp:
            assert resp.status == 401
        big = {"log": "x" * (bot.settings.size("webhook_max_body") + 10)}
        async with http.post(url, json=big, headers={"Authorization": f"Bearer {secret}"}) as resp:
            assert resp.status == 413
        async with http.post(url, data="not json", headers={"Authorization": f"Bearer {secret}"}) as resp:
            assert resp.status == 400
        assert await bot.deps.automations.store.recent_runs(auto.id) == []
        body = {"workflow": "ci", "branch": "main", "conclusion": "failure"}
        async with http.post(url, json=body, headers={"Authorization": f"Bearer {secret}"}) as resp:
            assert resp.status == 202 and (await resp.json())["run"] == 1
    [post] = await slack.wait_for(lambda: top_level(slack, "C1", "⏱ ci-failed — run #1"), timeout=10)
    await wait_final(slack, "C1", post["ts"])
    assert json.dumps(body, indent=2) in model.requests[0].body["messages"][-1]["content"]
    assert secret not in json.dumps([m for ms in slack.messages.values() for m in ms.values()])


async def _deliver(slack, payload: dict) -> None:
    envelope = await slack.socket_send("events_api", payload)
    await slack.wait_ack(envelope)


@pytest.mark.docker
async def test_a_saved_channel_setting_applies_to_the_next_task(slack, model, bot):
    from slackbot.store import SavedSettings
    from tests.helpers import mention

    await SavedSettings(bot.store).save("max_steps", 1, by="U9")  # (a workspace setting)
    model.script([shell("echo one"), shell("echo two")])
    ts = await mention(slack, "do two things")
    final = await wait_final(slack, "C1", ts)
    assert "Stopped after 1 model calls" in block_text(final)
