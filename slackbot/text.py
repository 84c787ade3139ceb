"""Events as plain text: one renderer for the terminal (`slackbot exec`) and the transcript file.

A command shows as `$ command` when it starts and as its output and exit code when it ends, so
the terminal shows what runs while it runs and the transcript reads the same from stored events.
"""

from __future__ import annotations

from .protocol import (
    AgentMessage, CommandExecution, ErrorItem, Event, FileChange, Item, ItemCompleted, ItemStarted, TaskFinished,
    TaskProgress, TaskSettings, TodoList, UserMessage,
)


def render_event(event: Event) -> str:
    """The text of one event, possibly several lines; "" for events not shown (the turn's
    start and end, queue positions: the final line says how it ended)."""
    if isinstance(event, ItemStarted) and isinstance(event.item, CommandExecution):
        return f"$ {event.item.command}"
    if isinstance(event, ItemCompleted):
        return _item(event.item)
    if isinstance(event, TaskProgress):
        return f"[{event.text}]"
    if isinstance(event, TaskSettings):
        return _section("settings", "\n".join(f"{k} = {v}" for k, v in event.values))
    if isinstance(event, TaskFinished):
        return _finished(event)
    return ""


def _item(item: Item) -> str:
    if isinstance(item, CommandExecution):
        out = item.aggregated_output.rstrip()
        return (out + "\n" if out else "") + f"[exit {item.exit_code}]"
    if isinstance(item, AgentMessage):
        return _section("agent", item.text)
    if isinstance(item, UserMessage):
        return _section(f"message from {item.user or 'someone'}", item.text)
    if isinstance(item, TodoList):
        return _section("plan", "\n".join(("[x] " if i.completed else "[ ] ") + i.text for i in item.items))
    if isinstance(item, FileChange):
        return _section("files changed", "\n".join(f"{c.kind} {c.path}" for c in item.changes))
    if isinstance(item, ErrorItem):
        return f"!!! {item.message}"
    return ""


def _section(title: str, body: str) -> str:
    # The blank line sets prose apart from the commands' output around it.
    return f"\n--- {title} ---\n{body}"


def _finished(event: TaskFinished) -> str:
    u = event.usage
    lines = [f"Finished: {event.status} in {event.elapsed_s:.1f}s, {u.input_tokens} tokens in, "
             f"{u.output_tokens} out"]
    if event.error:
        lines.append(event.error)
    if event.stopped_by:
        lines.append(f"stopped by {event.stopped_by}")
    if event.branch:
        lines.append(f"branch: {event.branch}")
    if event.push:  # a code (runs.outcomes.PushCode): the Slack surface words it, here it is shown as is
        lines.append(f"automatic push: {event.push}" + (f" ({event.push_detail})" if event.push_detail else ""))
    if event.pr_url:
        lines.append(f"pull request: {event.pr_url}")
    if event.left_out:
        lines.append("left out of the commit (too large): "
                     + ", ".join(f"{f.path} ({f.size} bytes)" for f in event.left_out))
    return "\n".join(lines)
