"""kill -9 of the bot mid-task, then a restart: the thread is told, the container is gone, and
continuing works with the history intact. The bot runs as a real `slackbot run` subprocess."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from slackbot.app import instance_label
from slackbot.settings import Settings
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.helpers import block_text, bot_messages, mention, reply, wait_final
from tests.test_cli import cli_env
from tests.test_e2e_steering import task_containers


async def start_bot(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "slackbot", "run", "--port", "0", env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


@pytest.mark.docker
async def test_kill_9_mid_task_then_restart(slack, model, tmp_path):
    env = cli_env(tmp_path, slack, model)
    settings: Settings = make_settings(tmp_path / "data", slack, model)
    model.script([shell("echo before > progress.txt; sleep 300")])
    first = await start_bot(env)
    try:
        await slack.wait_socket_connected(timeout=30)
        ts = await mention(slack, "a long job")
        await model.wait_for_requests(1)
        await slack.wait_for(lambda: task_containers(settings), timeout=30)
        # A reply during the long command waits in the inbox; the kill must not lose it.
        await reply(slack, "are you still there?", channel="C1", thread_ts=ts)
        await asyncio.sleep(1)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert task_containers(settings), "the killed bot leaves its container behind"

    model.script([shell("cat progress.txt"), text("Picked up where I left off.")])
    second = await start_bot(env)
    try:
        await slack.wait_for(lambda: any("interrupted by a restart" in block_text(m)
                                         for m in bot_messages(slack, "C1", ts)), timeout=60)
        await slack.wait_for(lambda: not task_containers(settings), timeout=30)
        await reply(slack, "please continue", channel="C1", thread_ts=ts)
        final = await wait_final(slack, "C1", ts, count=2, timeout=90)
        assert "Picked up where I left off." in block_text(final)
    finally:
        second.terminate()
        await asyncio.wait_for(second.wait(), 30)
    body = model.requests[-1].body
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    assert users[0] == "a long job"
    assert "please continue" in users and "are you still there?" in users
    assert users.index("are you still there?") < users.index("please continue")  # the older reply first
    tool_results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    assert any("interrupted" in t for t in tool_results)
    assert "before" in tool_results[-1]
    assert instance_label(settings)


async def test_a_final_status_without_its_message_is_announced_at_start(slack, model, tmp_path):
    """A crash between marking a task done and posting its final message: the next start posts it."""
    from slackbot.app import Bot
    from slackbot.protocol import TaskFinished, TaskStatus, event_to_dict
    from slackbot.store import Store

    settings = make_settings(tmp_path / "data", slack, model)
    settings.data_dir.mkdir(parents=True)
    store = Store(settings.db_url)
    await store.upgrade()
    _, done = await store.new_task(channel="C1", thread_ts="100.0", requester="U1", requester_name="Ann",
                                   prompt="finished before the crash", mention_ts="100.0", model="")
    await store.transition(done.id, [TaskStatus.PENDING], status="done", answer="All done before the crash.",
                           announced=False)
    await store.add_event(done.id, event_to_dict(TaskFinished(status="done", answer="All done before the crash.")))
    _, bare = await store.new_task(channel="C1", thread_ts="200.0", requester="U1", requester_name="Ann",
                                   prompt="no event stored", mention_ts="200.0", model="")
    await store.transition(bare.id, [TaskStatus.PENDING], status="failed", error="it broke", announced=False)
    await store.aclose()
    async with Bot(settings, port=0) as bot:
        await slack.wait_for(lambda: any("All done before the crash." in block_text(m)
                                         for m in bot_messages(slack, "C1", "100.0")), timeout=30)
        await slack.wait_for(lambda: any("it broke" in block_text(m) for m in bot_messages(slack, "C1", "200.0")),
                             timeout=30)
        assert not await bot.store.unannounced_tasks()
