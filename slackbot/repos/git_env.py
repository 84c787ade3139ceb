"""Host-side git: every call on a bounded executor, and workspaces trusted despite their owner."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

import git

T = TypeVar("T")

# Workspaces belong to the sandbox user; host git would refuse them as "dubious ownership".
SAFE_ENV = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
    "GIT_TERMINAL_PROMPT": "0",
}


def open_repo(path: Path | str) -> git.Repo:
    repo = git.Repo(path)
    repo.git.update_environment(**SAFE_ENV)
    return repo


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
