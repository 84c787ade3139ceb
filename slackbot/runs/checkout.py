"""The agent's warm sandbox while a thread's first checkout is still being made in it.

The model's first call needs no workspace, so it goes out while the checkout runs: a command waits
for the checkout, and a failed checkout fails the task with its own message (the command never runs).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ..protocol import ExecResult
from ..store import AgentThread


class AfterCheckout:
    def __init__(self, sandbox: Any, checkout: Awaitable[AgentThread], done: Callable[[AgentThread], None]) -> None:
        self.sandbox = sandbox
        self._done: Callable[[AgentThread], None] | None = done
        self._checkout: asyncio.Task[AgentThread] = asyncio.ensure_future(checkout)

    async def ready(self) -> None:
        """Waits for the checkout (raising its error); the thread as it left it is handed on once."""
        thread = await asyncio.shield(self._checkout)
        if self._done is not None:
            done, self._done = self._done, None
            done(thread)

    async def exec(self, command: str, *, timeout_s: float, env: dict[str, str] | None = None) -> ExecResult:
        await self.ready()
        return await self.sandbox.exec(command, timeout_s=timeout_s, env=env)

    async def disk_usage(self) -> int:
        await self.ready()
        return int(await self.sandbox.disk_usage())

    async def close(self) -> None:
        if not self._checkout.done():
            self._checkout.cancel()
        await asyncio.gather(self._checkout, return_exceptions=True)
        if not self._checkout.cancelled() and self._checkout.exception() is None:
            await self.ready()  # made after all: the run's thread must say so
        await self.sandbox.close()

    def __getattr__(self, name: str) -> Any:  # container_id, container_name, ...
        return getattr(self.sandbox, name)
