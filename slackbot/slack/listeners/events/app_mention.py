"""`@slackbot do something`: a new agent thread, or a follow-up / steering in an existing one.

A delivery is marked seen in the same transaction that records what it asked for (the task, or the
steering message), so a failed recording leaves it unmarked; the person is told either way. Who may
ask, and where, is checked first (access.py): a refusal is marked seen and told to the person alone."""

from __future__ import annotations

import logging
from typing import Any

from ....protocol import TaskStatus
from ...deps import Deps
from ...files import attached_files
from ...intake import (
    HUMAN_SUBTYPES, delivery_keys, handle_reply, react, reason, record_task, refused, say, start_task, strip_mention,
)
from ....runs.plan import take_option
from ...options import parse_options
from ...repo_choice import chooser_blocks, resolve

log = logging.getLogger(__name__)
HELP_HINT = ("Tell me what to do, for example: `@slackbot add a --json flag to the CLI`. "
             "`/agent help` lists everything I can do.")


def handler(deps: Deps):
    async def app_mention(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("bot_id") or not event.get("user") or event.get("subtype") not in HUMAN_SUBTYPES:
            return  # apps (a bot_message naming a user included) do not give tasks
        channel, ts, user = event["channel"], event["ts"], event["user"]
        thread_ts = event.get("thread_ts") or ts
        keys = delivery_keys(body, channel, ts)
        try:
            if await deps.store.seen(*keys):
                return  # a retry, or the same message delivered as `message` too
            if await refused(deps, user=user, channel=channel, thread_ts=event.get("thread_ts"), keys=keys,
                             event=event):
                return
            if await handle(deps, channel=channel, thread_ts=thread_ts, user=user, ts=ts, keys=keys,
                            text=strip_mention(event.get("text", ""), deps.bot_user_id),
                            in_thread=bool(event.get("thread_ts")), files=await attached_files(deps.client, event)):
                await react(deps, channel, ts)
        except Exception as exc:  # never silent: the person hears of it
            log.exception("could not handle the mention %s/%s", channel, ts)
            await say(deps, channel, thread_ts, f"Sorry, something went wrong with this request: {reason(exc)}")
    return app_mention


async def handle(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str,
                 keys: tuple[str, ...], in_thread: bool, files: list[dict[str, Any]] | None = None) -> bool:
    """True when this delivery was taken (recorded, or answered); False for a duplicate or a failure
    the thread was told of. `files`: attached to the message (files.py), recorded with it."""
    if (text or files) and in_thread:
        handled = await handle_reply(deps, channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts,
                                     keys=keys, files=files)
        if handled is not None:
            return handled
    opts = parse_options(text)
    asked = opts.text and take_option(opts.text)[0]  # (`plan=on` alone asks for nothing)
    found = await resolve(deps, channel, opts, user) if asked else None
    if found is None or found.problem:  # nothing to record: mark it seen, then answer
        if not await deps.store.first_time(*keys):
            return False
        await say(deps, channel, thread_ts, found.problem if found else HELP_HINT)
        return True
    if found.ask is None:
        ref = await start_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=opts.text, ts=ts,
                               keys=keys, repo=found.repo, model=opts.model, files=files)
        return ref is not None
    ref = await record_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=opts.text, ts=ts,
                            keys=keys, model=opts.model, status=TaskStatus.CHOOSING, files=files)
    if ref is None:
        return False
    fallback, blocks = chooser_blocks(ref.task_id, user, found.ask)
    try:
        await deps.renderer.poster.post(channel=channel, thread_ts=thread_ts, text=fallback, blocks=blocks)
    except Exception as exc:
        await say(deps, channel, thread_ts, f"Sorry, I could not ask which repository to use: {reason(exc)}")
    return True
