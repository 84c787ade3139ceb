"""The commit a task's changes land in: its message and who asked for it."""

from __future__ import annotations

from ..store import Task


def commit_message(task: Task, trailer_lines: list[str]) -> str:
    first = task.prompt.strip().splitlines()[0] if task.prompt.strip() else ""
    return f"{first[:72] or 'slackbot task'}\n\nslackbot task #{task.id}\n\n" + "\n".join(trailer_lines)


def trailers(task: Task) -> list[str]:
    name = task.requester_name or task.requester
    if task.requester_email:
        return [f"Co-authored-by: {name} <{task.requester_email}>"]
    return [f"Requested-by: {name} (Slack {task.requester})"]
