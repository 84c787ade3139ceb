"""Replies in agent threads steer the running task or start a follow-up. Everything else is ignored
(but acknowledged: an unhandled event makes Bolt answer 404 and Slack retry)."""

from __future__ import annotations

import logging
from typing import Any

from ...deps import Deps
from ...intake import delivery_keys, handle_reply, reason, say
from ...mrkdwn import unescape

log = logging.getLogger(__name__)

HUMAN_SUBTYPES = (None, "thread_broadcast", "file_share")


def handler(deps: Deps):
    async def message(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("bot_id") or event.get("subtype") not in HUMAN_SUBTYPES or not event.get("user"):
            return  # our own posts, edits, deletions, joins
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        if not thread_ts or not ts or thread_ts == ts:
            return  # top-level chatter; mentions arrive as app_mention
        if deps.bot_user_id and f"<@{deps.bot_user_id}>" in event.get("text", ""):
            return  # app_mention handles it
        channel = event["channel"]
        keys = delivery_keys(body, channel, ts)
        try:
            if await deps.store.thread_for(channel, thread_ts) is None or await deps.store.seen(*keys):
                return
            # Recorded with its keys (steering or a follow-up), so a retry never counts twice.
            await handle_reply(deps, channel=channel, thread_ts=thread_ts, user=event["user"],
                               text=unescape(event.get("text", "")), ts=ts, keys=keys)
        except Exception as exc:  # never silent: the person hears of it
            log.exception("could not handle the reply %s/%s", channel, ts)
            await say(deps, channel, thread_ts, f"Sorry, I could not take this reply: {reason(exc)}")
    return message
