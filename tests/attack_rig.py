"""Shared parts of the attack tests: host canaries, a linked repository, one scripted task at a time.

Every attack is a real attempt: a scripted model makes the agent run the attacker's commands in a
real sandbox, then the test checks the host (files that must not appear or change), the thread
(final message, files changed, patch) and the remotes.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.fakes import FakeSlack, ScriptedModel, shell, text
from tests.helpers import block_text, bot_messages, mention, reply, unfenced, wait_final
from tests.slack_actions import command as slash


def git(*args: str, cwd: Path | None = None) -> str:
    env = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com", "PATH": "/usr/bin:/bin", "HOME": str(cwd or "/tmp")}
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_remote(tmp: Path, name: str = "app", files: dict[str, str] | None = None) -> Path:
    seed = tmp / f"{name}-seed"
    git("init", "-q", "-b", "main", str(seed))
    for rel, content in (files or {"README.md": f"# {name}\n", "AGENTS.md": "Always run the tests.\n"}).items():
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_text(content)
    git("add", "-A", cwd=seed)
    git("commit", "-qm", f"{name}: initial", cwd=seed)
    remote = tmp / f"{name}.git"
    git("clone", "-q", "--bare", str(seed), str(remote))
    return remote


@dataclass
class Canaries:
    """Host paths an attack aims at: files that must never appear, and one that must not change."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = self.root / "keep.txt"
        self.keep.write_text("UNTOUCHED-CANARY\n")
        self.secret = self.root / "secret.txt"
        self.secret.write_text("TOPSECRET-CANARY\n")

    def marker(self, name: str) -> Path:
        return self.root / f"marker-{name}"

    def assert_untouched(self) -> None:
        made = sorted(p.name for p in self.root.iterdir() if p.name not in ("keep.txt", "secret.txt"))
        assert made == [], f"the host ran or wrote what the sandbox planted: {made}"
        assert self.keep.read_text() == "UNTOUCHED-CANARY\n"


async def command(slack: FakeSlack, text_: str, user: str = "UADMIN", channel: str = "C1") -> str:
    """`/agent …` as an admin (linking repositories)."""
    return await slash(slack, text_, user=user, channel=channel)


async def run_task(slack: FakeSlack, model: ScriptedModel, key: str, commands: list[str], *, user: str = "U1",
                   channel: str = "C1", prefix: str = "", thread_ts: str | None = None, thread_key: str = "",
                   count: int = 1, timeout: float = 120) -> tuple[str, dict]:
    """One task whose agent runs `commands`; returns the thread ts and its final reply. A follow-up
    (`thread_ts`) is scripted under the thread's first request, `thread_key`."""
    model.script_for(thread_key or key, [*(shell(c) for c in commands), text(f"{key} done")])
    if thread_ts is None:
        ts = await mention(slack, f"{prefix}{key}", channel=channel, user=user)
    else:
        ts = thread_ts
        await reply(slack, key, channel=channel, thread_ts=thread_ts, user=user)
    return ts, await wait_final(slack, channel, ts, count=count, timeout=timeout)


async def patch_of(slack: FakeSlack, task_id: int) -> str:
    """The task's `.patch`, uploaded after its final message."""
    name = f"task-{task_id}.patch"
    found = await slack.wait_for(lambda: [f for f in slack.files if f["name"] == name], timeout=30)
    return found[-1]["content"].decode(errors="replace")


def tool_outputs(model: ScriptedModel, key: str) -> list[str]:
    return [unfenced(m["content"]) for m in model.requests_for(key)[-1].body["messages"] if m["role"] == "tool"]


def thread_text(slack: FakeSlack, channel: str, ts: str) -> str:
    return "\n".join(block_text(m) for m in bot_messages(slack, channel, ts))


# ---- shared by the review's attack tests (test_attacks_review_*.py) ---------------------------------


@dataclass
class Running:
    """A real bot against its own fakes."""

    bot: object
    slack: FakeSlack
    model: ScriptedModel
    settings: object


@contextlib.asynccontextmanager
async def running_bot(data_dir: Path, **extra: object) -> AsyncIterator[Running]:
    """Fakes and a Bot of their own, for a test (or a module) whose settings differ from the others'."""
    from slackbot.app import Bot
    from tests.conftest import make_settings

    slack, model = FakeSlack(), ScriptedModel()
    slack.rate_limits = False  # not what these tests are about, and it would only slow them
    await slack.start()
    await model.start()
    try:
        settings = make_settings(data_dir, slack, model, **extra)
        async with Bot(settings, port=0) as bot:
            yield Running(bot, slack, model, settings)
    finally:
        await model.stop()
        await slack.stop()


def push_upstream(remote: Path, work: Path, files: dict[str, str], message: str) -> str:
    """A new commit on the remote's main (someone else's push); returns its sha."""
    if not work.exists():
        git("clone", "-q", str(remote), str(work))
    git("pull", "-q", "--ff-only", "origin", "main", cwd=work)
    for rel, content in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(content)
    git("add", "-A", cwd=work)
    git("commit", "-qm", message, cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


async def thread_task_ids(bot, channel: str, ts: str) -> list[int]:  # type: ignore[no-untyped-def]
    """The ids of a thread's tasks, oldest first (ids are global when tests share a bot)."""
    thread = await bot.store.thread_for(channel, ts)
    return sorted(t.id for t in await bot.store.thread_tasks(thread.id)) if thread else []
