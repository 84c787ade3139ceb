"""The model client: OpenAI Chat Completions (any compatible server) or the Responses API.

History is kept in Chat Completions message format; the Responses client converts it.
Transient errors (429, 5xx, timeouts, connection errors) are retried with backoff, and so are
malformed answers (a proxy's HTML page with status 200, JSON without choices or message).
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

    def __init__(self, *, name: str, api: str, base_url: str = "", api_key: str = "", retries: int = 4,
                 timeout_s: float = 300.0, backoff_s: float = 0.5, client: openai.AsyncOpenAI | None = None) -> None:
        """`client`: one shared by every model name (its connections too); made here when not given."""
        self.name = name
        self.api = api
        self.retries = retries
        self.backoff_s = backoff_s
        self.client = client or openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "none",
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
        except json.JSONDecodeError as exc:  # declared JSON, but is not
            raise malformed(f"not JSON ({exc})") from exc
        _expect_object(resp)
        try:
            choices = resp.choices
            if not isinstance(choices, list) or not choices:
                raise malformed("no choices")
            msg = choices[0].message
            if msg is None or not isinstance(msg.content, (str, type(None))):
                raise malformed("a choice without a message")
            calls = tuple(ToolCall(c.id, _text(c.function.name), c.function.arguments or "{}")
                          for c in (msg.tool_calls or []) if c.type == "function")
            usage = Usage()
            if resp.usage:
                details = resp.usage.prompt_tokens_details
                usage = Usage(resp.usage.prompt_tokens or 0, (details.cached_tokens or 0) if details else 0,
                              resp.usage.completion_tokens or 0)
            return ModelReply(msg.content or "", calls, usage)
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:  # fields of the wrong shape
            raise malformed(f"{exc.__class__.__name__}: {exc}") from exc

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
        except json.JSONDecodeError as exc:
            raise malformed(f"not JSON ({exc})") from exc
        _expect_object(resp)
        try:
            if not isinstance(resp.output, list):
                raise malformed("no output")
            text, calls = [], []
            for item in resp.output:
                if item.type == "message":
                    text += [_text(c.text) for c in item.content if getattr(c, "type", "") == "output_text"]
                elif item.type == "function_call":
                    calls.append(ToolCall(item.call_id, _text(item.name), item.arguments or "{}"))
            usage = Usage()
            if resp.usage:
                details = resp.usage.input_tokens_details
                usage = Usage(resp.usage.input_tokens or 0, (details.cached_tokens or 0) if details else 0,
                              resp.usage.output_tokens or 0)
            return ModelReply("".join(text), tuple(calls), usage)
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise malformed(f"{exc.__class__.__name__}: {exc}") from exc


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


def malformed(detail: str) -> ModelError:
    """An answer that is not what the API promises: often a proxy's error page, so worth a retry."""
    return ModelError(f"The model endpoint returned a malformed response: {detail[:300]}", retryable=True)


def _expect_object(resp: Any) -> None:
    """The SDK hands back a non-JSON body (an HTML page) or a JSON non-object as it is."""
    if isinstance(resp, (str, bytes)):
        body = resp.decode(errors="replace") if isinstance(resp, bytes) else resp
        raise malformed(f"not a JSON object: {' '.join(body.split())[:200]!r}")
    if isinstance(resp, (list, int, float, bool)) or resp is None:
        raise malformed(f"a JSON {type(resp).__name__}, not an object")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


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
