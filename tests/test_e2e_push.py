"""The Push button: only the thread's first requester or an admin; what the remote says comes back escaped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from slackbot.app import Bot
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.helpers import block_text, bot_messages, mention, reply, wait_final
from tests.slack_actions import button, command, ephemeral_texts, press

pytestmark = pytest.mark.docker  # every test here runs containers


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_remote(tmp: Path) -> Path:
    seed = tmp / "seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("# app\n")
    git("add", "-A", cwd=seed)
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "initial", cwd=seed)
    remote = tmp / "app.git"
    git("clone", "-q", "--bare", str(seed), str(remote))
    return remote


def branches(remote: Path) -> list[str]:
    return [b.strip() for b in git("branch", "--list", cwd=remote).splitlines() if "slackbot/" in b]


async def test_only_the_first_requester_or_an_admin_may_push(slack, model, tmp_path):
    remote = make_remote(tmp_path)
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")
    async with Bot(settings, port=0):
        await command(slack, f"repo add app {remote}", user="UADMIN")
        model.script([shell("echo one > one.txt"), text("First change.")])
        ts = await mention(slack, "make the first change", user="U1")
        await wait_final(slack, "C1", ts)
        # Someone else asks a follow-up in the same thread: the latest task is theirs.
        model.script([shell("echo two > two.txt"), text("Second change.")])
        await reply(slack, "and a second change", channel="C1", thread_ts=ts, user="U2")
        final2 = await wait_final(slack, "C1", ts, count=2)
        value = button(final2, "task_push")["value"]
        assert value == "2"

        await press(slack, "task_push", value, user="U2", channel="C1", message_ts=final2["ts"], thread_ts=ts)
        refusal = await slack.wait_for(lambda: ephemeral_texts(slack, "U2"), timeout=15)
        assert refusal[-1] == "Only <@U1> (who started this thread) or an admin can push its branch."
        assert branches(remote) == []
        assert not any("Pushed" in block_text(m) for m in bot_messages(slack, "C1", ts))

        await press(slack, "task_push", value, user="U1", channel="C1", message_ts=final2["ts"], thread_ts=ts)
        await slack.wait_for(lambda: any("Pushed" in block_text(m) for m in bot_messages(slack, "C1", ts)),
                             timeout=30)
        (branch,) = branches(remote)
        assert "two" in git("ls-tree", "--name-only", branch, cwd=remote)

        # An admin may push any thread's branch; a forged value in another channel finds nothing.
        await press(slack, "task_push", value, user="UADMIN", channel="C1", message_ts=final2["ts"], thread_ts=ts)
        await slack.wait_for(lambda: sum("Pushed" in block_text(m) for m in bot_messages(slack, "C1", ts)) == 2,
                             timeout=30)
        await press(slack, "task_push", value, user="U1", channel="C2", message_ts=final2["ts"], thread_ts=ts)
        await slack.wait_for(lambda: "There is no task #2 in this channel." in ephemeral_texts(slack, "U1"))


async def test_what_a_rejecting_remote_says_is_shown_escaped(slack, model, tmp_path):
    remote = make_remote(tmp_path)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho '<!channel> <@U999> pushes are frozen &gt; today' >&2\nexit 1\n")
    hook.chmod(0o755)
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")
    async with Bot(settings, port=0):
        await command(slack, f"repo add app {remote}", user="UADMIN")
        model.script([shell("echo x > x.txt"), text("done")])
        ts = await mention(slack, "change something")
        final = await wait_final(slack, "C1", ts)
        await press(slack, "task_push", "1", user="U1", channel="C1", message_ts=final["ts"], thread_ts=ts)
        said = await slack.wait_for(lambda: next((m for m in bot_messages(slack, "C1", ts)
                                                  if "frozen" in block_text(m)), None), timeout=30)
        shown = (said.get("text") or "") + json.dumps(said.get("blocks"))
        assert "&lt;!channel&gt; &lt;@U999&gt; pushes are frozen &amp;gt; today" in shown
        assert "<!channel>" not in shown and "<@U999>" not in shown
