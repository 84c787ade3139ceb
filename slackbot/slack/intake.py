"""Turning what people write into tasks or steering messages; shared by the event listeners."""

from __future__ import annotations

import logging
import re
from typing import Any

from ..protocol import TaskRef

from .blocks import StatusState, notice_blocks, status_blocks
from .deps import Deps
from .mrkdwn import unescape
from .options import parse_options

log = logging.getLogger(__name__)
ACTIVE = ("choosing", "pending", "queued", "running")


def strip_mention(text: str, bot_user_id: str) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", " ")
    else:
        text = re.sub(r"^\s*<@[A-Z0-9]+>", " ", text)
    return unescape(" ".join(text.split(" ")).strip())


async def say(deps: Deps, channel: str, thread_ts: str, text: str) -> None:
    """A plain notice in the thread; never raises (it is often the last resort)."""
    fallback, blocks = notice_blocks(text)
    try:
        await deps.renderer.poster.post(channel=channel, thread_ts=thread_ts, text=fallback, blocks=blocks)
    except Exception:
        log.exception("could not tell %s/%s: %s", channel, thread_ts, text)


async def react(deps: Deps, channel: str, ts: str, name: str = "eyes") -> None:
    try:
        await deps.client.reactions_add(channel=channel, timestamp=ts, name=name)
    except Exception as exc:  # already_reacted, missing scope: not worth failing a task over
        log.info("reactions.add %s failed: %s", name, exc)


async def start_task(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str,
                     repo: dict[str, Any] | None = None, model: str = "") -> None:
    """Records the task, posts its status message, queues it; tells the thread if anything fails."""
    ref = await record_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts,
                            repo=repo, model=model)
    if ref is not None:
        await post_status_and_enqueue(deps, ref)


async def record_task(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str,
                      repo: dict[str, Any] | None = None, model: str = "", status: str = "pending") -> TaskRef | None:
    try:
        return await deps.runs.record(
            channel=channel, thread_ts=thread_ts, user=user, user_name=await deps.user_name(user),
            user_email=await deps.user_email(user), text=text, mention_ts=ts, model=model, repo=repo,
            status=status)
    except Exception as exc:
        log.exception("could not record a task")
        await say(deps, channel, thread_ts, f"Sorry, I could not start this task: {exc}")
        return None


async def post_status_and_enqueue(deps: Deps, ref: TaskRef, phase: str = "Starting") -> None:
    fallback, blocks = status_blocks(StatusState(ref.task_id, state="working", phase=phase))
    status_ts = ""
    try:
        resp = await deps.renderer.poster.post(channel=ref.channel, thread_ts=ref.thread_ts, text=fallback,
                                                  blocks=blocks)
        status_ts = resp["ts"]
    except Exception:  # the renderer posts a status message later if this one is missing
        log.exception("could not post the status of task %s", ref.task_id)
    await deps.runs.enqueue(ref, status_ts)


async def handle_reply(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str) -> bool:
    """A message in an agent thread: steering for its active task, else a follow-up task.
    Returns False when the thread is not an agent thread."""
    thread = await deps.store.thread_for(channel, thread_ts)
    if thread is None:
        return False
    name = await deps.user_name(user)
    if any(t.status in ACTIVE for t in await deps.store.thread_tasks(thread.id)):
        row_id = await deps.store.add_inbox(thread.id, user=user, user_name=name, text=text, ts=ts)
        if any(t.status in ACTIVE for t in await deps.store.thread_tasks(thread.id)):
            return True
        # The task ended meanwhile, maybe without reading it: whoever takes the row answers it.
        if not await deps.store.take_inbox(thread.id, 0, only=[row_id]):
            return True
    opts = parse_options(text)  # a follow-up keeps the thread's repository; model= still applies
    await start_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=opts.text or text, ts=ts,
                     model=opts.model)
    return True
