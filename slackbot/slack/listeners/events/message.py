"""Replies in agent threads steer the running task or start a follow-up (unless the channel wants
replies to mention the bot); new top-level messages in watched channels start automations; in a
direct message with the bot, every message is a request, as a mention is in a channel (Slack sends
no app_mention there). Everything else is ignored (but acknowledged: an unhandled event makes Bolt
answer 404 and Slack retry)."""

from __future__ import annotations

import logging
from typing import Any

from ....runs.effective import effective
from ...deps import Deps
from ...files import attached_files
from ...intake import HUMAN_SUBTYPES, delivery_keys, handle_reply, react, reason, refused, say, strip_mention
from ...mrkdwn import unescape
from . import app_mention

log = logging.getLogger(__name__)

WATCHED_SUBTYPES = (None, "file_share", "bot_message")  # people's and other apps' new messages


def handler(deps: Deps):
    async def message(body: dict[str, Any], event: dict[str, Any]) -> None:
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        if is_direct(event.get("channel", "")):
            await direct(deps, body, event)
            return
        if ts and (not thread_ts or thread_ts == ts):
            await watched(deps, event)
            return
        if event.get("bot_id") or event.get("subtype") not in HUMAN_SUBTYPES or not event.get("user"):
            return  # our own posts, edits, deletions, joins
        if not thread_ts or not ts:
            return
        if deps.bot_user_id and f"<@{deps.bot_user_id}>" in event.get("text", ""):
            return  # app_mention handles it
        channel = event["channel"]
        keys = delivery_keys(body, channel, ts)
        try:
            if await deps.store.thread_for(channel, thread_ts) is None or await deps.store.seen(*keys):
                return
            if (await effective(deps.store, deps.settings, channel)).reply_needs_mention:
                return  # this channel's replies reach the agent only when they mention it
            if await refused(deps, user=event["user"], channel=channel, thread_ts=thread_ts, keys=keys, event=event):
                return
            # Recorded with its keys (steering or a follow-up), so a retry never counts twice.
            await handle_reply(deps, channel=channel, thread_ts=thread_ts, user=event["user"],
                               text=unescape(event.get("text", "")), ts=ts, keys=keys,
                               files=await attached_files(deps.client, event))
        except Exception as exc:  # never silent: the person hears of it
            log.exception("could not handle the reply %s/%s", channel, ts)
            await say(deps, channel, thread_ts, f"Sorry, I could not take this reply: {reason(exc)}")
    return message


def is_direct(channel: str) -> bool:
    """A direct message with the bot (ids of `im` conversations start with D)."""
    return channel.startswith("D")


async def direct(deps: Deps, body: dict[str, Any], event: dict[str, Any]) -> None:
    """A message in a direct conversation with the bot: a request (a new task, or a reply in one of
    its threads), checked and answered as a mention is. Everything stays in that conversation."""
    if event.get("bot_id") or event.get("subtype") not in HUMAN_SUBTYPES or not event.get("user") \
            or ours(deps, event) or not event.get("ts"):
        return
    channel, ts, user = event["channel"], event["ts"], event["user"]
    thread_ts = event.get("thread_ts") or ts
    keys = delivery_keys(body, channel, ts)
    try:
        if await deps.store.seen(*keys):
            return
        if await refused(deps, user=user, channel=channel, thread_ts=event.get("thread_ts"), keys=keys, event=event):
            return
        if await app_mention.handle(deps, channel=channel, thread_ts=thread_ts, user=user, ts=ts, keys=keys,
                                    text=strip_mention(event.get("text", ""), deps.bot_user_id),
                                    in_thread=thread_ts != ts, files=await attached_files(deps.client, event)):
            await react(deps, channel, ts)
    except Exception as exc:  # never silent: the person hears of it
        log.exception("could not handle the direct message %s/%s", channel, ts)
        await say(deps, channel, thread_ts, f"Sorry, something went wrong with this request: {reason(exc)}")


def ours(deps: Deps, event: dict[str, Any]) -> bool:
    """Posted by this bot (its automations' posts included), however Slack labels it."""
    return bool((deps.bot_id and event.get("bot_id") == deps.bot_id)
                or (deps.bot_user_id and event.get("user") == deps.bot_user_id))


async def watched(deps: Deps, event: dict[str, Any]) -> None:
    """A new top-level message: automations watching its channel may run in its thread. A message
    that mentions the bot is a task for the bot instead (app_mention)."""
    if deps.automations is None or event.get("subtype") not in WATCHED_SUBTYPES or ours(deps, event):
        return
    text = event.get("text") or ""
    if deps.bot_user_id and f"<@{deps.bot_user_id}>" in text:
        return
    channel, ts = event.get("channel", ""), event.get("ts", "")
    try:
        runs = await deps.automations.on_message(channel=channel, ts=ts, user=event.get("user") or "",
                                                 text=unescape(text))
        if runs:
            log.info("message %s/%s started %d automation runs", channel, ts, len(runs))
    except Exception as exc:
        log.exception("automations on %s/%s failed", channel, ts)
        await say(deps, channel, ts, f"Sorry, an automation watching this channel could not start: {reason(exc)}")
