"""The Push branch button on a final message: pushes the thread's branch, opens a PR when it can.
Only the thread's first requester or an admin may push: a follow-up's requester asked for a change,
not for the thread's branch to go out under the bot's credentials."""

from __future__ import annotations

import logging
from typing import Any

from ...deps import Deps
from ...ids import parse_id
from ...intake import say
from ...mrkdwn import clip, compose, escape, mention
from ...wording import push_text

log = logging.getLogger(__name__)


def handler(deps: Deps):
    async def task_push(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id", "")
        thread_ts = (body.get("message") or {}).get("thread_ts") or (body.get("message") or {}).get("ts", "")

        async def tell(text: str) -> None:  # only the person who pressed sees it
            try:
                await deps.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
            except Exception:
                log.exception("could not answer the Push of %s", user)

        value = str(action.get("value", ""))
        task_id = parse_id(value)
        task = await deps.store.get_task(task_id) if task_id is not None else None
        thread = await deps.store.get_thread(task.thread_id) if task and task.channel == channel else None
        if task is None or thread is None:
            await tell(f"There is no task #{clip(escape(value), 40)} in this channel.")
            return
        assert task.id is not None and thread.id is not None  # both read from the store
        owner = thread.requester or (await deps.store.thread_tasks(thread.id))[0].requester
        if user != owner and not await deps.is_admin(user):
            await tell(compose("Only ", mention(owner), " (who started this thread) or an admin can push its branch."))
            return
        result = await deps.runs.push(task.id, by=user)
        await say(deps, channel, thread_ts, push_text(result))
    return task_push
