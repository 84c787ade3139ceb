"""The model client: OpenAI Chat Completions (any compatible server) or the Responses API.

History is kept in Chat Completions message format; the Responses client converts it.
Transient errors (429, 5xx, timeouts, connection errors) are retried with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

from ..protocol import Usage

log = logging.getLogger(__name__)


class ModelError(Exception):
    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ModelReply:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)

    def as_message(self) -> dict[str, Any]:
        """The assistant message to append to the (chat-format) history."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls]
        return message


class Model(Protocol):
    name: str

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply: ...


class OpenAIModel:
    """One client for both APIs; `api` is "chat" or "responses"."""

    def __init__(self, *, name: str, api: str, base_url: str, api_key: str,
                 retries: int = 4, timeout_s: float = 300.0, backoff_s: float = 0.5) -> None:
        self.name = name
        self.api = api
        self.retries = retries
        self.backoff_s = backoff_s
        self.client = openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "none",
                                         max_retries=0, timeout=timeout_s)

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        for attempt in range(self.retries + 1):
            try:
                if self.api == "responses":
                    return await self._responses(messages, tools)
                return await self._chat(messages, tools)
            except ModelError as exc:
                if not exc.retryable or attempt == self.retries:
                    raise
                delay = min(self.backoff_s * 2 ** attempt, 20.0)
                log.warning("model call failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.client.close()

    async def _chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        try:
            extra = {"tools": tools} if tools else {}
            resp = await self.client.chat.completions.create(model=self.name, messages=messages, **extra)
        except openai.APIError as exc:
            raise _model_error(exc) from exc
        if not resp.choices:
            raise ModelError("The model returned no choices.", retryable=True)
        msg = resp.choices[0].message
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments or "{}")
                      for c in (msg.tool_calls or []) if c.type == "function")
        usage = Usage()
        if resp.usage:
            details = resp.usage.prompt_tokens_details
            usage = Usage(resp.usage.prompt_tokens or 0, (details.cached_tokens or 0) if details else 0,
                          resp.usage.completion_tokens or 0)
        return ModelReply(msg.content or "", calls, usage)

    async def _responses(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        instructions, items = to_responses_input(messages)
        rtools = [{"type": "function", "name": t["function"]["name"],
                   "description": t["function"].get("description", ""),
                   "parameters": t["function"]["parameters"]} for t in tools]
        try:
            extra: dict[str, Any] = {"tools": rtools} if rtools else {}
            if instructions:
                extra["instructions"] = instructions
            resp = await self.client.responses.create(model=self.name, input=items, store=False, **extra)
        except openai.APIError as exc:
            raise _model_error(exc) from exc
        text, calls = [], []
        for item in resp.output or []:
            if item.type == "message":
                text += [c.text for c in item.content if getattr(c, "type", "") == "output_text"]
            elif item.type == "function_call":
                calls.append(ToolCall(item.call_id, item.name, item.arguments or "{}"))
        usage = Usage()
        if resp.usage:
            details = resp.usage.input_tokens_details
            usage = Usage(resp.usage.input_tokens or 0, (details.cached_tokens or 0) if details else 0,
                          resp.usage.output_tokens or 0)
        return ModelReply("".join(text), tuple(calls), usage)


def to_responses_input(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Chat-format history → (instructions, Responses API input items)."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            instructions.append(m["content"])
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
        elif role == "assistant":
            if m.get("content"):
                items.append({"role": "assistant", "content": m["content"]})
            for c in m.get("tool_calls") or []:
                items.append({"type": "function_call", "call_id": c["id"], "name": c["function"]["name"],
                              "arguments": c["function"]["arguments"]})
        else:
            items.append({"role": "user", "content": m["content"]})
    return "\n\n".join(instructions), items


def _model_error(exc: openai.APIError) -> ModelError:
    if isinstance(exc, openai.APITimeoutError):
        return ModelError("The model endpoint timed out.", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(f"The model endpoint is unreachable: {exc}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        detail = _error_detail(exc)
        retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
        return ModelError(f"The model endpoint answered {exc.status_code}: {detail}", retryable=retryable)
    return ModelError(f"Model error: {exc}", retryable=False)


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    try:
        return json.dumps(body)[:300] if body else exc.message[:300]
    except (TypeError, ValueError):
        return str(exc)[:300]
