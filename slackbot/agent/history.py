"""Keeping a stored conversation valid and within the model's context budget."""

from __future__ import annotations

from dataclasses import dataclass
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


SUMMARY_PROMPT = (
    "You compact the history of a coding agent's conversation. Summarise the messages below for the "
    "agent itself: the requests, what was done (files changed, commands and their important results), "
    "decisions, open problems and anything the people asked for. Be specific and brief (at most ~400 words).")


@dataclass(frozen=True)
class Row:
    id: int
    message: dict[str, Any]
    tokens: int


@dataclass(frozen=True)
class Compaction:
    head: list[Row]
    middle: list[Row]  # to be replaced by the summary
    tail: list[Row]

    @property
    def upto(self) -> int:
        return self.middle[-1].id if self.middle else 0


def plan(rows: list[Row], budget: int, keep_head: int = 1, measured: int = 0) -> Compaction | None:
    """None when the history fits; otherwise the first messages and the latest turns kept verbatim
    (the tail starts at a user message, so no tool call is parted from its result).

    `measured` is the history's size in tokens as the API last counted it (0: unknown); the
    per-row estimates are scaled to it, since they only approximate the model's tokenizer."""
    estimated = sum(r.tokens for r in rows)
    size = measured or estimated
    if size <= budget or len(rows) <= keep_head + 1:
        return None
    head, rest = rows[:keep_head], rows[keep_head:]
    tail_budget = budget // 2 * estimated // max(size, 1)
    start, used = len(rest), 0
    for i in range(len(rest) - 1, -1, -1):
        used += rest[i].tokens
        if used > tail_budget:
            break
        if rest[i].message.get("role") == "user":
            start = i
    if start == len(rest):  # even the last turn is too big: keep the last user message onwards anyway
        start = max((i for i, r in enumerate(rest) if r.message.get("role") == "user"), default=len(rest) - 1)
    if start == 0:
        return None
    return Compaction(head, rest[:start], rest[start:])


def transcript_for_summary(previous: str, middle: list[Row]) -> str:
    parts = [f"Earlier summary:\n{previous}"] if previous else []
    for r in middle:
        m = r.message
        if m.get("role") == "tool":
            parts.append(f"[tool result] {str(m.get('content'))[:2000]}")
        elif m.get("tool_calls"):
            calls = "; ".join(c["function"]["arguments"][:500] for c in m["tool_calls"])
            parts.append(f"[assistant] {m.get('content') or ''} [calls] {calls}")
        else:
            parts.append(f"[{m.get('role')}] {str(m.get('content'))[:4000]}")
    return "\n".join(parts)


def summary_message(summary: str) -> dict[str, Any]:
    return {"role": "user", "content": f"[Summary of the earlier part of this thread]\n{summary}"}
