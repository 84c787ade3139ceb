"""Pure builders for Slack's streamed messages (docs/slack.md): task events in, stream chunks out.

A streamed task shows one plan block (`task_display_mode=plan`): the agent's plan from
`update_plan` as task steps (`plan-<n>`), each command as a step of its own (`cmd-<item id>`,
its first line, then its exit code), the answer as streamed Markdown at the end, and the final
blocks (files changed, Push, Transcript) on the stop call."""

from __future__ import annotations

from typing import Any

from ..protocol import CommandExecution, Event, ItemCompleted, ItemStarted, TodoEntry, TodoList
from .blocks import ANSWER_INLINE_LIMIT, Blocks, final_blocks, short

Chunk = dict[str, Any]
TITLE_LIMIT = 150  # Slack documents no limit for a task's title: kept short (not confirmed)
FIELD_LIMIT = 256  # details/output: 256 characters (not confirmed in Slack's reference, see docs/slack.md)
MARKDOWN_LIMIT = 12_000  # markdown_text, documented


def plan_title(task_id: int, *, continued: bool = False) -> Chunk:
    return {"type": "plan_update", "title": f"Task #{task_id}" + (" (continued)" if continued else "")}


def task(task_id: str, title: str, status: str, *, details: str = "", output: str = "") -> Chunk:
    chunk: Chunk = {"type": "task_update", "id": task_id, "title": short(title, TITLE_LIMIT) or "…",
                    "status": status}
    if details:
        chunk["details"] = short(details, FIELD_LIMIT)
    if output:
        chunk["output"] = output[:FIELD_LIMIT]
    return chunk


def plan_chunks(items: tuple[TodoEntry, ...]) -> list[Chunk]:
    """The plan's steps: done ones complete, the first open one in progress, the rest pending (the
    agent's plan says which are done; the step being worked on is the first that is not)."""
    out, current = [], True
    for n, item in enumerate(items):
        if item.completed:
            status = "complete"
        elif current:
            status, current = "in_progress", False
        else:
            status = "pending"
        out.append(task(f"plan-{n}", item.text, status))
    return out


def command_chunk(item: CommandExecution) -> Chunk:
    if item.exit_code is None:
        return task(f"cmd-{item.id}", item.command, "in_progress")
    status = "complete" if item.exit_code == 0 else "error"
    return task(f"cmd-{item.id}", item.command, status, output=f"exit {item.exit_code}")


def event_chunks(event: Event) -> list[Chunk]:
    """What an event adds to the stream (nothing for most: the status message's phases, the model's
    interim words and steering notes are not streamed; the answer comes at the end)."""
    if isinstance(event, ItemStarted) and isinstance(event.item, CommandExecution):
        return [command_chunk(event.item)]
    if isinstance(event, ItemCompleted):
        if isinstance(event.item, CommandExecution):
            return [command_chunk(event.item)]
        if isinstance(event.item, TodoList):
            return plan_chunks(event.item.items)
    return []


def merge(pending: list[Chunk], new: list[Chunk]) -> list[Chunk]:
    """Coalesces chunks waiting for one append: a newer update of a step (or of the plan's title)
    replaces the waiting one in place; Markdown is joined."""
    out = list(pending)
    for chunk in new:
        kind = chunk.get("type")
        if kind == "task_update":
            at = next((i for i, c in enumerate(out) if c.get("type") == kind and c.get("id") == chunk["id"]), None)
        elif kind == "plan_update":
            at = next((i for i, c in enumerate(out) if c.get("type") == kind), None)
        elif kind == "markdown_text" and out and out[-1].get("type") == kind \
                and len(out[-1]["text"]) + len(chunk["text"]) <= MARKDOWN_LIMIT:
            out[-1] = {**out[-1], "text": out[-1]["text"] + chunk["text"]}
            continue
        else:
            at = None
        if at is None:
            out.append(chunk)
        else:
            out[at] = chunk
    return out


def settle(steps: dict[str, Chunk], ok: bool) -> list[Chunk]:
    """At the end: steps still in progress end complete when the task succeeded, else as errors."""
    return [{**c, "status": "complete" if ok else "error"} for c in steps.values() if c.get("status") == "in_progress"]


def answer_chunks(answer: str) -> tuple[list[Chunk], bool]:
    """The answer as streamed Markdown (Slack renders Markdown in markdown_text, so it goes as the
    model wrote it), and whether it was too long and goes into a file as well (as in classic)."""
    body = answer.strip()
    attach = len(body) > ANSWER_INLINE_LIMIT
    if attach:
        body = body[:ANSWER_INLINE_LIMIT] + "\n…"
    return ([{"type": "markdown_text", "text": body[:MARKDOWN_LIMIT]}] if body else []), attach


def stop_blocks(attach: bool, **final: Any) -> Blocks:
    """The classic final reply's blocks without the answer (it was streamed above them): the failure
    or stop line, files changed, the note, usage, and the Push and Transcript buttons."""
    _text, blocks, _attach = final_blocks(answer="", **final)
    if attach:
        blocks.insert(0, {"type": "context", "elements": [
            {"type": "mrkdwn", "text": "The full answer is attached as a file."}]})
    return blocks
