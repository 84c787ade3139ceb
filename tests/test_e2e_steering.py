"""Threads you can steer: replies mid-task, Stop, follow-ups, compaction, queueing, App Home."""

from __future__ import annotations

import asyncio
import json

import docker
import pytest

from slackbot.agent.history import SUMMARY_PROMPT
from slackbot.app import Bot, instance_label
from tests.conftest import make_settings
from tests.docker_fixtures import task_view
from tests.fakes import shell, text
from tests.helpers import block_text, bot_messages, mention, reply, wait_final

pytestmark = pytest.mark.docker  # every test here runs containers


def user_texts(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def task_containers(settings) -> list[dict]:
    """This bot's task containers (the low-level list: no per-container inspect that could race a removal)."""
    client = docker.APIClient()
    try:
        return task_view(client.containers(all=True, filters={"label": f"slackbot.instance={instance_label(settings)}"}))
    finally:
        client.close()


async def press(slack, action_id: str, value: str, user: str, channel: str, message_ts: str, thread_ts: str):
    payload = slack.block_action_payload(action_id, value, user, channel, message_ts, thread_ts=thread_ts)
    await slack.wait_ack(await slack.socket_send("interactive", payload))


async def test_replies_steer_the_running_task(slack, model, bot):
    model.script([shell("sleep 3; echo slept"), shell("sleep 2; echo steered"), text("Steered as asked.")])
    ts = await mention(slack, "start something long")
    await model.wait_for_requests(1)
    await asyncio.sleep(0.5)  # the long command is running now
    await reply(slack, "please also add a README", channel="C1", thread_ts=ts)
    await reply(slack, "and use tabs", channel="C1", thread_ts=ts, user="U2")
    final = await wait_final(slack, "C1", ts)
    assert "Steered as asked." in block_text(final)
    second = model.requests[1].body
    requester_note, other_note = user_texts(second)[-2:]
    assert requester_note == "please also add a README"  # the requester's own words, unmarked
    assert other_note.startswith("[data: a message in the thread from ") and other_note.endswith("\nand use tabs\n```")
    assert second["messages"][-1]["role"] == "user"  # after the tool result of the long command
    status = bot_messages(slack, "C1", ts)[0]
    edits = [e.get("text", "") + json.dumps(e.get("blocks")) for e in slack.message("C1", status["ts"])["edits"]]
    assert any("got your message" in e for e in edits)


async def test_stop_by_requester_kills_the_container_and_keeps_the_thread(slack, model, settings, bot):
    model.script([shell("sleep 300")])
    ts = await mention(slack, "run forever")
    await model.wait_for_requests(1)
    await slack.wait_for(lambda: any("sleep 300" in json.dumps(e.get("blocks"))
                                     for e in slack.message("C1", bot_messages(slack, "C1", ts)[0]["ts"])["edits"]),
                         timeout=20)
    status_ts = bot_messages(slack, "C1", ts)[0]["ts"]
    await press(slack, "task_stop", "1", "U9", "C1", status_ts, ts)  # not the requester
    await slack.wait_for(lambda: any("Only <@U1>" in e.get("text", "") for e in slack.ephemerals), timeout=10)
    assert task_containers(settings), "a refused stop must not stop the task"

    await press(slack, "task_stop", "1", "U1", "C1", status_ts, ts)
    await slack.wait_for(lambda: not task_containers(settings), timeout=30)
    await slack.wait_for(lambda: slack.message("C1", status_ts)["text"].startswith("⏹️ Stopped by <@U1>"),
                         timeout=20)
    assert all(b["type"] != "actions" for b in slack.message("C1", status_ts)["blocks"])
    await wait_final(slack, "C1", ts)

    # Replying continues the thread, with its history.
    model.script([text("Continuing after the stop.")])
    await reply(slack, "ok, do something shorter", channel="C1", thread_ts=ts)
    final = await wait_final(slack, "C1", ts, count=2)
    assert "Continuing after the stop." in block_text(final)
    body = model.requests[-1].body
    assert user_texts(body)[:1] == ["run forever"]
    assert any(m["role"] == "tool" and "interrupted" in m["content"] for m in body["messages"])


async def test_agent_stop_command(slack, model, bot):
    model.script([shell("sleep 300")])
    ts = await mention(slack, "another long one")
    await model.wait_for_requests(1)
    await asyncio.sleep(1)
    envelope = await slack.socket_send("slash_commands", slack.slash_command_payload("/agent", "stop 1", "U1", "C1"))
    await slack.wait_ack(envelope)
    final = await wait_final(slack, "C1", ts)
    assert "Stopped by <@U1>" in block_text(final)


async def test_follow_up_has_history_and_workspace(slack, model, bot):
    model.script([shell("echo 'kept across tasks' > notes.txt"), text("Wrote notes.txt")])
    ts = await mention(slack, "write notes")
    await wait_final(slack, "C1", ts)
    model.script([shell("cat notes.txt"), text("Read it back.")])
    await reply(slack, "now read the notes", channel="C1", thread_ts=ts)
    final = await wait_final(slack, "C1", ts, count=2)
    assert "Read it back." in block_text(final)
    first_of_second = model.requests[2].body["messages"]
    assert [m["role"] for m in first_of_second] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert first_of_second[-1]["content"] == "now read the notes"
    last = model.requests[3].body["messages"][-1]
    assert last["role"] == "tool" and "kept across tasks" in last["content"]


async def test_long_history_is_summarised_once_and_reused(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_CONTEXT_BUDGET_TOKENS=2300)  # the system prompt is ~1,200
    async with Bot(settings, port=0):
        model.script([shell("python3 -c \"print('x' * 4000)\""), text("first done")])
        ts = await mention(slack, "make a lot of output")
        await wait_final(slack, "C1", ts)
        model.script([text("SUMMARY-ONE"), text("second done")])
        await reply(slack, "second request", channel="C1", thread_ts=ts)
        await wait_final(slack, "C1", ts, count=2)
        model.script([text("third done")])
        await reply(slack, "third request", channel="C1", thread_ts=ts)
        await wait_final(slack, "C1", ts, count=3)
    summaries = [r for r in model.requests if r.body["messages"][0]["content"] == SUMMARY_PROMPT]
    assert len(summaries) == 1
    assert "x" * 100 in summaries[0].body["messages"][1]["content"]
    for r in model.requests[-2:]:
        texts = user_texts(r.body)
        assert texts[0] == "make a lot of output"
        assert any("SUMMARY-ONE" in t for t in texts)
        assert "x" * 4000 not in json.dumps(r.body)


async def test_queue_positions_and_limit_of_three(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_MAX_TASKS=3, SLACKBOT_MAX_TASKS_PER_USER=10,
                             SLACKBOT_MAX_TASKS_PER_CHANNEL=10)
    for i in range(10):
        model.script_for(f"job-{i}", [shell("sleep 2"), text(f"finished job-{i}")])
    peak = 0
    stop = asyncio.Event()

    async def watch():
        nonlocal peak
        while not stop.is_set():
            running = await asyncio.to_thread(task_containers, settings)
            # A task may have a one-shot container (checkout, finishing) beside its agent's.
            peak = max(peak, len({c["Labels"]["slackbot.task"] for c in running}))
            await asyncio.sleep(0.2)

    async with Bot(settings, port=0):
        watcher = asyncio.create_task(watch())
        threads = [await mention(slack, f"job-{i}", user=f"U{i}") for i in range(10)]
        for i, ts in enumerate(threads):
            assert f"finished job-{i}" in block_text(await wait_final(slack, "C1", ts, timeout=180))
        stop.set()
        await watcher
    assert 1 <= peak <= 3
    last_status = bot_messages(slack, "C1", threads[-1])[0]
    seen = [e.get("text", "") for e in slack.message("C1", last_status["ts"])["edits"]]
    assert any(t.startswith("⏳ Queued (position") for t in seen)
    positions = [int(t.split("position ")[1].split(")")[0]) for t in seen if "position" in t]
    assert positions == sorted(positions, reverse=True)  # it only moves forward


async def test_app_home_shows_threads_and_queued_tasks(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_MAX_TASKS=1)
    model.script_for("first-job", [shell("sleep 3"), text("one")])
    model.script_for("second-job", [text("two")])
    async with Bot(settings, port=0):
        await mention(slack, "first-job")
        await mention(slack, "second-job")
        await model.wait_for_requests(1)
        event = slack.event_callback({"type": "app_home_opened", "user": "U1", "tab": "home", "channel": "D1"})
        await slack.wait_ack(await slack.socket_send("events_api", event))
        await slack.wait_for(lambda: "second-job" in json.dumps(slack.home_views.get("U1", {})), timeout=15)
        view = json.dumps(slack.home_views["U1"])
        assert "first-job" in view and "running" in view and "queued" in view
        assert "https://slack.com/archives/C1/p" in view
    assert slack.block_errors == []


async def test_transcript_button_and_tasks_listing(slack, model, bot):
    model.script([shell("echo transcript-line"), text("All done here.")])
    ts = await mention(slack, "make a transcript")
    final = await wait_final(slack, "C1", ts)
    await press(slack, "task_transcript", "1", "U1", "C1", final["ts"], ts)
    await slack.wait_for(lambda: any(f["name"] == "task-1-transcript.txt" for f in slack.files), timeout=15)
    content = next(f for f in slack.files if f["name"] == "task-1-transcript.txt")["content"].decode()
    assert "$ echo transcript-line" in content and "transcript-line\n[exit 0]" in content
    assert "All done here." in content and "make a transcript" in content
    envelope = await slack.socket_send("slash_commands", slack.slash_command_payload("/agent", "tasks", "U1", "C1"))
    await slack.wait_ack(envelope)
    await slack.wait_for(lambda: any("#1" in r["body"].get("text", "") and "make a transcript"
                                     in r["body"].get("text", "") for r in slack.responses), timeout=10)
    # The Home tab followed the task without being opened again.
    await slack.wait_for(lambda: "done" in json.dumps(slack.home_views.get("U1", {})), timeout=20)
