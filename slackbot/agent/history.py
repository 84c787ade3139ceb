"""Keeping a stored conversation valid and within the model's context budget."""

from __future__ import annotations

from typing import Any


def repair(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds a result for every tool call that has none (a task stopped or killed mid-command),
    since the API rejects a history with unanswered tool calls."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    for m in messages:
        if m.get("role") != "tool" and pending:
            out += [_interrupted(call_id) for call_id in pending]
            pending = []
        if m.get("role") == "tool":
            if m.get("tool_call_id") in pending:
                pending.remove(m["tool_call_id"])
            else:
                continue  # a result without its call: drop it
        out.append(m)
        if m.get("role") == "assistant":
            pending = [c["id"] for c in m.get("tool_calls") or []]
    out += [_interrupted(call_id) for call_id in pending]
    return out


def _interrupted(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "error: interrupted before it finished"}
