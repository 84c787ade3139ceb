"""ScriptedModel: an OpenAI-compatible server on 127.0.0.1 that answers from scripts.

Endpoints: POST /v1/chat/completions (stream or not), POST /v1/responses (stream or not),
GET /v1/models. Each request consumes the next step of a script (see model_steps.py).

Accepted request shapes:
- chat: {"model", "messages": [{"role", "content": str | [{"type": "text", "text"}], "tool_calls"?,
  "tool_call_id"?}], "tools"?, "stream"?, "stream_options": {"include_usage"}?}
- responses: {"model", "instructions"?, "input": str | [item], "tools"?, "stream"?} where an item is
  {"role": "user"|"system"|"developer"|"assistant", "content": str | [{"type": "input_text"|"output_text",
  "text"}]} (optionally with "type": "message"), {"type": "function_call", "call_id", "name", "arguments"},
  {"type": "function_call_output", "call_id", "output"}; other item types are ignored.
The marker of script_for() is looked for in the text of the FIRST user message (for responses, a
string `input` is that message).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from typing import Any, NamedTuple

from aiohttp import web

from tests.fakes.serve import serve

from . import model_steps as ms
from .model_steps import Step, StepLike, error, raw, shell, text, tool_calls  # noqa: F401  (re-exported)


class ModelRequest(NamedTuple):
    path: str
    body: dict
    time: float


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def first_user_text(body: dict) -> str:
    """Text of the first user message of a chat or responses request."""
    if "messages" in body:
        items = body.get("messages") or []
    else:
        items = body.get("input")
        if isinstance(items, str):
            return items
        items = items or []
    for item in items:
        if isinstance(item, dict) and item.get("role") == "user":
            return _content_text(item.get("content"))
    return ""


def _conversation(body: dict) -> list:
    """The part of the request that grows turn by turn (used for token figures)."""
    if "messages" in body:
        return list(body.get("messages") or [])
    items = body.get("input")
    convo = [{"instructions": body["instructions"]}] if body.get("instructions") else []
    return convo + ([items] if isinstance(items, str) else list(items or []))


class ScriptedModel:
    def __init__(self, model_ids: tuple[str, ...] = ("gpt-5.5",)) -> None:
        self.model_ids = list(model_ids)
        self.requests: list[ModelRequest] = []
        self.answered: list[float] = []  # when each non-streamed chat answer was ready
        self.fallback: StepLike = text("done")  # answer when a script is exhausted
        self._default: deque[StepLike] = deque()
        self._scripts: dict[str, deque[StepLike]] = {}
        self._last_convo: dict[str, list] = {}  # first user text -> previous conversation (for cache figures)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> "ScriptedModel":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "ScriptedModel":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ---- scripts ---------------------------------------------------------------------------

    def script(self, steps: list[StepLike]) -> None:
        """Set the default script (used by requests matching no marker)."""
        self._default = deque(steps)

    def script_for(self, marker: str, steps: list[StepLike]) -> None:
        """Requests whose first user message contains `marker` follow this script."""
        self._scripts[marker] = deque(steps)

    def remaining(self, marker: str | None = None) -> int:
        return len(self._default if marker is None else self._scripts.get(marker, ()))

    def requests_for(self, marker: str) -> list[ModelRequest]:
        return [r for r in self.requests if marker in first_user_text(r.body)]

    def _queue_for(self, body: dict) -> deque:
        first = first_user_text(body)
        for marker, queue in self._scripts.items():
            if marker in first:
                return queue
        return self._default

    def _next_step(self, body: dict) -> Step:
        queue = self._queue_for(body)
        step = queue.popleft() if queue else self.fallback
        return ms.resolve(step, body)

    async def wait_for_requests(self, n: int, timeout: float = 30) -> list[ModelRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} model requests, got {len(self.requests)}")
            await asyncio.sleep(0.02)
        return self.requests

    # ---- usage figures ---------------------------------------------------------------------

    def _token_figures(self, body: dict, step: Step) -> tuple[int, int, int]:
        convo = _conversation(body)
        prompt = max(1, len(json.dumps(convo)) // 4)
        # Cached: the prefix shared with this conversation's previous request, like prompt caching.
        key = first_user_text(body)
        prev = self._last_convo.get(key, [])
        shared = 0
        while shared < min(len(prev), len(convo)) and prev[shared] == convo[shared]:
            shared += 1
        self._last_convo[key] = convo
        cached = len(json.dumps(convo[:shared])) // 4 if shared else 0
        out = json.dumps({"t": step.text, "c": [(c.name, c.arguments_json) for c in step.calls]})
        completion = max(1, len(out) // 4)
        u = step.usage or {}
        return (
            u.get("prompt_tokens", prompt),
            u.get("completion_tokens", completion),
            u.get("cached_tokens", min(cached, prompt)),
        )

    def _chat_usage(self, body: dict, step: Step) -> dict:
        p, c, cached = self._token_figures(body, step)
        return {
            "prompt_tokens": p,
            "completion_tokens": c,
            "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def _responses_usage(self, body: dict, step: Step) -> dict:
        p, c, cached = self._token_figures(body, step)
        return {
            "input_tokens": p,
            "output_tokens": c,
            "total_tokens": p + c,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens_details": {"reasoning_tokens": 0},
        }

    # ---- handlers --------------------------------------------------------------------------

    async def _begin(self, request: web.Request) -> tuple[dict, Step, web.Response | None]:
        arrived = time.monotonic()
        try:
            body = await request.json()
        except ValueError:
            return {}, text(""), _error_response(error(400, "body is not JSON"))
        self.requests.append(ModelRequest(request.path, body, arrived))
        step = self._next_step(body)
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.error_status is not None:
            return body, step, _error_response(step)
        if step.raw_body is not None:
            return body, step, web.Response(text=step.raw_body, status=step.raw_status,
                                            content_type=step.raw_content_type)
        return body, step, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, step, failed = await self._begin(request)
        if failed is not None:
            return failed
        rid, created = f"chatcmpl-{next(self._ids)}", int(time.time())
        model = body.get("model") or self.model_ids[0]
        usage = self._chat_usage(body, step)
        if not body.get("stream"):
            answer = web.json_response(ms.chat_completion(step, rid, model, created, usage))
            self.answered.append(time.monotonic())  # (the model's own time ends here)
            return answer
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = ms.chat_chunks(step, rid, model, created, usage if include else None)
        resp = await _sse_start(request)
        for chunk in chunks:
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body, step, failed = await self._begin(request)
        if failed is not None:
            return failed
        rid, created = f"resp_{next(self._ids):06d}", int(time.time())
        model = body.get("model") or self.model_ids[0]
        usage = self._responses_usage(body, step)
        if not body.get("stream"):
            return web.json_response(ms.response_object(step, rid, model, created, usage))
        resp = await _sse_start(request)
        for event in ms.response_events(step, rid, model, created, usage):
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await resp.write_eof()
        return resp

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.model_ids]
        return web.json_response({"object": "list", "data": data})


async def _sse_start(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    return resp


def _error_response(step: Step) -> web.Response:
    body = {"error": {"message": step.error_message, "type": step.error_type, "param": None, "code": None}}
    headers = {"Retry-After": str(step.retry_after)} if step.retry_after is not None else None
    return web.json_response(body, status=step.error_status or 500, headers=headers)
