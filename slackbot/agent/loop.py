"""The agent loop: query the model, run its tool calls in the sandbox, repeat; yield events.

It knows nothing of Slack, Docker or the database: the runner passes a Model, a Sandbox,
an inbox (replies people wrote meanwhile) and a recorder (persists each new message).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from ..protocol import (
    AgentMessage, CommandExecution, ErrorItem, Event, ItemCompleted, ItemStarted, Sandbox, Steer,
    TodoList, TurnCompleted, TurnFailed, TurnStarted, Usage, UserMessage,
)
from .model import Model, ModelError, ModelReply, ToolCall
from .tools import TOOLS, plan_entries, shell_result

Inbox = Callable[[], Awaitable[list[Steer]]]
Recorder = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class AgentLimits:
    max_steps: int = 50
    """Model calls per task."""
    command_timeout_s: float = 300.0
    """Wall time of one shell command; enforced inside the sandbox too."""
    output_limit_chars: int = 10_000
    """Command output shown to the model (head and tail kept)."""


def steer_message(steer: Steer, requester: str) -> dict[str, Any]:
    """A reply as the model reads it; others than the requester are named."""
    text = steer.text
    if steer.user and steer.user != requester:
        text = f"[message from {steer.user_name or steer.user}] {text}"
    return {"role": "user", "content": text}


async def _no_inbox() -> list[Steer]:
    return []


async def _no_record(_message: dict[str, Any]) -> None:
    return None


class Agent:
    def __init__(self, model: Model, sandbox: Sandbox, limits: AgentLimits, *,
                 inbox: Inbox = _no_inbox, record: Recorder = _no_record, requester: str = "") -> None:
        self.model = model
        self.sandbox = sandbox
        self.limits = limits
        self.inbox = inbox
        self.record = record
        self.requester = requester
        self.usage = Usage()
        self.context_tokens = 0  # the conversation's size as the API counted it at the last call
        self.answer = ""
        self.error = ""
        self.commands = 0
        self._ids = itertools.count()

    def _id(self) -> str:
        return f"item_{next(self._ids)}"

    async def run(self, messages: list[dict[str, Any]]) -> AsyncIterator[Event]:
        """Runs one turn on `messages` (history ending with the user's request), extending it."""
        yield TurnStarted()
        for _step in range(self.limits.max_steps):
            async for event in self._drain_inbox(messages):
                yield event
            try:
                reply = await self.model.complete(messages, TOOLS)
            except ModelError as exc:
                self.error = str(exc)
                yield ItemCompleted(ErrorItem(self._id(), self.error))
                yield TurnFailed(self.error)
                return
            self.usage += reply.usage
            self.context_tokens = reply.usage.input_tokens + reply.usage.output_tokens
            await self._append(messages, reply.as_message())
            if not reply.tool_calls:
                # A reply that arrived while the model was answering still deserves a turn.
                pending = [e async for e in self._drain_inbox(messages)]
                if pending:
                    for event in pending:
                        yield event
                    continue
                self.answer = reply.text
                yield ItemCompleted(AgentMessage(self._id(), reply.text))
                yield TurnCompleted(self.usage)
                return
            if reply.text:
                yield ItemCompleted(AgentMessage(self._id(), reply.text))
            for call in reply.tool_calls:
                async for event in self._call_tool(messages, call):
                    yield event
        self.error = f"Stopped after {self.limits.max_steps} model calls (SLACKBOT_MAX_STEPS)."
        yield ItemCompleted(ErrorItem(self._id(), self.error))
        yield TurnFailed(self.error)

    async def _append(self, messages: list[dict[str, Any]], message: dict[str, Any]) -> None:
        messages.append(message)
        await self.record(message)

    async def _drain_inbox(self, messages: list[dict[str, Any]]) -> AsyncIterator[Event]:
        for steer in await self.inbox():
            await self._append(messages, steer_message(steer, self.requester))
            yield ItemCompleted(UserMessage(self._id(), steer.text, steer.user))

    async def _call_tool(self, messages: list[dict[str, Any]], call: ToolCall) -> AsyncIterator[Event]:
        try:
            args = json.loads(call.arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            await self._tool_result(messages, call, f"error: could not parse the arguments: {exc}")
            return
        if call.name == "shell":
            async for event in self._shell(messages, call, args):
                yield event
        elif call.name == "update_plan":
            try:
                items = plan_entries(args)
            except ValueError as exc:
                await self._tool_result(messages, call, f"error: {exc}")
                return
            yield ItemCompleted(TodoList(self._id(), items))
            await self._tool_result(messages, call, "plan updated")
        else:
            await self._tool_result(messages, call, f"error: unknown tool {call.name!r}; use shell")

    async def _shell(self, messages: list[dict[str, Any]], call: ToolCall,
                     args: dict[str, Any]) -> AsyncIterator[Event]:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            await self._tool_result(messages, call, "error: `command` must be a non-empty string")
            return
        item_id = self._id()
        self.commands += 1
        yield ItemStarted(CommandExecution(item_id, command))
        timeout = self.limits.command_timeout_s
        result = await self.sandbox.exec(command, timeout_s=timeout)
        status = "completed" if result.exit_code == 0 else "failed"
        output = result.output
        if result.timed_out:
            output += f"\n[killed: timed out after {timeout:g}s]"
        yield ItemCompleted(CommandExecution(item_id, command, output[-20_000:], result.exit_code, status))
        await self._tool_result(messages, call, shell_result(result, timeout, self.limits.output_limit_chars))

    async def _tool_result(self, messages: list[dict[str, Any]], call: ToolCall, content: str) -> None:
        await self._append(messages, {"role": "tool", "tool_call_id": call.id, "content": content})


__all__ = ["Agent", "AgentLimits", "ModelReply"]
