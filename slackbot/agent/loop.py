"""The agent loop: query the model, run its tool calls in the sandbox, repeat; emit events, return a result.

It knows nothing of Slack, Docker or the database: the runner passes a Model, a Sandbox,
an inbox (replies people wrote meanwhile) and a recorder (persists each new message).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal

from ..protocol import (
    AgentMessage, CommandExecution, ErrorItem, Event, ItemCompleted, ItemStarted, Sandbox, Steer,
    TaskProgress, TodoList, TurnCompleted, TurnFailed, TurnStarted, Usage, UserMessage,
)
from .model import Model, ModelError, ModelReply, ToolCall
from .untrusted import fence, label
from .tools import AUTOMATION_TOOLS, TOOLS, load_skill, plan_entries, shell_result

Emit = Callable[[Event], Awaitable[None]]
Inbox = Callable[[], Awaitable[list[Steer]]]
Recorder = Callable[[dict[str, Any]], Awaitable[None]]
SkillBody = Callable[[str], "str | None"]


@dataclass(frozen=True)
class AgentLimits:
    max_steps: int = 50
    """Model calls per task."""
    command_timeout_s: float = 300.0
    """Wall time of one shell command; enforced inside the sandbox too."""
    output_limit_chars: int = 10_000
    """Command output shown to the model (head and tail kept)."""


@dataclass(frozen=True)
class AgentResult:
    """What a turn came to.

    `turn_end` (TurnCompleted or TurnFailed) is not emitted: the caller sends it once it has added
    what belongs inside the turn (the file changes), as in codex's stream."""

    answer: str
    error: str
    usage: Usage  # the task's tokens, those passed to `run` included
    context_tokens: int  # the conversation's size as the API counted it at the last call (0: no call)
    commands: int
    turn_end: TurnCompleted | TurnFailed | None = None  # None only from `so_far()`
    nothing_to_report: bool = False  # an automation run said so with the `report` tool


def steer_message(steer: Steer, requester: str) -> dict[str, Any]:
    """A reply as the model reads it; others than the requester are named."""
    text = steer.text
    if steer.user and steer.user != requester:
        name = label(steer.user_name or steer.user, 60)
        who = f'"{name}" ({label(steer.user, 20)})' if steer.user_name else name
        text = fence(text, f"a message in the thread from {who}, who did not request this task")
    return {"role": "user", "content": text}


async def _no_inbox() -> list[Steer]:
    return []


async def _no_record(_message: dict[str, Any]) -> None:
    return None


class Agent:
    def __init__(self, model: Model, sandbox: Sandbox, limits: AgentLimits, *,
                 inbox: Inbox = _no_inbox, record: Recorder = _no_record, requester: str = "",
                 automation: bool = False, skills: tuple[str, ...] = (),
                 skill_body: SkillBody | None = None, inbox_every_s: float = 0.0) -> None:
        """`automation`: the run may end with the `report` tool (and say it found nothing).
        `skills`: names the `load_skill` tool offers, their instructions from `skill_body`.
        `inbox_every_s`: between steps the inbox is looked at no more often (a reply waits that long
        at most); before the turn ends it always is."""
        self.model = model
        self.automation = automation
        self.tools = list(AUTOMATION_TOOLS if automation else TOOLS)
        self.skill_body = skill_body
        if skills and skill_body is not None:
            self.tools.append(load_skill(skills))
        self.sandbox = sandbox
        self.limits = limits
        self.inbox = inbox
        self.inbox_every_s = inbox_every_s
        self._inbox_at = -inbox_every_s
        self.record = record
        self.requester = requester
        # The running turn's tally, kept here only so that `so_far()` can tell a run cut short.
        self._usage = Usage()
        self._context_tokens = 0
        self._commands = 0
        self._ids = itertools.count()

    def _id(self) -> str:
        return f"item_{next(self._ids)}"

    async def run(self, messages: list[dict[str, Any]], emit: Emit, *, usage: Usage = Usage()) -> AgentResult:
        """Runs one turn on `messages` (history ending with the user's request), extending it, and
        sends each event to `emit` in order. `usage`: tokens this task spent before (a summary)."""
        self._usage, self._context_tokens, self._commands = usage, 0, 0
        await emit(TurnStarted())
        for _step in range(self.limits.max_steps):
            if time.monotonic() - self._inbox_at >= self.inbox_every_s:
                await self._drain_inbox(messages, emit)
            try:
                reply = await self.model.complete(messages, self.tools)
            except ModelError as exc:
                return await self._fail(str(exc), emit)
            self._usage += reply.usage
            self._context_tokens = reply.usage.input_tokens + reply.usage.output_tokens
            await self._append(messages, reply.as_message())
            if not reply.tool_calls:
                # A reply that arrived while the model was answering still deserves a turn.
                if await self._drain_inbox(messages, emit):
                    continue
                await emit(ItemCompleted(AgentMessage(self._id(), reply.text)))
                return self._result(reply.text, "", TurnCompleted(self._usage))
            if reply.text:
                await emit(ItemCompleted(AgentMessage(self._id(), reply.text)))
            report: tuple[str, bool] | None = None
            for call in reply.tool_calls:
                if report is not None:  # every call needs its answer, or the history is invalid
                    await self._tool_result(messages, call, "skipped: the run was reported as ended")
                    continue
                report = await self._call_tool(messages, call, emit)
            if report is not None:
                await emit(ItemCompleted(AgentMessage(self._id(), report[0])))
                return self._result(report[0], "", TurnCompleted(self._usage), nothing=report[1])
        return await self._fail(f"Stopped after {self.limits.max_steps} model calls (SLACKBOT_MAX_STEPS).", emit)

    def so_far(self) -> AgentResult:
        """What the current run had spent: for a caller whose run was cut short (timed out, stopped)
        and so returned nothing."""
        return self._result("", "", None)

    def _result(self, answer: str, error: str, end: TurnCompleted | TurnFailed | None, *,
                nothing: bool = False) -> AgentResult:
        return AgentResult(answer, error, self._usage, self._context_tokens, self._commands, end, nothing)

    async def _fail(self, error: str, emit: Emit) -> AgentResult:
        await emit(ItemCompleted(ErrorItem(self._id(), error)))
        return self._result("", error, TurnFailed(error))

    async def _append(self, messages: list[dict[str, Any]], message: dict[str, Any]) -> None:
        messages.append(message)
        await self.record(message)

    async def _drain_inbox(self, messages: list[dict[str, Any]], emit: Emit) -> int:
        """Appends the replies people wrote meanwhile; returns how many there were."""
        self._inbox_at = time.monotonic()
        steers = await self.inbox()
        for steer in steers:
            await self._append(messages, steer_message(steer, self.requester))
            await emit(ItemCompleted(UserMessage(self._id(), steer.text, steer.user)))
        return len(steers)

    async def _call_tool(self, messages: list[dict[str, Any]], call: ToolCall,
                         emit: Emit) -> tuple[str, bool] | None:
        """Runs one tool call; the `report` tool's (message, nothing to report) ends the turn."""
        try:
            args = json.loads(call.arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except (ValueError, RecursionError) as exc:  # the model's text: any shape, any depth
            await self._tool_result(messages, call, f"error: could not parse the arguments: {exc}")
            return None
        if call.name == "report" and self.automation:
            message, nothing = args.get("message"), args.get("nothing_to_report")
            if not isinstance(message, str) or not isinstance(nothing, bool):
                await self._tool_result(messages, call, "error: `message` must be a string and "
                                                        "`nothing_to_report` true or false")
                return None
            await self._tool_result(messages, call, "reported")
            return message, nothing
        if call.name == "shell":
            await self._shell(messages, call, args, emit)
        elif call.name == "load_skill" and self.skill_body is not None:
            name = args.get("name")
            body = self.skill_body(name) if isinstance(name, str) else None
            if body is None:
                await self._tool_result(messages, call, f"error: no skill named {str(name)[:80]!r} here")
                return None
            await emit(TaskProgress(f"Using the skill `{name}`"))
            await self._tool_result(messages, call, body)
        elif call.name == "update_plan":
            try:
                items = plan_entries(args)
            except ValueError as exc:
                await self._tool_result(messages, call, f"error: {exc}")
                return None
            await emit(ItemCompleted(TodoList(self._id(), items)))
            await self._tool_result(messages, call, "plan updated")
        else:
            await self._tool_result(messages, call, f"error: unknown tool {call.name!r}; use shell")
        return None

    async def _shell(self, messages: list[dict[str, Any]], call: ToolCall, args: dict[str, Any],
                     emit: Emit) -> None:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            await self._tool_result(messages, call, "error: `command` must be a non-empty string")
            return
        item_id = self._id()
        self._commands += 1
        await emit(ItemStarted(CommandExecution(item_id, command)))
        timeout = self.limits.command_timeout_s
        result = await self.sandbox.exec(command, timeout_s=timeout)
        status: Literal["completed", "failed"] = "completed" if result.exit_code == 0 else "failed"
        output = result.output
        if result.timed_out:
            output += f"\n[killed: timed out after {timeout:g}s]"
        await emit(ItemCompleted(CommandExecution(item_id, command, output[-20_000:], result.exit_code, status)))
        await self._tool_result(messages, call, shell_result(result, timeout, self.limits.output_limit_chars))

    async def _tool_result(self, messages: list[dict[str, Any]], call: ToolCall, content: str) -> None:
        await self._append(messages, {"role": "tool", "tool_call_id": call.id, "content": content})


__all__ = ["Agent", "AgentLimits", "AgentResult", "Emit", "ModelReply"]
