"""Host-side git: every call on a bounded executor, and workspaces trusted despite their owner.

A workspace is written by the sandbox, so its `.git/config`, hooks and `.gitattributes` are untrusted input.
Host git on a workspace therefore runs with command-scope overrides (environment config beats the
repository's own) that switch off everything that would run a program or reach outside the checkout.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import git

from .errors import GitFailed, RepoError

T = TypeVar("T")

# Workspaces belong to the sandbox user; host git would refuse them as "dubious ownership".
BASE_CONFIG = [("safe.directory", "*")]

# Things a sandbox could plant in the checkout's config to run programs on the host.
HARDENED_CONFIG = [
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("core.sshCommand", "ssh"),
    ("credential.helper", ""),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
]


def config_env(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Git configuration passed through the environment (command scope; never written to a file)."""
    env = {"GIT_CONFIG_COUNT": str(len(pairs)), "GIT_TERMINAL_PROMPT": "0"}
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


SAFE_ENV = config_env(BASE_CONFIG)


def open_repo(path: Path | str) -> git.Repo:
    """A workspace repository whose git commands cannot be steered by what the sandbox wrote into `.git`."""
    path = Path(path)
    dot_git = path / ".git"
    if dot_git.is_symlink() or not dot_git.is_dir():
        raise RepoError(f"The workspace {path.name} is not a plain git checkout any more.")
    repo = git.Repo(path)
    pairs = BASE_CONFIG + HARDENED_CONFIG + _filter_overrides(path)
    # GIT_DIR/GIT_WORK_TREE beat core.worktree, which could otherwise point `git add -A` at host files.
    repo.git.update_environment(GIT_DIR=str(dot_git), GIT_WORK_TREE=str(path), **config_env(pairs))
    return repo


def _filter_overrides(path: Path) -> list[tuple[str, str]]:
    """Empties every clean/smudge/process filter the checkout configures (`git add` would run them)."""
    try:
        listed = run_git(["config", "--name-only", "--get-regexp", r"^filter\."], cwd=path,
                         env={**SAFE_ENV, "GIT_DIR": str(path / ".git")}, timeout_s=30)
    except GitFailed:  # exit 1: no filters configured
        return []
    names = {line.split(".", 1)[1].rsplit(".", 1)[0] for line in listed.splitlines() if line.count(".") >= 2}
    pairs = []
    for name in sorted(names):
        pairs += [(f"filter.{name}.clean", ""), (f"filter.{name}.smudge", ""), (f"filter.{name}.process", ""),
                  (f"filter.{name}.required", "false")]
    return pairs


def run_git(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout_s: float = 300.0) -> str:
    """Runs git (blocking: call through GitRunner.run); returns stdout, raises GitFailed with stderr."""
    full_env = {**os.environ, "LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        done = subprocess.run(["git", *args], check=False, cwd=cwd, env=full_env, capture_output=True, text=True,
                              errors="replace", timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise GitFailed(args, -1, f"fatal: timed out after {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise GitFailed(args, done.returncode, done.stderr, done.stdout)
    return done.stdout


class GitRunner:
    def __init__(self, workers: int = 4, timeout_s: float = 300.0) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="git")
        self.timeout_s = timeout_s

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s):
            return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
