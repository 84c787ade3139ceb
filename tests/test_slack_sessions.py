"""Slack's agent sessions (its own Stop) and the Messages tab, against the fake Slack over real HTTP.

The first tests drive the Slack renderer with one scripted task's events (no Docker), as
test_slack_stream.py does; the others run the whole bot."""

from __future__ import annotations

import asyncio
import json

import pytest

from slackbot.app import Bot
from slackbot.slack.listeners.events.agent_session import NOTE
from slackbot.slack.listeners.events.assistant import PROMPTS
from tests.conftest import make_settings
from tests.fakes import FakeSlack, shell, text
from tests.helpers import block_text, bot_messages, mention, wait_final
from tests.test_e2e_steering import task_containers
from tests.test_slack_stream import ANSWER, Rig, script

SET_STATUS = "agents.sessions.setStatus"


def has_our_stop(version: dict) -> bool:
    return any(e.get("action_id") == "task_stop" for b in version.get("blocks") or [] if b["type"] == "actions"
               for e in b.get("elements") or [])


# ---- the renderer: session status around a task ------------------------------------------------------

async def test_a_task_marks_its_session_processing_then_active(slack, tmp_path):
    slack.streaming = slack.agent_sessions = True
    async with Rig(slack, tmp_path, "stream") as rig:
        ref = await rig.run_task(script())
    session = slack.session("C1", ref.thread_ts)
    assert session is not None and session["statuses"] == ["processing", "active"]
    [call] = slack.calls_to(SET_STATUS)  # the end rode on the stream's stop
    assert call["status"] == "processing" and call["initiator_user_id"] == "U1" and call["title"] == "#1"
    assert slack.calls_to("chat.stopStream")[-1]["session_status"] == "active"
    # While Slack shows its own Stop the status message has none of ours; it ends Done.
    msg = slack.message("C1", ref.status_ts)
    assert msg is not None and msg["edits"] and not any(has_our_stop(e) for e in msg["edits"])
    assert msg["text"].startswith("✅ Done") and not has_our_stop(msg)
    assert slack.streams_in("C1", ref.thread_ts)[0]["text"] == ANSWER
    assert slack.block_errors == [] and slack.stream_errors == [] and slack.rate_limited == []


async def test_sessions_without_streaming_use_set_status_at_both_ends(slack, tmp_path):
    slack.agent_sessions = True  # streaming refused: the task uses the classic status message
    async with Rig(slack, tmp_path, "auto") as rig:
        ref = await rig.run_task(script(0.05))
    assert [c["status"] for c in slack.calls_to(SET_STATUS)] == ["processing", "active"]
    msg = slack.message("C1", ref.status_ts)
    assert msg is not None and msg["edits"] and not any(has_our_stop(e) for e in msg["edits"])


async def test_a_failing_status_call_breaks_nothing_and_the_message_keeps_our_stop(slack, tmp_path):
    slack.streaming = slack.agent_sessions = True
    slack.session_failure = "internal_error"
    async with Rig(slack, tmp_path, "stream") as rig:
        first = await rig.run_task(script(0.05))
        await rig.run_task(script(0.05))
    assert slack.count(SET_STATUS) == 2  # a failure is not a refusal: the next task asks again
    assert rig.renderer.sessions is not None and rig.renderer.sessions.refused == {}
    [stream] = slack.streams_in("C1", first.thread_ts)
    assert stream["text"] == ANSWER and any(b["type"] == "actions" for b in stream["blocks"])
    assert "session_status" not in slack.calls_to("chat.stopStream")[0]  # no session of ours to end
    msg = slack.message("C1", first.status_ts)
    assert msg is not None and msg["text"].startswith("✅ Done")
    working = [e for e in msg["edits"] if "Working" in (e.get("text") or "")]
    assert all(has_our_stop(e) for e in working)  # as posted, and any edit while it worked


async def test_a_workspace_without_sessions_is_asked_once(slack, tmp_path, caplog):
    caplog.set_level("INFO", logger="slackbot.slack.sessions")
    slack.streaming = True  # sessions refused: the fake's default (feature_disabled)
    async with Rig(slack, tmp_path, "auto") as rig:
        first = await rig.run_task(script(0.05))
        await rig.run_task(script(0.05))
    assert slack.count(SET_STATUS) == 1
    assert rig.renderer.sessions is not None and rig.renderer.sessions.refused == {slack.team_id: "feature_disabled"}
    assert [r.levelname for r in caplog.records if "no agent sessions" in r.getMessage()] == ["INFO"]
    msg = slack.message("C1", first.status_ts)
    assert msg is not None and msg["text"].startswith("✅ Done")


async def test_classic_never_calls_sessions(slack, tmp_path):
    slack.streaming = slack.agent_sessions = True
    async with Rig(slack, tmp_path, "classic") as rig:
        await rig.run_task(script(0.05))
    assert slack.count(SET_STATUS) == 0 and slack.sessions == {}


async def test_a_stream_rolled_over_keeps_the_session_processing(slack, tmp_path):
    slack.streaming = slack.agent_sessions = True
    async with Rig(slack, tmp_path, "stream", max_open_s=1.0, flush_s=0.3) as rig:
        ref = await rig.run_task(script(0.6))
    stops = [c.get("session_status") for c in slack.calls_to("chat.stopStream")]
    assert len(stops) >= 2 and stops[:-1] == ["processing"] * (len(stops) - 1) and stops[-1] == "active", stops
    session = slack.session("C1", ref.thread_ts)
    assert session is not None and "active" not in session["statuses"][:-1] and session["status"] == "active"


# ---- the whole bot ---------------------------------------------------------------------------------

async def deliver(slack: FakeSlack, payload: dict) -> None:
    await slack.wait_ack(await slack.socket_send("events_api", payload))


@pytest.mark.docker
async def test_slacks_stop_stops_the_task_as_our_button_does(slack, model, tmp_path):
    slack.streaming = slack.agent_sessions = True
    model.script([shell("sleep 300")])
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="stream")
    async with Bot(settings, port=0):
        ts = await mention(slack, "run forever")
        await model.wait_for_requests(1)
        await slack.wait_for(lambda: (slack.session("C1", ts) or {}).get("status") == "processing"
                             and slack.streams_in("C1", ts), timeout=20)
        status_ts = bot_messages(slack, "C1", ts)[0]["ts"]
        await slack.wait_for(lambda: not has_our_stop(slack.message("C1", status_ts) or {}), timeout=20)

        # Someone who may not stop it: told as by our button; Slack stopped the stream, the task goes on.
        await deliver(slack, slack.agent_session_stopped("C1", ts, "U9"))
        await slack.wait_for(lambda: [e for e in slack.ephemerals if e["user"] == "U9"], timeout=10)
        [refusal] = [e for e in slack.ephemerals if e["user"] == "U9"]
        assert refusal["text"] == "Only <@U1> (who asked) or an admin can stop task #1."
        assert refusal["channel"] == "C1" and refusal["thread_ts"] == ts
        await slack.wait_for(lambda: len(slack.streams_in("C1", ts)) == 2, timeout=20)
        old, new = slack.streams_in("C1", ts)
        assert not old["streaming"] and new["streaming"] and NOTE in new["text"]
        assert new["plan_title"] == "Task #1 (continued)"
        assert task_containers(settings), "a refused stop must not stop the task"
        assert slack.session("C1", ts)["status"] == "processing"  # type: ignore[index]

        # The requester: the container goes, the same answer as our button, the session active.
        await deliver(slack, slack.agent_session_stopped("C1", ts, "U1"))
        await slack.wait_for(lambda: not task_containers(settings), timeout=30)
        await slack.wait_for(lambda: [e for e in slack.ephemerals if e["user"] == "U1"], timeout=10)
        assert [e["text"] for e in slack.ephemerals if e["user"] == "U1"] == ["Stopping task #1."]
        final = await wait_final(slack, "C1", ts)
        assert "Stopped by <@U1>" in block_text(final)
        await slack.wait_for(lambda: slack.session("C1", ts)["status"] == "active", timeout=10)  # type: ignore[index]
        await slack.wait_for(lambda: slack.message("C1", status_ts)["text"].startswith(  # type: ignore[index]
            "⏹️ Stopped by <@U1>"), timeout=20)
    assert slack.block_errors == [] and slack.stream_errors == []


@pytest.mark.docker
async def test_a_direct_message_task_has_its_session(slack, model, tmp_path):
    slack.streaming = slack.agent_sessions = True
    model.script([shell("echo hi"), text("Said hi.")])
    async with Bot(make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="stream"), port=0):
        ts = slack.post_user_message("D1", "U1", "say hi")
        await deliver(slack, slack.event_callback({"type": "message", "channel": "D1", "user": "U1", "text": "say hi",
                                                   "ts": ts, "channel_type": "im"}))
        await slack.wait_for(lambda: (slack.session("D1", ts) or {}).get("status") == "active", timeout=60)
    session = slack.session("D1", ts)
    assert session is not None and session["statuses"] == ["processing", "active"] and session["initiator"] == "U1"
    [stream] = slack.streams_in("D1", ts)
    assert stream["text"] == "Said hi." and not stream["streaming"]
    assert all(m["channel"] == "D1" for m in bot_messages(slack, "D1", ts))


@pytest.mark.docker
async def test_suggested_prompts_when_a_conversation_opens(slack, bot):
    await deliver(slack, slack.assistant_thread_started("U1", channel="D1"))
    await slack.wait_for(lambda: slack.suggested_prompts, timeout=10)
    [first] = slack.suggested_prompts
    assert first["channel"] == "D1" and first["thread_ts"] and first["prompts"] == PROMPTS
    assert [p["title"] for p in PROMPTS] == ["Fix a failing test in…", "Review my branch…", "What changed this week?"]

    # The agent experience: the Messages tab opens (no thread_ts), set again only after a while.
    for _ in range(2):
        await deliver(slack, slack.messages_tab_opened("U1", channel="D1"))
    await slack.wait_for(lambda: len(slack.suggested_prompts) == 2, timeout=10)
    await deliver(slack, slack.assistant_thread_context_changed("U1", "D1", first["thread_ts"], "C7"))
    await asyncio.sleep(0.3)
    assert len(slack.suggested_prompts) == 2 and slack.suggested_prompts[1]["thread_ts"] is None
    assert all(c.status == 200 and not (c.response or {}).get("error") for c in slack.calls
               if c.method == "assistant.threads.setSuggestedPrompts"), json.dumps([c.params for c in slack.calls][-5:])
