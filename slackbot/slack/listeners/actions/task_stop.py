"""The Stop button on a status message. Only the requester or an admin may stop a task."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...stopping import stop_task


def handler(deps: Deps):
    async def task_stop(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id", "")
        try:
            task_id = int(action.get("value", ""))
        except ValueError:
            return
        message = await stop_task(deps, task_id, user)
        if message and channel:
            try:
                await deps.client.chat_postEphemeral(channel=channel, user=user, text=message,
                                                     thread_ts=(body.get("message") or {}).get("thread_ts"))
            except Exception:
                pass
    return task_stop
