"""ScriptedSandbox: the Sandbox protocol without Docker, for the agent loop's tests.

Each command is answered by the first rule whose pattern it contains, else by `default`; a rule
may take time (`delay`), which is how a test makes a command outlast a deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from slackbot.protocol import ExecResult


@dataclass(frozen=True)
class Rule:
    pattern: str
    result: ExecResult
    delay: float = 0.0


class ScriptedSandbox:
    def __init__(self, default: ExecResult = ExecResult(0, "")) -> None:
        self.default = default
        self.rules: list[Rule] = []
        self.commands: list[str] = []
        self.closed = False

    def on(self, pattern: str, output: str = "", exit_code: int = 0, *, delay: float = 0.0,
           timed_out: bool = False) -> None:
        self.rules.append(Rule(pattern, ExecResult(exit_code, output, timed_out), delay))

    async def exec(self, command: str, *, timeout_s: float) -> ExecResult:
        self.commands.append(command)
        rule = next((r for r in self.rules if r.pattern in command), None)
        if rule is None:
            return self.default
        if rule.delay:
            await asyncio.sleep(min(rule.delay, timeout_s))
        return rule.result

    async def disk_usage(self) -> int:
        return 0

    async def close(self) -> None:
        self.closed = True
