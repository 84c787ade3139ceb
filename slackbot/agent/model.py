"""The model client: OpenAI Chat Completions (any compatible server) or the Responses API.

History is kept in Chat Completions message format; the Responses client converts it.
Two kinds of retry share one deadline per `complete()` call: HTTP errors (408, 409, 429, 5xx),
timeouts and lost connections are retried by the openai SDK, which honours Retry-After and adds
jitter; malformed answers (a proxy's HTML page with status 200, JSON without choices or message)
are retried here, since the SDK hands them back as answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from ..protocol import Usage

log = logging.getLogger(__name__)
# Where an attached image sits in a (stored) user message: the image itself is held by the run's
# model client and sent only in its requests, so no history row or transcript carries its bytes.
IMAGE_MARKER = "[image #{}]"
_IMAGE_RE = re.compile(r"\[image #([0-9a-f]{16})\]")


class ModelError(Exception):
    """`retryable`: worth trying again later (a rate limit, an outage), not a request the API refuses."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class MalformedReply(ModelError):
    """An answer that is not what the API promises: often a proxy's error page, so worth a retry."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"The model endpoint returned a malformed response: {detail[:300]}", retryable=True)


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


class _ImagesRefused(Exception):
    """The endpoint refused a request that carried images (auto: it goes again without them)."""


class OpenAIModel:
    """One client for both APIs; `api` is "chat" or "responses"."""

    def __init__(self, *, name: str, api: str, base_url: str = "", api_key: str = "", retries: int = 4,
                 timeout_s: float = 300.0, backoff_s: float = 0.5, client: openai.AsyncOpenAI | None = None,
                 effort: str = "", image_input: str = "auto", no_images: set[str] | None = None) -> None:
        """`client`: one shared by every model name (its connections too); made here when not given.
        `retries`: of HTTP errors (by the SDK) and of malformed answers (here), each.
        `timeout_s`: the deadline of one `complete()`, every retry and wait included.
        `effort`: the reasoning effort asked for ("" asks for none: the model's default).
        `image_input`: on, off, or auto (on until the endpoint refuses a request with images; the
        model's name is then added to `no_images`, a set the caller may share between clients)."""
        self.name = name
        self.image_input = image_input
        self.no_images = no_images if no_images is not None else set()
        self.images: dict[str, str] = {}  # marker token -> data URL, for this client's requests
        self.effort = effort
        self.api = api
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._owns_client = client is None
        shared = client or openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "none",
                                              timeout=timeout_s)
        # A copy on the same connections; only how often the SDK retries differs from the shared one.
        self.client = shared.with_options(max_retries=retries)

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        last: ModelError | None = None
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                for attempt in range(self.retries + 1):
                    try:
                        return await self._once(messages, tools)
                    except MalformedReply as exc:
                        if attempt == self.retries:
                            raise
                        last = exc
                    # Exponential, with jitter as the SDK's, so many tasks behind one proxy spread out.
                    delay = min(self.backoff_s * 2 ** attempt, 8.0) * (1 - 0.25 * random.random())
                    log.warning("model call failed (%s); retrying in %.1fs", last, delay)
                    await asyncio.sleep(delay)
        except TimeoutError:
            if not deadline.expired():
                raise
            tail = f" The last answer: {last}" if last else ""
            raise ModelError(f"The model endpoint gave no usable answer within {self.timeout_s:g}s "
                             f"(SLACKBOT_MODEL_TIMEOUT_S), retries included.{tail}", retryable=True) from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._owns_client:  # a shared client is closed by whoever made it
            await self.client.close()

    def add_image(self, token: str, data_url: str) -> bool:
        """An image this client's requests carry wherever a user message has IMAGE_MARKER with
        `token`; False when image input is off for this model."""
        if self.image_input == "off" or (self.image_input == "auto" and self.name in self.no_images):
            return False
        self.images[token] = data_url
        return True

    def _sends_images(self, messages: list[dict[str, Any]]) -> bool:
        return bool(self.images) and not (self.image_input == "auto" and self.name in self.no_images) and any(
            m.get("role") == "user" and isinstance(m.get("content"), str) and _IMAGE_RE.search(m["content"])
            for m in messages)

    async def _once(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        images = self._sends_images(messages)
        try:
            if self.api == "responses":
                return await self._responses(messages, tools, images)
            return await self._chat(messages, tools, images)
        except _ImagesRefused as exc:
            log.warning("model %s refused a request with images (%s); going on without image input",
                        self.name, exc.__cause__)
            self.no_images.add(self.name)
            return await self._once(messages, tools)

    def _refused(self, exc: openai.APIError, images: bool) -> Exception:
        if images and self.image_input == "auto" and isinstance(exc, openai.BadRequestError):
            return _ImagesRefused()
        return _model_error(exc)

    async def _chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                    images: bool = False) -> ModelReply:
        try:
            extra: dict[str, Any] = {"tools": tools} if tools else {}
            if self.effort:
                extra["reasoning_effort"] = self.effort
            # The history is already the API's JSON: posted as it is. (`create` would first walk every
            # message against the SDK's TypedDicts, which costs tens of milliseconds a call once a
            # task has a few dozen steps.)
            sent = with_images(messages, self.images, chat_part) if images else messages
            resp = await self.client.post("/chat/completions", cast_to=ChatCompletion,
                                          body={"model": self.name, "messages": sent, **extra})
        except openai.APIError as exc:
            raise self._refused(exc, images) from exc
        except json.JSONDecodeError as exc:  # declared JSON, but is not
            raise MalformedReply(f"not JSON ({exc})") from exc
        _expect_object(resp)
        try:
            choices = resp.choices
            if not isinstance(choices, list) or not choices:
                raise MalformedReply("no choices")
            msg = choices[0].message
            if msg is None or not isinstance(msg.content, (str, type(None))):
                raise MalformedReply("a choice without a message")
            calls = tuple(ToolCall(c.id, _text(c.function.name), _text(c.function.arguments or "{}"))
                          for c in (msg.tool_calls or []) if c.type == "function")
            usage = Usage()
            if resp.usage:
                details = resp.usage.prompt_tokens_details
                usage = Usage(resp.usage.prompt_tokens or 0, (details.cached_tokens or 0) if details else 0,
                              resp.usage.completion_tokens or 0)
            return ModelReply(msg.content or "", calls, usage)
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:  # fields of the wrong shape
            raise MalformedReply(f"{exc.__class__.__name__}: {exc}") from exc

    async def _responses(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                         images: bool = False) -> ModelReply:
        instructions, items = to_responses_input(with_images(messages, self.images, responses_part)
                                                 if images else messages)
        rtools = [{"type": "function", "name": t["function"]["name"],
                   "description": t["function"].get("description", ""),
                   "parameters": t["function"]["parameters"]} for t in tools]
        try:
            extra: dict[str, Any] = {"tools": rtools} if rtools else {}
            if instructions:
                extra["instructions"] = instructions
            if self.effort:
                extra["reasoning"] = {"effort": self.effort}
            resp = await self.client.post("/responses", cast_to=Response,
                                          body={"model": self.name, "input": items, "store": False, **extra})
        except openai.APIError as exc:
            raise self._refused(exc, images) from exc
        except json.JSONDecodeError as exc:
            raise MalformedReply(f"not JSON ({exc})") from exc
        _expect_object(resp)
        try:
            if not isinstance(resp.output, list):
                raise MalformedReply("no output")
            text, calls = [], []
            for item in resp.output:
                if item.type == "message":
                    text += [_text(getattr(c, "text", None)) for c in item.content
                             if getattr(c, "type", "") == "output_text"]
                elif item.type == "function_call":
                    calls.append(ToolCall(item.call_id, _text(item.name), _text(item.arguments or "{}")))
            usage = Usage()
            if resp.usage:
                details = resp.usage.input_tokens_details
                usage = Usage(resp.usage.input_tokens or 0, (details.cached_tokens or 0) if details else 0,
                              resp.usage.output_tokens or 0)
            return ModelReply("".join(text), tuple(calls), usage)
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise MalformedReply(f"{exc.__class__.__name__}: {exc}") from exc


def chat_part(text: str | None, image: str | None) -> dict[str, Any]:
    return {"type": "text", "text": text} if image is None else {"type": "image_url", "image_url": {"url": image}}


def responses_part(text: str | None, image: str | None) -> dict[str, Any]:
    return {"type": "input_text", "text": text} if image is None else {"type": "input_image", "image_url": image}


def with_images(messages: list[dict[str, Any]], images: dict[str, str], part: Any) -> list[dict[str, Any]]:
    """A copy of `messages` where each user message naming images (IMAGE_MARKER) is its text followed
    by those images (parts made by `part(text, image)`); markers this client holds no image for stay
    text (an earlier task's)."""
    out = []
    for m in messages:
        content = m.get("content")
        found = [images[t] for t in _IMAGE_RE.findall(content) if t in images] \
            if m.get("role") == "user" and isinstance(content, str) else []
        out.append({**m, "content": [part(content, None), *(part(None, i) for i in found)]} if found else m)
    return out


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


def _expect_object(resp: Any) -> None:
    """The SDK hands back a non-JSON body (an HTML page) or a JSON non-object as it is."""
    if isinstance(resp, (str, bytes)):
        body = resp.decode(errors="replace") if isinstance(resp, bytes) else resp
        raise MalformedReply(f"not a JSON object: {' '.join(body.split())[:200]!r}")
    if isinstance(resp, (list, int, float, bool)) or resp is None:
        raise MalformedReply(f"a JSON {type(resp).__name__}, not an object")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _model_error(exc: openai.APIError) -> ModelError:
    """What is left once the SDK's own retries are spent (or were not worth it: 400, 401, 404)."""
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
