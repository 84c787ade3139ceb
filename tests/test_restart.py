"""kill -9 of the bot mid-task, then a restart: the thread is told, the container is gone, and
continuing works with the history intact. The bot runs as a real `slackbot run` subprocess."""

from __future__ import annotations

import asyncio
import signal
import sys

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
