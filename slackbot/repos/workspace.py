"""One workspace per agent thread: a git checkout the sandbox mounts and the host commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import git

from ..protocol import FileStat
from .git_env import SAFE_ENV, GitRunner, open_repo

BOT_NAME = "slackbot"
BOT_EMAIL = "slackbot@users.noreply.localhost"


@dataclass(frozen=True)
class CommitResult:
    sha: str
    files: tuple[FileStat, ...]
    diff: str


class Workspaces:
    def __init__(self, root: Path, runner: GitRunner) -> None:
        self.root = root
        self.runner = runner

    def path_for(self, thread_id: int) -> Path:
        return self.root / f"thread-{thread_id}"

    async def ensure_scratch(self, thread_id: int) -> Path:
        """A fresh git repository (kept for the thread's later tasks)."""
        return await self.runner.run(self._ensure_scratch, self.path_for(thread_id))

    def _ensure_scratch(self, path: Path) -> Path:
        if (path / ".git").exists():
            return path
        path.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(path, initial_branch="main")
        repo.git.update_environment(**SAFE_ENV)
        _identity(repo)
        repo.git.commit("--allow-empty", "-m", "Start of the agent thread")
        return path

    async def head(self, path: Path) -> str:
        return await self.runner.run(lambda: open_repo(path).head.commit.hexsha)

    async def commit(self, path: Path, base: str, message: str, *, trailers: Sequence[str] = ()) -> CommitResult:
        """Commits whatever the agent changed, as the bot, with `trailers` (e.g. `Co-authored-by: …`)
        after a blank line; returns the changes since `base`."""
        return await self.runner.run(self._commit, path, base, message, tuple(trailers))

    async def diff(self, path: Path, base: str) -> str:
        """The committed change since `base`, as a patch."""
        return await self.runner.run(self._diff, path, base)

    def _commit(self, path: Path, base: str, message: str, trailers: tuple[str, ...]) -> CommitResult:
        repo = open_repo(path)
        repo.git.add("-A")
        if repo.git.status("--porcelain", "--ignore-submodules=all"):
            # The identity comes from the environment, which beats whatever the sandbox wrote into the config.
            repo.git.commit("--no-verify", "--cleanup=whitespace", *_message_args(message, trailers), env=BOT_ENV)
        head = repo.head.commit.hexsha
        return CommitResult(head, diff_stats(repo, base, head), _patch(repo, base, head))

    def _diff(self, path: Path, base: str) -> str:
        repo = open_repo(path)
        return _patch(repo, base, repo.head.commit.hexsha)


BOT_ENV = {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_AUTHOR_EMAIL": BOT_EMAIL,
           "GIT_COMMITTER_NAME": BOT_NAME, "GIT_COMMITTER_EMAIL": BOT_EMAIL}


def _message_args(message: str, trailers: Sequence[str]) -> list[str]:
    """Each -m is a paragraph: git puts the blank line between the message and the trailer block."""
    args = ["-m", message.strip() or "slackbot task"]
    lines = [t.strip() for t in trailers if t.strip()]
    return args + ["-m", "\n".join(lines)] if lines else args


def _patch(repo: git.Repo, base: str, head: str) -> str:
    if base == head:
        return ""
    # No external diff programs or textconv filters from the (sandbox-written) config.
    return repo.git.diff("--no-ext-diff", "--no-textconv", base, head)


def diff_stats(repo: git.Repo, base: str, head: str) -> tuple[FileStat, ...]:
    if base == head:
        return ()
    kinds = {"A": "add", "D": "delete"}
    status: dict[str, str] = {}
    for line in repo.git.diff("--no-ext-diff", "--no-textconv", "--name-status", "--no-renames", base,
                              head).splitlines():
        code, _, name = line.partition("\t")
        status[name] = kinds.get(code[:1], "update")
    stats = []
    for line in repo.git.diff("--no-ext-diff", "--no-textconv", "--numstat", "--no-renames", base,
                              head).splitlines():
        added, removed, name = line.split("\t", 2)
        stats.append(FileStat(name, int(added) if added.isdigit() else 0,
                              int(removed) if removed.isdigit() else 0, status.get(name, "update")))
    return tuple(stats)


def _identity(repo: git.Repo) -> None:
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", BOT_NAME)
        cfg.set_value("user", "email", BOT_EMAIL)
