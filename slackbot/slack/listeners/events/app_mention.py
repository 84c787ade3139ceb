"""`@slackbot do something`: a new agent thread, or a follow-up / steering in an existing one."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...intake import handle_reply, react, say, start_task, strip_mention

HELP_HINT = ("Tell me what to do, for example: `@slackbot add a --json flag to the CLI`. "
             "`/agent help` lists everything I can do.")


def handler(deps: Deps):
    async def app_mention(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("bot_id") or not event.get("user"):
            return
        channel, ts, user = event["channel"], event["ts"], event["user"]
        keys = [f"msg:{channel}:{ts}"]
        if body.get("event_id"):
            keys.append(f"event:{body['event_id']}")
        if not await deps.store.first_time(*keys):
            return  # a retry, or the same message delivered as `message` too
        text = strip_mention(event.get("text", ""), deps.bot_user_id)
        thread_ts = event.get("thread_ts") or ts
        await react(deps, channel, ts)
        if not text:
            await say(deps, channel, thread_ts, HELP_HINT)
            return
        if event.get("thread_ts") and await handle_reply(
                deps, channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts):
            return
        await start_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts)
    return app_mention
