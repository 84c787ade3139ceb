"""Fifty tasks streaming at once: Slack's rate tiers (the fake enforces them) answer no 429.

Stream starts sit in a low tier (chat.startStream, Tier 2): the starts beyond the bot's per-minute
budget use the classic status message instead, and every task still ends with its answer in its
thread. (Status edits queue behind chat.update's own budget: they are not waited for here.)"""

from __future__ import annotations

import asyncio

from slackbot.protocol import TaskRef
from slackbot.slack.blocks import StatusState, status_blocks
from tests.fakes import FakeSlack
from tests.helpers import bot_messages
from tests.test_slack_stream import ANSWER, Rig, script

TASKS = 50


async def one(rig: Rig, task_id: int) -> TaskRef:
    """A task as the front starts it (mention, status message), then the runs layer's events."""
    channel = f"C{task_id:03d}"  # (a channel each: Slack paces posts per channel, and so does the bot)
    thread_ts = rig.slack.post_user_message(channel, "U1", f"<@{rig.slack.bot_user_id}> do it")
    fallback, blocks = status_blocks(StatusState(task_id, state="working", phase="Starting"))
    resp = await rig.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=fallback, blocks=blocks)
    ref = TaskRef(task_id, task_id, channel, thread_ts, "U1", status_ts=resp["ts"])
    for gap, event in script(0.2):
        await asyncio.sleep(gap)
        await rig.renderer.handle(ref, event)
    return ref


async def test_fifty_streamed_tasks_get_no_429(tmp_path):
    async with FakeSlack() as slack:
        slack.streaming, slack.agent_sessions = True, True
        async with Rig(slack, tmp_path, "stream", flush_s=1.0) as rig:
            refs = await asyncio.gather(*(one(rig, n) for n in range(1, TASKS + 1)))
            await asyncio.sleep(1.0)
            streamed = [r for r in refs if slack.streams_in(r.channel, r.thread_ts)]
            assert 0 < len(streamed) <= rig.settings.stream_starts_per_min  # paced: the others went classic
            for ref in refs:
                streams = slack.streams_in(ref.channel, ref.thread_ts)
                if streams:
                    assert not any(s["streaming"] for s in streams) and streams[-1]["text"] == ANSWER, ref
                else:
                    said = " ".join(str(m.get("text", "")) + str(m.get("blocks", ""))
                                    for m in bot_messages(slack, ref.channel, ref.thread_ts))
                    assert "greet.txt" in said, ref
            assert slack.rate_limited == [], slack.dump()
            assert slack.block_errors == [] and slack.stream_errors == []
