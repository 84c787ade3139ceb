"""slackbot processes for tests and benches: started as real subprocesses, stopped, waited on."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Awaitable, Callable


async def spawn(env: dict[str, str], *args: str, prefix: tuple[str, ...] = ()) -> asyncio.subprocess.Process:
    """`python -m slackbot ARGS` (after `prefix`, e.g. `unshare --pid --fork`), output discarded."""
    return await asyncio.create_subprocess_exec(*prefix, sys.executable, "-m", "slackbot", *args, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def stop_all(procs: list[asyncio.subprocess.Process], timeout: float = 60) -> None:
    for p in procs:
        if p.returncode is None:
            p.terminate()
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), timeout)
        except TimeoutError:
            p.kill()
            await p.wait()


async def until(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """The predicate's first true value, polled every 0.1 s; an AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")
