"""`slackbot exec "TASK"`: one task through the same runner, its events printed live."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from .app import Bot
from .protocol import Event, TaskFinished, TaskRef, event_to_dict
from .settings import Settings
from .store import RepoBinding
from .text import render_event


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
            text = render_event(event)  # the transcript's text, live
            if text:
                print(text, flush=True)


async def run_exec(settings: Settings, task: str, *, as_json: bool, repo: str = "") -> int:
    box: list[int] = []
    sink = PrintSink(box, as_json)
    async with Bot(settings, front=False, exclusive=True) as bot:
        bot.bus.add_sink(sink)
        binding = RepoBinding(repo_id=None, repo_url=repo) if repo else None  # the operator's: trusted
        ref = await bot.runs.record(channel="cli", thread_ts=uuid.uuid4().hex, user="cli", user_name="terminal",
                                    text=task, mention_ts="", repo=binding, pinned=True)
        box.append(ref.task_id)
        await bot.runs.enqueue(ref)
        await sink.done.wait()
    if sink.result is None or sink.result.status != "done":
        if not as_json and sink.result and sink.result.error:
            print(sink.result.error, file=sys.stderr)
        return 1
    if not as_json:
        print(sink.result.answer)
    return 0
