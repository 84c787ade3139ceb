"""The Stop button on a status message. Only the requester or an admin may stop a task."""

from __future__ import annotations

import logging
from typing import Any

from ...deps import Deps
from ...stopping import stop_task

log = logging.getLogger(__name__)


def handler(deps: Deps):
    async def task_stop(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id", "")
        message = await stop_task(deps, str(action.get("value", "")), user)
        if message and channel:
            try:
                await deps.client.chat_postEphemeral(channel=channel, user=user, text=message,
                                                     thread_ts=(body.get("message") or {}).get("thread_ts"))
            except Exception:
                log.exception("could not answer the Stop of %s", user)
    return task_stop
