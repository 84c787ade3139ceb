"""`slackbot exec "TASK"`: one task through the same runner, its events printed live."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from .app import Bot
from .protocol import (
    CommandExecution, Event, ItemCompleted, ItemStarted, TaskFinished, TaskRef, event_to_dict,
)
from .settings import Settings


class PrintSink:
    def __init__(self, task_id_box: list[int], as_json: bool) -> None:
        self.box = task_id_box
        self.as_json = as_json
        self.done = asyncio.Event()
        self.result: TaskFinished | None = None

    async def handle(self, task: TaskRef, event: Event) -> None:
        if self.box and task.task_id != self.box[0]:
            return
        if isinstance(event, TaskFinished):
            self.result = event
            self.done.set()
        if self.as_json:
            if not event.type.startswith("task."):  # the codex exec --json stream only
                print(json.dumps(event_to_dict(event)), flush=True)
        else:
            line = human(event)
            if line:
                print(line, flush=True)


def human(event: Event) -> str:
    if isinstance(event, ItemStarted) and isinstance(event.item, CommandExecution):
        return f"$ {event.item.command}"
    if isinstance(event, ItemCompleted):
        item = event.item
        if isinstance(item, CommandExecution):
            out = item.aggregated_output.rstrip()
            return (out + "\n" if out else "") + f"[exit {item.exit_code}]"
        text = getattr(item, "text", None) or getattr(item, "message", None)
        if text:
            return f"[{item.type}] {text}"
        if item.type == "todo_list":
            return "[plan] " + "; ".join(("✓ " if i.completed else "· ") + i.text for i in item.items)
        if item.type == "file_change":
            return "[files] " + ", ".join(f"{c.kind} {c.path}" for c in item.changes)
    if isinstance(event, TaskFinished):
        u = event.usage
        tail = f" — {event.error}" if event.error else ""
        return (f"[{event.status}] {event.elapsed_s:.1f}s, {u.input_tokens} tokens in, "
                f"{u.output_tokens} out{tail}")
    if event.type == "task.progress":
        return f"[{event.text}]"
    return ""


async def run_exec(settings: Settings, task: str, *, as_json: bool, repo: str = "") -> int:
    box: list[int] = []
    sink = PrintSink(box, as_json)
    async with Bot(settings, slack=False, exclusive=True) as bot:
        bot.bus.add_sink(sink)
        fields = {"repo_id": None, "repo_url": repo, "base_branch": ""} if repo else None
        ref = await bot.runs.record(channel="cli", thread_ts=uuid.uuid4().hex, user="cli", user_name="terminal",
                                    text=task, mention_ts="", repo=fields)
        box.append(ref.task_id)
        bot.runs.only.add(ref.task_id)
        await bot.runs.enqueue(ref)
        await sink.done.wait()
    if sink.result is None or sink.result.status != "done":
        if not as_json and sink.result and sink.result.error:
            print(sink.result.error, file=sys.stderr)
        return 1
    if not as_json:
        print(sink.result.answer)
    return 0
