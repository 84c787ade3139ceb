"""`@slackbot do something`: a new agent thread, or a follow-up / steering in an existing one."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...intake import handle_reply, react, record_task, say, start_task, strip_mention
from ...options import parse_options
from ...repo_choice import chooser_blocks, resolve

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
        await new_thread(deps, channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts)
    return app_mention


async def new_thread(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str) -> None:
    opts = parse_options(text)
    if not opts.text:
        await say(deps, channel, thread_ts, HELP_HINT)
        return
    found = await resolve(deps, channel, opts, user)
    if found.problem:
        await say(deps, channel, thread_ts, found.problem)
        return
    if found.ask is None:
        await start_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=opts.text, ts=ts,
                         repo=found.repo, model=opts.model)
        return
    ref = await record_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=opts.text, ts=ts,
                            model=opts.model, status="choosing")
    if ref is None:
        return
    fallback, blocks = chooser_blocks(ref.task_id, user, found.ask)
    try:
        await deps.renderer.poster.post(channel=channel, thread_ts=thread_ts, text=fallback, blocks=blocks)
    except Exception as exc:
        await say(deps, channel, thread_ts, f"Sorry, I could not ask which repository to use: {exc}")
