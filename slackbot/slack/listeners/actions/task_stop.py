"""The Stop button on a status message. Only the requester or an admin may stop a task."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...stopping import stop, tell


def handler(deps: Deps):
    async def task_stop(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        answer = await stop(deps, str(action.get("value", "")), user)
        await tell(deps, channel=(body.get("channel") or {}).get("id", ""), user=user,
                   thread_ts=(body.get("message") or {}).get("thread_ts"), text=answer.text)
    return task_stop
