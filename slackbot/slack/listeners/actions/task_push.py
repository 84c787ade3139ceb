"""The Push branch button on a final message: pushes the thread's branch, opens a PR when it can.
Only the requester or an admin may push."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...intake import say


def handler(deps: Deps):
    async def task_push(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id", "")
        thread_ts = (body.get("message") or {}).get("thread_ts") or (body.get("message") or {}).get("ts", "")
        value = action.get("value", "")
        task = await deps.store.get_task(int(value)) if value.isdigit() else None
        if task is None:
            return
        if user != task.requester and not await deps.is_admin(user):
            await deps.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts,
                text=f"Only <@{task.requester}> (who asked) or an admin can push this branch.")
            return
        message = await deps.runs.push(task.id, by=user)
        await say(deps, channel, thread_ts, message)
    return task_push
