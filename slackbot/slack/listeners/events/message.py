"""Replies in agent threads steer the running task or start a follow-up. Everything else is ignored
(but acknowledged: an unhandled event makes Bolt answer 404 and Slack retry)."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...intake import handle_reply
from ...mrkdwn import unescape

HUMAN_SUBTYPES = (None, "thread_broadcast", "file_share")


def handler(deps: Deps):
    async def message(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("bot_id") or event.get("subtype") not in HUMAN_SUBTYPES or not event.get("user"):
            return  # our own posts, edits, deletions, joins
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        if not thread_ts or thread_ts == ts:
            return  # top-level chatter; mentions arrive as app_mention
        if deps.bot_user_id and f"<@{deps.bot_user_id}>" in event.get("text", ""):
            return  # app_mention handles it
        channel = event["channel"]
        if await deps.store.thread_for(channel, thread_ts) is None:
            return
        keys = [f"msg:{channel}:{ts}"] + ([f"event:{body['event_id']}"] if body.get("event_id") else [])
        if not await deps.store.first_time(*keys):
            return
        await handle_reply(deps, channel=channel, thread_ts=thread_ts, user=event["user"],
                           text=unescape(event.get("text", "")), ts=ts)
    return message
