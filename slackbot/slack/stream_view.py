"""Pure builders for Slack's streamed messages (docs/slack.md): task events in, stream chunks out.

A streamed task shows one plan block (`task_display_mode=plan`): the agent's plan from
`update_plan` as task steps (`plan-<n>`), each command as a step of its own (`cmd-<item id>`,
its first line, then its exit code), the answer as streamed Markdown at the end, and the final
blocks (files changed, Push, Transcript) on the stop call."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ..protocol import CommandExecution, Event, ItemCompleted, ItemStarted, TodoEntry, TodoList
from .blocks import ANSWER_INLINE_LIMIT, Blocks, final_blocks, short

Chunk = dict[str, Any]
TITLE_LIMIT = 150  # Slack documents no limit for a task's title: kept short (not confirmed)
FIELD_LIMIT = 256  # details/output: 256 characters (not confirmed in Slack's reference, see docs/slack.md)
MARKDOWN_LIMIT = 12_000  # markdown_text, documented
# What the model, a repository or a command writes reaches streamed Markdown and step titles. Slack's
# own markup there (`<!channel>`, `<@U…>`, `<#C…>`, `<url|label>`, also written as entities) is not
# documented to be inert, so it never arrives whole: a word joiner (invisible) follows its `<`.
# (Code keeps `<!DOCTYPE`, `<!--`, `<![CDATA[` and `<std::string>` whole: none is Slack markup.)
_MARKUP = re.compile(r"(<|&lt;|&#0*60;|&#x0*3c;)(?=\s*(?:!(?!--|\[CDATA\[|doctype\b)|[@#]|[a-z][a-z0-9+.-]*:(?!:)))",
                     re.I)
JOINER = "\u2060"
# Control and bidirectional-override characters (tabs and newlines stay in Markdown).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CODE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]+`)", re.S)
_LINK = re.compile(r"(!?\[([^\]\n]{0,500})\]\(\s*<?([a-z][a-z0-9+.-]*:[^\s)>]*)>?(?:\s+\"[^\"\n]*\")?\s*\))", re.I)


def neutral(text: str) -> str:
    """Untrusted text for a stream: no Slack markup, no control characters."""
    return _MARKUP.sub(lambda m: m.group(1) + JOINER, _CONTROL.sub("", text))


def neutral_markdown(text: str) -> str:
    """`neutral`, and a link whose label is not its own address shows the real host after it (as
    the classic message does, mrkdwn.py), outside code."""
    parts = _CODE.split(text)
    return neutral("".join(p if i % 2 else _LINK.sub(_shown, p) for i, p in enumerate(parts)))


def _shown(m: re.Match[str]) -> str:
    whole, label, url = m.group(1), m.group(2).strip(), m.group(3)
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    shown = host or url.split(":", 1)[-1]  # mailto:, tel: … show what follows the scheme
    if label in (url, shown, url.split("://", 1)[-1]):
        return whole
    return f"{whole} ({shown})"


def plan_title(task_id: int, *, continued: bool = False) -> Chunk:
    return {"type": "plan_update", "title": f"Task #{task_id}" + (" (continued)" if continued else "")}


def task(task_id: str, title: str, status: str, *, details: str = "", output: str = "") -> Chunk:
    chunk: Chunk = {"type": "task_update", "id": task_id, "title": short(neutral(title), TITLE_LIMIT) or "…",
                    "status": status}
    if details:
        chunk["details"] = short(neutral(details), FIELD_LIMIT)
    if output:
        chunk["output"] = neutral(output)[:FIELD_LIMIT]
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
    model wrote it, but with no Slack markup and links showing their hosts: `neutral_markdown`),
    and whether it was too long and goes into a file as well (as in classic)."""
    body = answer.strip()
    attach = len(body) > ANSWER_INLINE_LIMIT
    body = neutral_markdown(body)
    limit = min(ANSWER_INLINE_LIMIT, MARKDOWN_LIMIT)
    if len(body) > limit:
        body = body[:limit - 2] + "\n…"
    return ([{"type": "markdown_text", "text": body}] if body else []), attach


def stop_blocks(attach: bool, **final: Any) -> Blocks:
    """The classic final reply's blocks without the answer (it was streamed above them): the failure
    or stop line, files changed, the note, usage, and the Push and Transcript buttons."""
    _text, blocks, _attach = final_blocks(answer="", **final)
    if attach:
        blocks.insert(0, {"type": "context", "elements": [
            {"type": "mrkdwn", "text": "The full answer is attached as a file."}]})
    return blocks
