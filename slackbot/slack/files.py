"""Files people attach to a request or a reply: described for the store as the event brings them,
and what the run could not take said in the thread.

Events carry file objects, sometimes only partly: in Slack Connect channels a file comes as
`{"id", "file_access": "check_file_info"}` and files.info (scope files:read) has the rest. The run
downloads them later (runs/attachments.py); here nothing is fetched but the description.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from ..protocol import ErrorItem, Event, ItemCompleted, TaskRef
from ..runs.attachments import FILES_MAX
from .blocks import notice_blocks
from .pacing import Poster

log = logging.getLogger(__name__)


async def attached_files(client: AsyncWebClient, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The event's files as the store keeps them ({id, name, size, mimetype, url}, or `error` with
    why one cannot be taken). Never raises: a file Slack will not describe is recorded with its reason."""
    out = []
    for f in (event.get("files") or [])[:FILES_MAX] if isinstance(event.get("files"), list) else []:
        if not isinstance(f, dict) or not isinstance(f.get("id"), str):
            continue
        if f.get("file_access") == "check_file_info" or not (f.get("url_private_download") or f.get("url_private")):
            f = await _info(client, f)
        out.append(_record(f))
    return out


async def _info(client: AsyncWebClient, partial: dict[str, Any]) -> dict[str, Any]:
    try:
        resp = await client.files_info(file=partial["id"])
    except SlackApiError as exc:
        return {**partial, "error": f"Slack would not describe it (files.info: {exc.response.get('error')})"}
    except Exception as exc:
        log.warning("files.info %s failed", partial["id"], exc_info=True)
        return {**partial, "error": f"Slack would not describe it ({exc.__class__.__name__})"}
    found = resp.get("file")
    return {**found, "id": partial["id"]} if isinstance(found, dict) else {**partial, "error": "files.info said nothing"}


def _record(f: dict[str, Any]) -> dict[str, Any]:
    size = f.get("size")
    url = f.get("url_private_download") or f.get("url_private") or ""
    record = {"id": f["id"], "name": str(f.get("name") or f.get("title") or f["id"]),
              "size": size if isinstance(size, int) and size >= 0 else 0,
              "mimetype": str(f.get("mimetype") or ""), "url": url if isinstance(url, str) else ""}
    error = f.get("error") or _unavailable(f)
    return {**record, "error": str(error)} if error else record


def _unavailable(f: dict[str, Any]) -> str:
    if f.get("mode") == "tombstone":
        return "it was deleted"
    if f.get("mode") == "hidden_by_limit":
        return "Slack hides it (the workspace's plan limits)"
    if f.get("file_access") == "access_denied":
        return "the bot may not see it"
    if f.get("is_external"):
        return "it is stored outside Slack"
    return ""


class FileNotices:
    """An event sink: what a run could not take of the attached files (runs/attachments.py emits an
    `error` item for each), said in the task's thread."""

    def __init__(self, poster: Poster) -> None:
        self.poster = poster

    async def handle(self, task: TaskRef, event: Event) -> None:
        if task.channel == "cli" or not isinstance(event, ItemCompleted) or not isinstance(event.item, ErrorItem) \
                or not event.item.id.startswith(f"task_{task.task_id}_attachment_"):
            return
        fallback, blocks = notice_blocks(event.item.message)
        try:
            await self.poster.post(channel=task.channel, thread_ts=task.thread_ts, text=fallback, blocks=blocks)
        except Exception:
            log.exception("could not tell %s/%s: %s", task.channel, task.thread_ts, fallback)
