"""Secrets for setup, end to end in real containers: an admin sets one through the form, the setup command
(its own container) sees it, the agent phase finds it nowhere (environment, /proc/*/environ, the files of
the workspace, the home directory and the whole filesystem, the setup's /tmp), and a setup that echoes it
is redacted in the stored events, the transcript and every Slack call. A setup run again in a workspace
the agent wrote gets no secrets, so a script the agent planted there cannot take them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from slackbot.app import Bot
from slackbot.redact import MARK
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.git_helpers import git
from tests.helpers import block_text, mention, reply, wait_final
from tests.slack_actions import button, press
from tests.test_secrets_modal import everything_sent, open_form, submit

KEY = Fernet.generate_key().decode()
# Split in two wherever the agent's commands need it, so no command line carries it whole.
HEAD, TAIL = "npmTok_Rf7Gh2", "Jk9Lm4Np6Qs8"
VALUE = HEAD + TAIL


def remote_with_setup_script(tmp: Path) -> Path:
    work, bare = tmp / "app-work", tmp / "app.git"
    git("init", "--quiet", "--initial-branch=main", str(work))
    (work / "README.md").write_text("app\n")
    (work / "scripts").mkdir()
    (work / "scripts" / "setup.sh").write_text("echo 'installing dependencies'\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git("push", "--quiet", str(bare), "main:main", cwd=work)
    return bare


@pytest.fixture
async def bot(tmp_path, slack, model):
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN", SLACKBOT_SECRETS_KEY=KEY)
    async with Bot(settings, port=0) as running:
        remote = remote_with_setup_script(tmp_path)
        running.app_repo = await running.deps.repos.link("C1", name="app", url=str(remote), branch="main",
                                                         github="", user="UADMIN")
        view = await open_form(slack)
        assert await submit(slack, view, name="NPM_TOKEN", value=VALUE) == {}
        yield running


def tool_outputs(model, tag: str) -> list[str]:
    """What the agent's commands printed, as the model received it (unredacted: straight from the sandbox)."""
    return [m["content"] for m in model.requests_for(tag)[-1].body["messages"] if m["role"] == "tool"]


@pytest.mark.docker
async def test_setup_sees_the_secret_and_the_agent_never_does(slack, model, bot):
    await bot.deps.repos.configure(bot.app_repo.id, setup=(
        'printf %s "$NPM_TOKEN" | sha256sum | cut -c1-64 > .token-sha; '
        'printf %s "$NPM_TOKEN" > /tmp/leftover; '
        'echo "setup sees token=$NPM_TOKEN"'))
    everywhere = "$(ls -d /* | grep -vxE '/(proc|sys|dev)')"  # the whole filesystem but the kernel's views
    model.script_for("look-for-it", [
        shell("cat .token-sha"),
        shell("env; echo ---; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo ---; "
              "ls -a /tmp; cat /tmp/leftover 2>&1; echo ---; ps -eo args"),
        shell(f'T="$(printf %s%s {HEAD} {TAIL})"; '
              f'echo "found:"; grep -rlF -D skip -- "$T" /workspace /home/agent 2>/dev/null; '
              f'grep -rlF -D skip -- "$T" {everywhere} 2>/dev/null; echo "end"'),
        text("Looked everywhere."),
    ])
    ts = await mention(slack, "look-for-it")
    final = await wait_final(slack, "C1", ts, timeout=180)
    assert "Looked everywhere." in block_text(final)

    digest, environment, search = tool_outputs(model, "look-for-it")
    assert hashlib.sha256(VALUE.encode()).hexdigest() in digest  # the setup command had it
    assert "HOME=/home/agent" in environment and "No such file" in environment  # (the setup's /tmp is its own)
    assert VALUE not in environment and HEAD not in environment and "NPM_TOKEN" not in environment
    assert search.split("found:")[1].split("end")[0].split() == [], search  # no file anywhere holds it

    # The setup echoed it: redacted in the stored events, the transcript, every Slack call.
    events = await bot.store.events(1)
    setup = next(e["item"] for e in events if e["type"] == "item.completed" and e["item"]["id"].endswith("_setup"))
    assert setup["aggregated_output"].strip() == f"setup sees token={MARK}"
    assert VALUE not in json.dumps(events)
    assert VALUE not in json.dumps([r.data for r in await bot.store.history(1)])
    await press(slack, "task_transcript", button(final, "task_transcript")["value"], user="U1", channel="C1",
                message_ts=final["ts"], thread_ts=ts)
    transcript = await slack.wait_for(lambda: next((f for f in slack.files if "transcript" in f["name"]), None))
    content = transcript["content"].decode() if isinstance(transcript["content"], bytes) else transcript["content"]
    assert f"setup sees token={MARK}" in content and VALUE not in content
    assert VALUE not in everything_sent(slack) and VALUE not in json.dumps(slack.files, default=str)
    task = await bot.store.get_task(1)
    assert VALUE not in task.answer + task.error
    # Nothing the bot wrote on the host carries it either: the database (ciphertext, redacted events), the
    # workspace and home directory (the setup's own .token-sha is a digest), mirrors, scratch space.
    carrying = [str(f) for f in bot.settings.data_dir.rglob("*") if f.is_file() and not f.is_symlink()
                and VALUE.encode() in f.read_bytes()]
    assert carrying == []


@pytest.mark.docker
async def test_a_setup_run_again_after_the_agent_gets_no_secrets(slack, model, bot, tmp_path):
    await bot.deps.repos.configure(bot.app_repo.id, setup="sh scripts/setup.sh")
    # The agent plants a line in the script the setup command runs (a package's install script would do);
    # the thread's follow-up (same script: the model is told the thread by its first request) collects.
    model.script_for("plant", [shell("echo 'printf %s \"$NPM_TOKEN\" > stolen.txt' >> scripts/setup.sh"),
                               text("planted"), shell("wc -c < stolen.txt; cat stolen.txt"), text("collected")])
    ts = await mention(slack, "plant")
    await wait_final(slack, "C1", ts, timeout=180)
    # An admin changes the setup command: the thread's next task runs it again, in the agent's workspace.
    await bot.deps.repos.configure(bot.app_repo.id, setup="sh scripts/setup.sh && echo again")
    await reply(slack, "collect", channel="C1", thread_ts=ts, user="U1")
    await wait_final(slack, "C1", ts, count=2, timeout=180)
    collected = tool_outputs(model, "plant")[-1]
    assert "exit code: 0" in collected and VALUE not in collected
    assert collected.split("```")[1].split()[0] == "0", collected  # the planted line ran, without the secret
    events = await bot.store.events(2)
    setup = next(e["item"] for e in events if e["type"] == "item.completed" and e["item"]["id"].endswith("_setup"))
    assert "again" in setup["aggregated_output"]
    assert "secrets (NPM_TOKEN) were not given to the setup command" in setup["aggregated_output"]
    # A new thread runs the setup with its secrets again (in a fresh checkout, the planted line is not there).
    model.script_for("fresh", [shell("ls stolen.txt 2>&1"), text("fresh")])
    fresh = await mention(slack, "fresh")
    await wait_final(slack, "C1", fresh, timeout=180)
    assert "No such file" in tool_outputs(model, "fresh")[0]
    events = await bot.store.events(3)
    setup = next(e["item"] for e in events if e["type"] == "item.completed" and e["item"]["id"].endswith("_setup"))
    assert setup["exit_code"] == 0 and "not given" not in setup["aggregated_output"]
