"""Linked repositories end to end: local bare repositories as remotes, a fake GitHub, real Docker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from slackbot.app import Bot
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.fakes.github import FakeGitHub
from tests.helpers import block_text, bot_messages, mention, output_of, reply, wait_final
from tests.slack_actions import button, command as slash, press as press_button


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_remote(tmp: Path, name: str = "app") -> Path:
    """A bare repository with `main` (README, greet.py) and `release-2` (plus RELEASE)."""
    seed = tmp / f"{name}-seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("# app\n")
    (seed / "greet.py").write_text("def greet():\n    return 'hi'\n")
    (seed / "AGENTS.md").write_text("Always run the tests with pytest -q.\n")
    git("add", "-A", cwd=seed)
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "initial", cwd=seed)
    git("checkout", "-q", "-b", "release-2", cwd=seed)
    (seed / "RELEASE").write_text("2\n")
    git("add", "-A", cwd=seed)
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "release 2", cwd=seed)
    git("checkout", "-q", "main", cwd=seed)
    remote = tmp / f"{name}.git"
    git("clone", "-q", "--bare", str(seed), str(remote))
    return remote


async def command(slack, text_: str, user: str = "UADMIN", channel: str = "C1") -> str:
    return await slash(slack, text_, user=user, channel=channel)


async def press(slack, action_id: str, value: str, user: str, channel: str, message: dict, thread_ts: str) -> None:
    await press_button(slack, action_id, value, user=user, channel=channel, message_ts=message["ts"],
                       thread_ts=thread_ts)


@pytest.fixture
def admin_settings(tmp_path, slack, model):
    return make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")


@pytest.mark.docker
async def test_link_mention_push_follow_up(slack, model, admin_settings, tmp_path):
    remote = make_remote(tmp_path)
    slack.users["U1"] = {"real_name": "Ada Lovelace", "profile": {"email": "ada@example.com",
                                                                  "display_name": "Ada"}}
    async with Bot(admin_settings, port=0):
        assert "Only admins" in await command(slack, f"repo add app {remote}", user="U1")
        assert "Linked `app`" in await command(slack, f"repo add app {remote} main")
        assert "`app` (default)" in await command(slack, "repos")

        model.script([shell("cat AGENTS.md && printf 'def hello():\\n    return 1\\n' >> greet.py"),
                      text("Added hello().")])
        ts = await mention(slack, "add a hello function")
        final = await wait_final(slack, "C1", ts)
        assert "`greet.py` +2 −0" in block_text(final)
        assert "Always run the tests" in model.requests[0].body["messages"][0]["content"]  # AGENTS.md
        patch = await slack.wait_for(lambda: next((f for f in slack.files if f["name"].endswith(".patch")), None))
        assert b"+def hello():" in patch["content"]

        await press(slack, "task_push", "1", "U1", "C1", final, ts)
        await slack.wait_for(lambda: any("Pushed" in block_text(m) for m in bot_messages(slack, "C1", ts)))
        branches = git("branch", "--list", cwd=remote)
        branch = next(b.strip() for b in branches.splitlines() if "slackbot/" in b)
        assert branch.startswith("slackbot/add-a-hello-function-") and branch.endswith("-1")
        log = git("log", "-1", "--format=%an <%ae>%n%B", branch, cwd=remote)
        assert log.startswith("slackbot <")
        assert "Co-authored-by: Ada <ada@example.com>" in log
        assert "def hello" in git("show", f"{branch}:greet.py", cwd=remote)
        assert "def hello" not in git("show", "main:greet.py", cwd=remote)

        model.script([shell("echo '# docs' >> README.md"), text("Updated the docs.")])
        await reply(slack, "now also update the docs", channel="C1", thread_ts=ts, user="U1")
        final2 = await wait_final(slack, "C1", ts, count=2)
        await press(slack, "task_push", "2", "U1", "C1", final2, ts)
        await slack.wait_for(lambda: "# docs" in git("show", f"{branch}:README.md", cwd=remote), timeout=30)
        assert len(git("log", "--format=%H", f"main..{branch}", cwd=remote).split()) == 2
        assert "# docs" not in git("show", "main:README.md", cwd=remote)


@pytest.mark.docker
async def test_override_by_name_url_and_branch(slack, model, admin_settings, tmp_path):
    app, other = make_remote(tmp_path, "app"), make_remote(tmp_path, "other")
    async with Bot(admin_settings, port=0):
        await command(slack, f"repo add app {app}")
        await command(slack, f"repo add other {other}")
        await command(slack, "repo default app")
        model.script_for("on-other", [shell("ls; git branch --show-current"), text("ok")])
        ts = await mention(slack, "repo=other branch=release-2 on-other")
        await wait_final(slack, "C1", ts)
        out = [m["content"] for m in model.requests_for("on-other")[-1].body["messages"] if m["role"] == "tool"][-1]
        assert "RELEASE" in out and "slackbot/on-other-" in out
        model.script_for("by-url", [shell("git log --oneline | wc -l"), text("ok")])
        refused = await mention(slack, f"repo={app} not-for-you")
        await slack.wait_for(lambda: any("Only admins can use that kind of repository URL" in block_text(m)
                                         for m in bot_messages(slack, "C1", refused)), timeout=15)
        ts = await mention(slack, f"repo={app} by-url", user="UADMIN")
        await wait_final(slack, "C1", ts)
        out = [m["content"] for m in model.requests_for("by-url")[-1].body["messages"] if m["role"] == "tool"][-1]
        assert output_of(out).strip() == "1"


@pytest.mark.docker
async def test_several_repos_and_no_default_asks_the_requester(slack, model, admin_settings, tmp_path):
    remotes = {n: make_remote(tmp_path, n) for n in ("app", "other", "third")}
    async with Bot(admin_settings, port=0):
        for name, remote in remotes.items():
            await command(slack, f"repo add {name} {remote}", channel="C2")
        await command(slack, "repo remove app", channel="C2")  # the default goes: two left, none default
        model.script_for("pick-one", [shell("ls"), text("ok")])
        ts = await mention(slack, "pick-one", channel="C2")
        chooser = await slack.wait_for(lambda: next((m for m in bot_messages(slack, "C2", ts)
                                                     if button(m, "repo_choose_0")), None), timeout=15)
        names = [b["text"]["text"] for b in chooser["blocks"][1]["elements"]]
        assert names == ["other", "third", "No repository"]
        assert model.requests == []  # it never guesses
        third = chooser["blocks"][1]["elements"][1]
        await press(slack, third["action_id"], third["value"], "USOMEONE", "C2", chooser, ts)
        await slack.wait_for(lambda: any("Only <@U1>" in e.get("text", "") for e in slack.ephemerals))
        await press(slack, third["action_id"], third["value"], "U1", "C2", chooser, ts)
        await wait_final(slack, "C2", ts)
        tool = [m["content"] for m in model.requests_for("pick-one")[-1].body["messages"] if m["role"] == "tool"]
        assert "greet.py" in tool[-1]
        await slack.wait_for(lambda: "works on `third`" in slack.message("C2", chooser["ts"])["text"], timeout=15)


async def test_clear_messages_for_bad_repositories(slack, model, admin_settings, tmp_path):
    remote = make_remote(tmp_path)
    async with Bot(admin_settings, port=0):
        answer = await command(slack, f"repo add gone {tmp_path / 'nope.git'}")
        assert "could not reach" in answer.lower()
        answer = await command(slack, f"repo add app {remote} no-such-branch")
        assert "no-such-branch" in answer
        await command(slack, f"repo add app {remote}")
        ts = await mention(slack, "branch=missing do it")
        final = await wait_final(slack, "C1", ts)
        assert "missing" in block_text(final) and "Failed" in block_text(final)
        ts = await mention(slack, "repo=unknown-name do it")
        await slack.wait_for(lambda: any("I do not know a repository named `unknown-name`" in block_text(m)
                                         for m in bot_messages(slack, "C1", ts)), timeout=15)


@pytest.mark.docker
async def test_push_rejected_is_explained(slack, model, admin_settings, tmp_path):
    remote = make_remote(tmp_path)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    async with Bot(admin_settings, port=0):
        await command(slack, f"repo add app {remote}")
        model.script([shell("echo x > x.txt"), text("done")])
        ts = await mention(slack, "change something")
        final = await wait_final(slack, "C1", ts)
        await press(slack, "task_push", "1", "U1", "C1", final, ts)
        await slack.wait_for(lambda: any("pushes are frozen today" in block_text(m)
                                         for m in bot_messages(slack, "C1", ts)), timeout=30)


@pytest.mark.docker
async def test_pull_request_with_fake_github_and_auto_push(slack, model, tmp_path):
    remote = make_remote(tmp_path)
    github = FakeGitHub()
    await github.start()
    github.add_repo("acme/app", default_branch="main")
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN",
                             GITHUB_TOKEN="ghp_test_token_123456", GITHUB_API_URL=github.api_url)
    try:
        async with Bot(settings, port=0):
            await command(slack, f"repo add app {remote} main github=acme/app")
            await command(slack, "repo set app auto_push=on")
            model.script([shell("echo fix > fix.txt"), text("Fixed the bug in the date parser.")])
            ts = await mention(slack, "fix the date parsing bug")
            final = await wait_final(slack, "C1", ts)
            assert "/acme/app/pull/1" in block_text(final)
            assert button(final, "task_push") is None
            pull = github.pulls[0]
            assert pull["base"] == "main" and pull["head"].startswith("slackbot/fix-the-date-parsing-bug")
            assert pull["title"] == "fix the date parsing bug"
            assert "Fixed the bug in the date parser." in pull["body"]
            assert "ghp_test_token_123456" not in json.dumps(slack.calls[-1].params)
    finally:
        await github.stop()


@pytest.mark.docker
async def test_setup_has_network_and_the_agent_only_loopback(slack, model, admin_settings, tmp_path):
    remote = make_remote(tmp_path)
    async with Bot(admin_settings, port=0) as bot:
        await command(slack, f"repo add app {remote}")
        answer = await command(slack, 'repo set app setup="ls /sys/class/net > .setup-net" network=setup')
        assert "network setup" in answer
        model.script([shell("cat .setup-net; echo ---; ls /sys/class/net"), text("checked")])
        ts = await mention(slack, "check the network")
        await wait_final(slack, "C1", ts)
        out = [m["content"] for m in model.requests[-1].body["messages"] if m["role"] == "tool"][-1]
        setup_net, agent_net = output_of(out).split("---")
        assert "eth0" in setup_net
        assert agent_net.split() == ["lo"]
        events = await bot.store.events(1)
        setup = [e for e in events if e["type"] == "item.completed" and "setup-net" in e["item"].get("command", "")]
        assert setup and setup[0]["item"]["exit_code"] == 0


@pytest.mark.docker
async def test_second_thread_fetches_the_mirror_instead_of_cloning(slack, model, admin_settings, tmp_path):
    from tests.fakes.git_http import GitHTTPServer

    server = GitHTTPServer(tmp_path / "served")
    await server.start()
    try:
        seed = make_remote(tmp_path, "seedsrc")
        bare = server.create_bare("app.git")
        git("push", "-q", str(bare), "main", "release-2", cwd=seed)
        async with Bot(admin_settings, port=0):
            await command(slack, f"repo add app {server.url('app.git')}")
            for n in range(2):
                model.script_for(f"thread-{n}", [shell("ls"), text("ok")])
                ts = await mention(slack, f"thread-{n}")
                await wait_final(slack, "C1", ts)
                tool = [m["content"] for m in model.requests_for(f"thread-{n}")[-1].body["messages"]
                        if m["role"] == "tool"]
                assert "greet.py" in tool[-1]
        assert server.clones("app.git") == 1  # the mirror was cloned once (when linked)
        assert server.advertisements("app.git") == 3  # linked, then one fetch per thread
    finally:
        await server.stop()
