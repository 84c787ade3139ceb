"""Script steps for ScriptedModel and the helpers that build them.

A script is a list of steps; each model request consumes one. A step may also be a callable
`(request_body) -> step` for answers that depend on what the app sent.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Union

_call_ids = itertools.count(1)


def new_call_id() -> str:
    return f"call_{next(_call_ids):06d}"


@dataclass
class ToolCall:
    name: str
    arguments: dict | str
    id: str = field(default_factory=new_call_id)

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Step:
    """One model answer: text and/or tool calls, an HTTP error, or a raw body (see `raw`)."""

    text: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    delay: float = 0.0
    error_status: int | None = None
    error_message: str = ""
    error_type: str = "server_error"
    retry_after: int | None = None
    usage: dict | None = None  # overrides: prompt_tokens / completion_tokens / cached_tokens
    raw_body: str | None = None  # sent as is, instead of an answer
    raw_content_type: str = "text/html"
    raw_status: int = 200


StepLike = Union[Step, Callable[[dict], "StepLike"]]


def text(content: str, *, delay: float = 0.0, usage: dict | None = None) -> Step:
    """A final assistant message without tool calls (ends the agent's turn)."""
    return Step(text=content, delay=delay, usage=usage)


def shell(command: str, *, delay: float = 0.0, text: str | None = None, usage: dict | None = None) -> Step:
    """One tool call to the `shell` function with {"command": command}."""
    return Step(text=text, calls=[ToolCall("shell", {"command": command})], delay=delay, usage=usage)


def tool_calls(
    calls: list[tuple[str, dict | str]], *, delay: float = 0.0, text: str | None = None, usage: dict | None = None
) -> Step:
    """Several tool calls in one answer, e.g. [("shell", {...}), ("update_plan", {...})]."""
    return Step(text=text, calls=[ToolCall(n, a) for n, a in calls], delay=delay, usage=usage)


def error(
    status: int = 500, message: str = "boom", *, delay: float = 0.0, type: str | None = None,
    retry_after: int | None = None,
) -> Step:
    """An HTTP error with an OpenAI-style body. Note the openai client retries 408/409/429/5xx itself."""
    kind = type or ("rate_limit_exceeded" if status == 429 else "invalid_request_error" if status < 500 else "server_error")
    return Step(error_status=status, error_message=message, error_type=kind, delay=delay, retry_after=retry_after)


def raw(body: str | dict | list | None, *, content_type: str = "", status: int = 200, delay: float = 0.0) -> Step:
    """A body sent as it is, e.g. a proxy's HTML page with status 200, or JSON of the wrong shape
    (a dict/list/None is sent as JSON: `raw({"choices": [{"message": None}]})`)."""
    if isinstance(body, str):
        return Step(raw_body=body, raw_content_type=content_type or "text/html", raw_status=status, delay=delay)
    return Step(raw_body=json.dumps(body), raw_content_type=content_type or "application/json", raw_status=status,
                delay=delay)


def resolve(step: StepLike, body: dict) -> Step:
    """Call dynamic steps until we have a concrete Step."""
    for _ in range(10):
        if isinstance(step, Step):
            return step
        step = step(body)
    raise TypeError("dynamic step did not produce a Step")


# ---- answer bodies -----------------------------------------------------------------------------


def chat_completion(step: Step, rid: str, model: str, created: int, usage: dict) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": step.text, "refusal": None}
    if step.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in step.calls
        ]
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if step.calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
        "system_fingerprint": "fake",
    }


def _pieces(s: str, n: int = 3) -> list[str]:
    """Split a string into up to n parts so clients must reassemble deltas."""
    if not s:
        return []
    size = max(1, -(-len(s) // n))
    return [s[i : i + size] for i in range(0, len(s), size)]


def chat_chunks(step: Step, rid: str, model: str, created: int, usage: dict | None) -> list[dict]:
    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    for piece in _pieces(step.text or ""):
        out.append(chunk({"content": piece}))
    for i, c in enumerate(step.calls):
        head = {"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}
        out.append(chunk({"tool_calls": [head]}))
        for piece in _pieces(c.arguments_json):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls" if step.calls else "stop"))
    if usage is not None:
        out.append({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [], "usage": usage})
    return out


def response_items(step: Step, rid: str) -> list[dict]:
    items: list[dict] = []
    if step.text is not None:
        items.append(
            {
                "type": "message",
                "id": f"msg_{rid}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": step.text, "annotations": []}],
            }
        )
    for c in step.calls:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{c.id}",
                "call_id": c.id,
                "name": c.name,
                "arguments": c.arguments_json,
                "status": "completed",
            }
        )
    return items


def response_object(step: Step, rid: str, model: str, created: int, usage: dict | None, status: str = "completed") -> dict:
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": response_items(step, rid) if status == "completed" else [],
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": None,
        "top_p": None,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
    }


def response_events(step: Step, rid: str, model: str, created: int, usage: dict) -> list[dict]:
    """The Responses API stream for one answer (without sequence numbers)."""
    events: list[dict] = [
        {"type": "response.created", "response": response_object(step, rid, model, created, None, "in_progress")},
        {"type": "response.in_progress", "response": response_object(step, rid, model, created, None, "in_progress")},
    ]
    for idx, item in enumerate(response_items(step, rid)):
        if item["type"] == "message":
            text_ = item["content"][0]["text"]
            events.append({"type": "response.output_item.added", "output_index": idx,
                           "item": {**item, "status": "in_progress", "content": []}})
            part = {"type": "output_text", "text": "", "annotations": []}
            base = {"item_id": item["id"], "output_index": idx, "content_index": 0}
            events.append({"type": "response.content_part.added", **base, "part": part})
            for piece in _pieces(text_):
                events.append({"type": "response.output_text.delta", **base, "delta": piece, "logprobs": []})
            events.append({"type": "response.output_text.done", **base, "text": text_, "logprobs": []})
            events.append({"type": "response.content_part.done", **base, "part": {**part, "text": text_}})
        else:
            events.append({"type": "response.output_item.added", "output_index": idx,
                           "item": {**item, "status": "in_progress", "arguments": ""}})
            base = {"item_id": item["id"], "output_index": idx}
            for piece in _pieces(item["arguments"]):
                events.append({"type": "response.function_call_arguments.delta", **base, "delta": piece})
            events.append({"type": "response.function_call_arguments.done", **base,
                           "arguments": item["arguments"], "name": item["name"]})
        events.append({"type": "response.output_item.done", "output_index": idx, "item": item})
    events.append({"type": "response.completed", "response": response_object(step, rid, model, created, usage)})
    for n, ev in enumerate(events):
        ev["sequence_number"] = n
    return events
