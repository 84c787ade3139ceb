"""Attacks on Slack's native surfaces (issue 12): streams, agent sessions and their Stop, the Messages tab.

A hostile channel member presses Slack's Stop, sends odd or repeated events, opens conversations in
bulk; a hostile model, repository or command output writes what reaches the stream's Markdown, its
task steps and the session's title. The first tests drive the renderer (the Rig of test_slack_stream.py,
no Docker) against the fake Slack over real HTTP; the others run the whole bot. Rows N1… of SECURITY.md."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from slackbot.app import Bot
from slackbot.protocol import (
    AgentMessage, CommandExecution, Event, ItemCompleted, ItemStarted, TaskFinished, TaskRef, TaskStatus,
    ThreadStarted, TodoEntry, TodoList, TurnStarted,
)
from slackbot.slack.listeners.events.agent_session import NOTE
from tests.conftest import make_settings
from tests.fakes import FakeSlack, shell, text, tool_calls
from tests.helpers import bot_messages, mention, wait_final
from tests.test_e2e_steering import task_containers
from tests.test_slack_stream import Rig

SET_STATUS = "agents.sessions.setStatus"
PROMPTS = "assistant.threads.setSuggestedPrompts"
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
# What would ping, or be parsed as Slack markup, if Slack reads it in streamed Markdown or a step's title.
PINGS = re.compile(r"(?:<|&lt;|&#0*60;|&#x0*3c;)\s*(?:!|@|#|(?:https?|mailto):)", re.I)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")

HOSTILE = ("<!channel> <!here|here> <!everyone> <@U0ADMIN> <!subteam^S123|devs> <#C999> "
           "<https://evil.example/steal|https://github.com/acme/repo/pull/1> &lt;!channel&gt; &#60;!here&#62; "
           "\x1b[31mred\x07\u202eevil")
LINK = "[https://github.com/acme/repo/pull/1](https://evil.example/steal)"
TOKEN = "xoxb-1234567890-abcdefghijklmnop"


def sent_texts(slack: FakeSlack) -> list[str]:
    """Every Markdown text, plan title and step title/details/output sent to a stream method."""
    out: list[str] = []
    for method in STREAM_METHODS:
        for params in slack.calls_to(method):
            if params.get("markdown_text"):
                out.append(str(params["markdown_text"]))
            for chunk in params.get("chunks") or []:
                for key in ("text", "title", "details", "output"):
                    if chunk.get(key):
                        out.append(str(chunk[key]))
    return out


def hostile_script(answer: str) -> list[tuple[float, Event]]:
    command = f"echo '{HOSTILE}' {TOKEN}"
    return [(0, ThreadStarted("t1")), (0, TurnStarted()),
            (0.05, ItemCompleted(TodoList("p1", (TodoEntry(f"step {HOSTILE}"), TodoEntry("x" * 5000))))),
            (0.05, ItemStarted(CommandExecution("c1", command))),
            (0.05, ItemCompleted(CommandExecution("c1", command, "out", 0, "completed"))),
            (0.05, ItemStarted(CommandExecution("c2", "\n\n   \x00\x1b"))),
            (0.05, ItemCompleted(CommandExecution("c2", "\n\n   \x00\x1b", "", 0, "completed"))),
            (0.05, ItemCompleted(AgentMessage("m1", answer))),
            (0.05, TaskFinished(TaskStatus.DONE, answer=answer, elapsed_s=1.0))]


# ---- N1-N3: what the model, a repository or a command writes into the stream -------------------------

async def test_n1_stream_text_cannot_ping_link_or_carry_control_characters(slack, tmp_path):
    slack.streaming = slack.agent_sessions = True
    answer = (f"Done. {HOSTILE}\n\nSee {LINK} and [docs](https://docs.example.com/a).\n"
              f"```\n<!channel> in code\n```\n{TOKEN}\n" + "y" * 30_000)
    async with Rig(slack, tmp_path, "stream") as rig:
        ref = await rig.run_task(hostile_script(answer))
    texts = sent_texts(slack)
    assert texts and slack.stream_errors == [] and slack.block_errors == []
    for t in texts:
        assert not PINGS.search(t), t[:300]
        assert not CONTROL.search(t), repr(t[:300])
        assert TOKEN not in t
    [stream] = slack.streams_in("C1", ref.thread_ts)
    # The words stay readable; a link whose label names another address shows its real host.
    assert "!channel" in stream["text"] and "@U0ADMIN" in stream["text"]
    assert "evil.example" in stream["text"].split(LINK.split("](")[0][1:], 1)[1][:200]
    assert "[docs](https://docs.example.com/a)" in stream["text"]
    titles = [c["title"] for c in stream["tasks"].values()]
    assert all(len(t) <= 150 and t.strip() for t in titles), titles
    assert any("!channel" in t for t in titles)


async def test_n2_the_session_title_cannot_ping(slack, tmp_path):
    slack.streaming = slack.agent_sessions = True
    async with Rig(slack, tmp_path, "stream") as rig:
        thread_ts = slack.post_user_message("C1", "U1", "hi")
        ref = TaskRef(1, 1, "C1", thread_ts, "U1", prompt=f"{HOSTILE}\n{TOKEN} " + "z" * 400)
        for event in hostile_script("ok")[:3]:
            await rig.renderer.handle(ref, event[1])
        await rig.renderer.handle(ref, TaskFinished(TaskStatus.DONE, answer="ok"))
    [call] = [c for c in slack.calls_to(SET_STATUS) if c.get("title")]
    title = call["title"]
    assert len(title) <= 200 and title.startswith("#1 ")
    assert not PINGS.search(title) and not CONTROL.search(title) and TOKEN not in title, title


# ---- N4-N7: Slack's Stop (agent_session_stopped) from the wrong person, thread or shape ----------------

async def deliver(slack: FakeSlack, event: dict, event_id: str | None = None) -> None:
    await slack.wait_ack(await slack.socket_send("events_api", slack.event_callback(event, event_id)))


def stopped(channel: Any, thread_ts: Any, user: Any, streams: Any = None, **more: Any) -> dict:
    event = {"type": "agent_session_stopped", "channel": channel, "thread_ts": thread_ts, "user": user,
             "event_ts": "1700000999.000100", **more}
    if streams is not None:
        event["streaming_message_ts"] = streams
    return event


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def running_task(slack: FakeSlack, model: Any, settings: Any) -> str:
    ts = await mention(slack, "run forever")
    await model.wait_for_requests(1)
    await slack.wait_for(lambda: (slack.session("C1", ts) or {}).get("status") == "processing"
                         and slack.streams_in("C1", ts) and task_containers(settings), timeout=30)
    return ts


@pytest.mark.docker
async def test_n4_slacks_stop_for_threads_that_are_not_this_tasks_stops_nothing(slack, model, tmp_path, caplog):
    caplog.set_level("INFO")
    slack.streaming = slack.agent_sessions = True
    model.script([shell("sleep 300")])
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="stream")
    async with Bot(settings, port=0):
        ts = await running_task(slack, model, settings)
        plain = slack.post_user_message("C1", "U9", "just chatting")  # a thread the bot never worked in
        slack.channels["D2"] = {"is_im": True, "user": "U2"}
        dm = slack.post_user_message("D2", "U2", "hello bot")
        calls, ephemerals = slack.count(SET_STATUS), len(slack.ephemerals)
        for event in (
            stopped("C1", plain, "U9", []),        # no agent thread: no session is made there
            stopped("C2", ts, "U1", []),           # the task's ts, another channel: even its requester
            stopped("D2", dm, "U9", []),           # someone else's DM
            stopped("C1", "1700000000.999999", "U1", []),
        ):
            await deliver(slack, event)
        await asyncio.sleep(1.0)
        assert slack.count(SET_STATUS) == calls, slack.calls_to(SET_STATUS)[calls:]
        assert len(slack.ephemerals) == ephemerals and task_containers(settings)
        assert slack.session("C1", plain) is None and slack.session("D2", dm) is None

        # Odd shapes: never a crash, never a stop, the listener answers the next real press.
        stream_ts = slack.streams_in("C1", ts)[-1]["ts"]
        for event in (
            stopped(["C1"], ts, "U1", [stream_ts]), stopped("C1", [ts], "U1"), stopped("C1", float(ts), "U1"),
            stopped("C1", ts, ["U1"]), stopped("C1", ts, {"id": "U1"}), stopped("C1", ts, None),
            stopped("C1", ts, "U9", 5), stopped("C1", ts, "U9", {"ts": stream_ts}), stopped("C1", ts, "U9", "x" * 10_000),
            stopped("C1", ts, "U9", [{"ts": stream_ts}] + [None, 7]),
            {"type": "agent_session_stopped"}, {"type": "agent_session_stopped", "channel": None},
        ):
            await deliver(slack, event)
        await asyncio.sleep(1.0)
        assert task_containers(settings), "an odd event stopped the task"
        assert failures(caplog) == []
        assert len(slack.streams_in("C1", ts)) == 1 and slack.streams_in("C1", ts)[0]["streaming"]

        # A huge list of stopped streams: answered at once, like any.
        await deliver(slack, stopped("C1", ts, "U9", [f"1700000000.{i:06d}" for i in range(100_000)]))
        await slack.wait_for(lambda: [e for e in slack.ephemerals if e["user"] == "U9"], timeout=10)

        await deliver(slack, slack.agent_session_stopped("C1", ts, "U1")["event"])
        await slack.wait_for(lambda: not task_containers(settings), timeout=30)
        await wait_final(slack, "C1", ts)
        await slack.wait_for(lambda: slack.session("C1", ts)["status"] == "active", timeout=10)  # type: ignore[index]

        # Presses in the ended task's thread, again and again: its session is set active once a minute.
        calls = slack.count(SET_STATUS)
        for _ in range(15):
            await deliver(slack, stopped("C1", ts, "U9", []))
        await asyncio.sleep(1.0)
        assert slack.count(SET_STATUS) - calls == 1 and slack.rate_limited == []
    assert failures(caplog) == []


@pytest.mark.docker
async def test_n5_a_flood_of_refused_stops_costs_the_presser_not_the_workspace(slack, model, tmp_path, caplog):
    caplog.set_level("INFO")
    slack.streaming = slack.agent_sessions = True
    model.script([shell("sleep 300")])
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="stream")
    async with Bot(settings, port=0):
        ts = await running_task(slack, model, settings)
        starts, statuses = slack.count("chat.startStream"), slack.count(SET_STATUS)
        for _ in range(12):
            await deliver(slack, slack.agent_session_stopped("C1", ts, "U9")["event"])
            await asyncio.sleep(0.2)
        await slack.wait_for(lambda: len([e for e in slack.ephemerals if e["user"] == "U9"]) == 12, timeout=20)
        await asyncio.sleep(2.0)
        print("starts", slack.count("chat.startStream") - starts, "statuses", slack.count(SET_STATUS) - statuses,
              "streams", len(slack.streams_in("C1", ts)), "rate_limited", slack.rate_limited)
        assert task_containers(settings), "a refused stop must not stop the task"
        refusals = {e["text"] for e in slack.ephemerals if e["user"] == "U9"}
        assert refusals == {"Only <@U1> (who asked) or an admin can stop task #1."}
        assert all(e["channel"] == "C1" and e["thread_ts"] == ts for e in slack.ephemerals)
        assert slack.count(SET_STATUS) - statuses <= 1
        assert slack.count("chat.startStream") - starts == 1  # one new stream, one note: not twelve
        assert len([s for s in slack.streams_in("C1", ts) if NOTE in s["text"]]) == 1
        assert slack.session("C1", ts)["status"] == "processing"  # type: ignore[index]
        # The presses after the first, within its minute: the stream goes on once the minute is over.
        await slack.wait_for(lambda: len(slack.streams_in("C1", ts)) == 3, timeout=75)
        assert slack.streams_in("C1", ts)[-1]["streaming"] and NOTE in slack.streams_in("C1", ts)[-1]["text"]
        assert slack.count("chat.startStream") - starts == 2 and task_containers(settings)
        await slack.wait_for(lambda: slack.count(SET_STATUS) - statuses == 2, timeout=10)  # processing again
        await deliver(slack, slack.agent_session_stopped("C1", ts, "U1")["event"])
        await slack.wait_for(lambda: not task_containers(settings), timeout=30)
        final = await wait_final(slack, "C1", ts)
        assert "Stopped by <@U1>" in str(final)
    assert slack.rate_limited == [] and failures(caplog) == []


# ---- N6: the Messages tab's suggested prompts --------------------------------------------------------

@pytest.mark.docker
async def test_n6_conversations_opened_in_bulk_or_oddly_shaped_spend_a_bounded_budget(slack, bot, caplog):
    caplog.set_level("INFO")
    # Odd shapes, and places that are no conversation with the bot: nothing is called, nothing crashes.
    thread = slack.assistant_thread_started("U1", channel="D1")["event"]["assistant_thread"]
    for event in (
        {"type": "assistant_thread_started", "assistant_thread": "D1"},
        {"type": "assistant_thread_started", "assistant_thread": ["D1", thread["thread_ts"]]},
        {"type": "assistant_thread_started", "assistant_thread": {**thread, "channel_id": ["D1"]}},
        {"type": "assistant_thread_started", "assistant_thread": {**thread, "thread_ts": {"ts": 1}}},
        {"type": "assistant_thread_started", "assistant_thread": {**thread, "channel_id": "C1"}},
        {"type": "assistant_thread_context_changed", "assistant_thread": 5},
        {"type": "app_home_opened", "user": "U1", "tab": "messages", "channel": ["D1"]},
        {"type": "app_home_opened", "user": "U1", "tab": "messages", "channel": {"id": "D1"}},
        {"type": "app_home_opened", "user": "U1", "tab": "messages"},
        {"type": "app_home_opened", "user": "U1", "tab": "messages", "channel": "C1"},
    ):
        await deliver(slack, event)
    await asyncio.sleep(0.5)
    assert slack.count(PROMPTS) == 0 and failures(caplog) == []

    # A flood of new conversations: each has its prompts until the minute's budget is spent.
    for _ in range(80):
        await deliver(slack, slack.assistant_thread_started("U1", channel="D1")["event"])
    for n in range(40):
        await deliver(slack, slack.messages_tab_opened("U1", channel=f"D{100 + n}")["event"])
    await asyncio.sleep(1.0)
    made = slack.count(PROMPTS)
    print("prompts", made)
    assert 0 < made <= 60 and slack.rate_limited == []
    assert all(c["channel"].startswith("D") for c in slack.suggested_prompts)
    assert failures(caplog) == []


# ---- N3: a real task's hostile plan, commands and answer; secrets; whom a stream names -----------------

@pytest.mark.docker
async def test_n3_a_real_task_streams_no_ping_no_secret_and_names_only_its_requester(slack, model, tmp_path):
    slack.streaming = slack.agent_sessions = True
    github = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    plan = [{"step": f"read {TOKEN} then <!channel>", "status": "in_progress"}, {"step": "<@U0ADMIN> done",
                                                                                 "status": "pending"}]
    model.script([tool_calls([("update_plan", {"plan": plan})]),
                  shell(f"echo '<!here>' {TOKEN} && echo {github}"),
                  text(f"All done <!channel> <@U0ADMIN>: {TOKEN} {github} and {LINK}")])
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="stream")
    async with Bot(settings, port=0):
        ts = await mention(slack, "do the thing")
        await wait_final(slack, "C1", ts)
        model.script([text("Second answer.")])
        await mention(slack, "and once more", user="U2", thread_ts=ts)  # a follow-up by another member
        await wait_final(slack, "C1", ts, count=2)
    texts = sent_texts(slack)
    assert any("!channel" in t for t in texts) and any("[redacted]" in t for t in texts)
    for t in texts:
        assert not PINGS.search(t) and TOKEN not in t and github not in t, t[:300]
    starts = slack.calls_to("chat.startStream")
    assert [(s["recipient_user_id"], s["recipient_team_id"]) for s in starts] == [
        ("U1", slack.team_id), ("U2", slack.team_id)]
    assert [s["initiator_user_id"] for s in slack.calls_to(SET_STATUS) if s.get("initiator_user_id")] == ["U1", "U2"]
    assert slack.stream_errors == [] and slack.block_errors == []
