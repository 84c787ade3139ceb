"""Live progress through Slack's native streaming, and its fall-back to the classic status message.

Most tests drive the Slack renderer with one scripted task's events against the fake Slack over real
HTTP (no Docker): the same events the runs layer writes. Two run the whole bot (Docker)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from slackbot.app import Bot
from slackbot.protocol import (
    AgentMessage, CommandExecution, Event, FileStat, ItemCompleted, ItemStarted, TaskFinished, TaskRef, TaskStatus,
    ThreadStarted, TodoEntry, TodoList, TurnStarted, Usage,
)
from slackbot.settings import Settings
from slackbot.slack.app import web_client
from slackbot.slack.blocks import StatusState, status_blocks
from slackbot.slack.renderer import SlackRenderer
from slackbot.slack.stream import StreamSink
from slackbot.slack.updater import StatusUpdater
from slackbot.store import Store
from tests.conftest import make_settings
from tests.fakes import FakeSlack, shell, text, tool_calls
from tests.helpers import block_text, bot_messages, mention, wait_final

STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
POSTING = ("chat.postMessage", "chat.update", "chat.delete", *STREAM_METHODS,
           "files.getUploadURLExternal", "files.completeUploadExternal")
ANSWER = "I wrote **greet.txt** and read it back."


def script(gap: float = 0.25) -> list[tuple[float, Event]]:
    """One task: a plan, a command that works, the plan moving on, one that fails, the answer."""
    first, second = "echo hello > greet.txt\ncat greet.txt", "cat missing.txt"
    return [(0, ThreadStarted("t1")), (0, TurnStarted()),
            (gap, ItemCompleted(TodoList("p1", (TodoEntry("write the file"), TodoEntry("read it back"))))),
            (gap, ItemStarted(CommandExecution("c1", first))),
            (gap, ItemCompleted(CommandExecution("c1", first, "hello", 0, "completed"))),
            (gap, ItemCompleted(TodoList("p2", (TodoEntry("write the file", True), TodoEntry("read it back"))))),
            (gap, ItemStarted(CommandExecution("c2", second))),
            (gap, ItemCompleted(CommandExecution("c2", second, "No such file", 1, "failed"))),
            (gap, ItemCompleted(AgentMessage("m1", ANSWER))),
            (gap, TaskFinished(TaskStatus.DONE, answer=ANSWER, files=(FileStat("greet.txt", 1, 0, "add"),),
                               elapsed_s=2.0, usage=Usage(10, 0, 5), branch="slackbot/t1", pushable=True))]


class Rig:
    """The renderer as the bot builds it (app.py), against the fake Slack."""

    def __init__(self, slack: FakeSlack, tmp_path: Path, mode: str, **stream: float) -> None:
        self.slack = slack
        self.settings = Settings(SLACK_BOT_TOKEN=slack.bot_token, SLACK_API_URL=slack.api_url,
                                 SLACKBOT_DATA_DIR=str(tmp_path), SLACKBOT_SLACK_UI=mode)
        self.client = web_client(self.settings)
        self.store = Store(f"sqlite:///{tmp_path}/rig.db")
        self.updater = StatusUpdater(self.client, per_min=45, min_interval_s=0.5)
        self.streams = None if mode == "classic" else StreamSink(
            self.client, mode=mode, team_id=slack.team_id, max_open_s=stream.get("max_open_s", 240.0),
            flush_s=stream.get("flush_s", 1.0), starts_per_min=int(stream.get("starts_per_min", 16)))
        self.renderer = SlackRenderer(self.client, self.updater, self.store, streams=self.streams)
        self.tasks: list[asyncio.Task] = []
        self.next_id = 1

    async def __aenter__(self) -> "Rig":
        await self.store.upgrade()
        self.tasks.append(asyncio.create_task(self.updater.run()))
        if self.streams is not None:
            self.tasks.append(asyncio.create_task(self.streams.run()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self.tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.store.aclose()

    async def run_task(self, events: list[tuple[float, Event]], channel: str = "C1") -> TaskRef:
        """Posts the mention and the status message as the front does, then feeds the events."""
        thread_ts = self.slack.post_user_message(channel, "U1", f"<@{self.slack.bot_user_id}> do it")
        task_id, self.next_id = self.next_id, self.next_id + 1
        fallback, blocks = status_blocks(StatusState(task_id, state="working", phase="Starting"))
        resp = await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=fallback, blocks=blocks)
        ref = TaskRef(task_id, task_id, channel, thread_ts, "U1", status_ts=resp["ts"])
        for gap, event in events:
            await asyncio.sleep(gap)
            await self.renderer.handle(ref, event)
        await self.updater.flush()
        return ref


def posting_calls(slack: FakeSlack) -> dict[str, int]:
    return {m: slack.count(m) for m in POSTING if slack.count(m)}


def the_final_status(slack: FakeSlack, ref: TaskRef) -> dict:
    msg = slack.message(ref.channel, ref.status_ts)
    assert msg is not None
    return msg


async def test_a_streamed_task_from_first_chunk_to_stop(slack, tmp_path):
    slack.streaming = True
    async with Rig(slack, tmp_path, "stream") as rig:
        ref = await rig.run_task(script())
    [stream] = slack.streams_in("C1", ref.thread_ts)
    start = slack.calls_to("chat.startStream")[0]
    assert start["recipient_user_id"] == "U1" and start["recipient_team_id"] == slack.team_id
    assert start["thread_ts"] == ref.thread_ts and start["task_display_mode"] == "plan"
    assert stream["plan_title"] == "Task #1" and not stream["streaming"]
    tasks = stream["tasks"]
    # The plan's steps moved pending → in progress → complete (the step still open settles at the end:
    # a finished message shows no spinner).
    assert [c["status"] for c in stream["chunks"] if c.get("id") == "plan-1"] == [
        "pending", "in_progress", "complete"]
    assert tasks["plan-0"]["status"] == "complete"
    assert tasks["plan-0"]["title"] == "write the file"
    # Each command a step: its first line, then its exit code.
    assert tasks["cmd-c1"] == {"type": "task_update", "id": "cmd-c1", "title": "echo hello > greet.txt…",
                               "status": "complete", "output": "exit 0"}
    assert tasks["cmd-c2"]["status"] == "error" and tasks["cmd-c2"]["output"] == "exit 1"
    # The answer streamed as Markdown; the stop carried the final blocks.
    assert stream["text"] == ANSWER
    assert any(c == {"type": "markdown_text", "text": ANSWER} for c in stream["chunks"])
    body = block_text(stream)
    assert "`greet.txt` +1 −0 (new)" in body and "tokens in" in body
    actions = [e["action_id"] for b in stream["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert actions == ["task_push", "task_transcript"]
    # No classic final reply; the status message ends Done, without its Stop button.
    assert len(bot_messages(slack, "C1", ref.thread_ts)) == 2
    status = the_final_status(slack, ref)
    assert status["text"].startswith("✅ Done") and all(b["type"] != "actions" for b in status["blocks"])
    assert slack.block_errors == [] and slack.stream_errors == [] and slack.rate_limited == []


async def test_auto_falls_back_to_the_classic_message_and_remembers(slack, tmp_path, caplog):
    assert not slack.streaming  # the fake refuses streaming as a workspace without it
    caplog.set_level("INFO", logger="slackbot.slack.stream")
    async with Rig(slack, tmp_path, "auto") as rig:
        first = await rig.run_task(script(0.05))
        second = await rig.run_task(script(0.05))
    assert slack.count("chat.startStream") == 1  # the refusal is remembered: the second task did not ask
    assert slack.count("chat.appendStream") == slack.count("chat.stopStream") == 0
    assert rig.streams is not None and rig.streams.refused == {slack.team_id: "unknown_method"}
    for ref in (first, second):
        status = the_final_status(slack, ref)
        assert status["text"].startswith("✅ Done") and status["edits"]
        [final] = [m for m in bot_messages(slack, "C1", ref.thread_ts) if m["ts"] != ref.status_ts]
        assert ANSWER.replace("**", "*") in block_text(final)
        everything = " ".join(block_text(m) for m in bot_messages(slack, "C1", ref.thread_ts))
        assert "unknown_method" not in everything and "❌" not in everything
    fallbacks = [r for r in caplog.records if "does not stream" in r.getMessage()]
    assert len(fallbacks) == 1 and fallbacks[0].levelname == "INFO"


async def test_a_refusal_of_one_task_is_not_remembered(slack, tmp_path):
    slack.streaming = True
    async with Rig(slack, tmp_path, "auto") as rig:
        slack.fail_next("chat.startStream", status=200, error="channel_type_not_supported")
        await rig.run_task(script(0.05))
        ref = await rig.run_task(script(0.05))
    assert rig.streams is not None and rig.streams.refused == {}
    assert slack.count("chat.startStream") == 2 and len(slack.streams_in("C1", ref.thread_ts)) == 1


async def test_classic_never_calls_the_stream_methods(slack, tmp_path):
    slack.streaming = True
    async with Rig(slack, tmp_path, "classic") as rig:
        ref = await rig.run_task(script())
    assert not any(slack.count(m) for m in STREAM_METHODS)
    assert the_final_status(slack, ref)["text"].startswith("✅ Done")


async def test_streaming_spends_no_more_slack_calls_than_classic(tmp_path):
    counts = {}
    for mode in ("classic", "stream"):
        async with FakeSlack() as slack:
            slack.streaming = True
            (tmp_path / mode).mkdir()
            async with Rig(slack, tmp_path / mode, mode, flush_s=1.0) as rig:
                await rig.run_task(script(0.3))
            counts[mode] = posting_calls(slack)
    assert sum(counts["stream"].values()) <= sum(counts["classic"].values()), counts


async def test_stream_starts_are_paced_then_tasks_use_the_classic_message(slack, tmp_path):
    slack.streaming = True
    async with Rig(slack, tmp_path, "stream", starts_per_min=3) as rig:  # two first starts a minute
        refs = [await rig.run_task(script(0.01)) for _ in range(3)]
    assert slack.count("chat.startStream") == 2
    assert [len(slack.streams_in("C1", r.thread_ts)) for r in refs] == [1, 1, 0]
    assert the_final_status(slack, refs[2])["edits"] and slack.rate_limited == []


@pytest.mark.parametrize("ours,slacks", [(1.0, 60.0), (60.0, 1.0)], ids=["rolled-before-expiry", "expired-by-slack"])
async def test_a_long_task_continues_in_a_new_stream(slack, tmp_path, ours, slacks):
    slack.streaming, slack.stream_max_open_s = True, slacks
    events = script(0.6)  # about five seconds
    async with Rig(slack, tmp_path, "stream", max_open_s=ours, flush_s=0.3) as rig:
        ref = await rig.run_task(events)
    streams = slack.streams_in("C1", ref.thread_ts)
    assert len(streams) >= 2, slack.dump()
    assert not any(s["streaming"] for s in streams)
    assert streams[1]["plan_title"] == "Task #1 (continued)"
    last = streams[-1]
    assert last["text"] == ANSWER and any(b["type"] == "actions" for b in last["blocks"])
    assert last["tasks"]["plan-0"]["status"] == "complete"  # the plan's state carried over
    assert not any(m.get("blocks") and "⏱" in block_text(m) for m in bot_messages(slack, "C1", ref.thread_ts)
                   if "stream_started" not in m)  # no classic final reply: the stream's stop carried it


def test_the_setting_is_validated():
    assert Settings().slack_ui == "auto"
    assert Settings(SLACKBOT_SLACK_UI="classic").slack_ui == "classic"
    with pytest.raises(ValidationError, match="SLACKBOT_SLACK_UI"):
        Settings(SLACKBOT_SLACK_UI="fancy")


# ---- the whole bot (Docker) ------------------------------------------------------------------------

STEPS = [tool_calls([("update_plan", {"plan": [{"step": "write the file", "status": "in_progress"},
                                             {"step": "read it back", "status": "pending"}]})]),
         shell("echo hello > greet.txt"), shell("cat greet.txt"), text(ANSWER)]


@pytest.mark.docker
async def test_the_bot_streams_a_task(slack, model, tmp_path):
    slack.streaming = True
    model.script(STEPS)
    async with Bot(make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="stream"), port=0):
        ts = await mention(slack, "write a greeting file")
        final = await wait_final(slack, "C1", ts)
    [stream] = slack.streams_in("C1", ts)
    assert final["ts"] == stream["ts"] and stream["text"] == ANSWER
    assert [c["title"] for i, c in sorted(stream["tasks"].items()) if i.startswith("cmd-")] == [
        "echo hello > greet.txt", "cat greet.txt"]
    assert all(c["status"] == "complete" for c in stream["tasks"].values() if c["id"].startswith("cmd-"))
    assert "`greet.txt` +1 −0 (new)" in block_text(stream)
    assert slack.block_errors == [] and slack.stream_errors == []


@pytest.mark.docker
async def test_the_bot_in_classic_mode_never_streams(slack, model, tmp_path):
    slack.streaming = True
    model.script(STEPS)
    async with Bot(make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="classic"), port=0):
        ts = await mention(slack, "write a greeting file")
        final = await wait_final(slack, "C1", ts)
    assert not any(slack.count(m) for m in STREAM_METHODS)
    assert "*greet.txt*" in block_text(final)
