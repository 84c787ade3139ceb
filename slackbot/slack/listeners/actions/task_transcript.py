"""The Transcript button: every command with its output and every model message, as a file."""

from __future__ import annotations

import logging
from typing import Any

from ...deps import Deps
from ...ids import parse_id
from ...intake import reason, say
from ...transcript import render_transcript

log = logging.getLogger(__name__)


def handler(deps: Deps):
    async def task_transcript(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id", "")
        message = body.get("message") or {}
        thread_ts = message.get("thread_ts") or message.get("ts", "")
        task_id = parse_id(str(action.get("value", "")))
        task = await deps.store.get_task(task_id) if task_id is not None else None
        if task is None or task.channel != channel:
            await say(deps, channel, thread_ts, "I have no transcript of that task in this channel.")
            return
        assert task.id is not None  # read from the store
        text = render_transcript(task, await deps.store.events(task.id))
        try:
            await deps.client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=text,
                                              filename=f"task-{task.id}-transcript.txt",
                                              title=f"Transcript of task #{task.id}")
        except Exception as exc:
            log.exception("could not upload the transcript of task %s", task.id)
            await say(deps, channel, thread_ts, f"I could not attach the transcript: {reason(exc)}")
    return task_transcript
