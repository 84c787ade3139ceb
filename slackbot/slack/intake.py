"""Turning what people write into tasks or steering messages; shared by the event listeners."""

from __future__ import annotations

import logging
import re
from typing import Any

from ..protocol import TaskRef, TaskStatus
from ..runs.outcomes import brief
from ..runs.states import ACTIVE
from ..runs.task_run import task_ref
from ..store import RepoBinding
from .access import may_start, tell
from .blocks import StatusState, notice_blocks, status_blocks
from .deps import Deps
from .mrkdwn import unescape
from .options import parse_options
from .repo_choice import model_refusal

log = logging.getLogger(__name__)
HUMAN_SUBTYPES = (None, "thread_broadcast", "file_share")  # what people post (not edits, joins, apps)


def strip_mention(text: str, bot_user_id: str) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", " ")
    else:
        text = re.sub(r"^\s*<@[A-Z0-9]+>", " ", text)
    return unescape(" ".join(text.split(" ")).strip())


def delivery_keys(body: dict[str, Any], channel: str, ts: str) -> tuple[str, ...]:
    """What identifies one message however Slack delivers it: retries share the event id, and a
    mention also arrives as a `message` event with the same channel and ts."""
    return (f"msg:{channel}:{ts}",) + ((f"event:{body['event_id']}",) if body.get("event_id") else ())


async def refused(deps: Deps, *, user: str, channel: str, thread_ts: str | None, keys: tuple[str, ...],
                  event: dict[str, Any]) -> bool:
    """True when `user` may not start or steer work here (access.py): the delivery is marked seen,
    so no retry of it becomes a task later, and the person is told why (once), never the channel."""
    why = await may_start(deps, user=user, channel=channel, event=event)
    if not why:
        return False
    if await deps.store.first_time(*keys):
        await tell(deps, channel=channel, user=user, thread_ts=thread_ts, text=why)
    return True


async def say(deps: Deps, channel: str, thread_ts: str, *parts: str) -> None:
    """A notice in the thread; plain strings are escaped, `Mrkdwn` parts (`mention(…)`) kept.
    Never raises (it is often the last resort)."""
    fallback, blocks = notice_blocks(*parts)
    try:
        await deps.renderer.poster.post(channel=channel, thread_ts=thread_ts, text=fallback, blocks=blocks)
    except Exception:
        log.exception("could not tell %s/%s: %s", channel, thread_ts, fallback)


# What went wrong, in one short line: a database error's full text (its statement and parameters)
# has no place in a channel.
reason = brief


async def react(deps: Deps, channel: str, ts: str, name: str = "eyes") -> None:
    try:
        await deps.client.reactions_add(channel=channel, timestamp=ts, name=name)
    except Exception as exc:  # already_reacted, missing scope: not worth failing a task over
        log.info("reactions.add %s failed: %s", name, exc)


async def start_task(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str,
                     keys: tuple[str, ...] = (), repo: RepoBinding | None = None,
                     model: str = "", automation_id: int | None = None,
                     files: list[dict[str, Any]] | None = None) -> TaskRef | None:
    """Records the task, posts its status message, queues it; tells the thread if anything fails.
    None when it was not recorded (a duplicate delivery, or a failure the thread was told of)."""
    ref = await record_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts,
                            keys=keys, repo=repo, model=model, automation_id=automation_id, files=files)
    if ref is not None:
        await post_status_and_enqueue(deps, ref)
    return ref


async def record_task(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str,
                      keys: tuple[str, ...] = (), repo: RepoBinding | None = None, model: str = "",
                      status: TaskStatus = TaskStatus.PENDING, automation_id: int | None = None,
                      files: list[dict[str, Any]] | None = None) -> TaskRef | None:
    """Records the task together with the delivery `keys` (one transaction: a delivery is never
    marked seen unless its task exists), with the files attached to it (files.py). None for a
    duplicate, or after telling the thread why not."""
    try:
        recorded = await deps.store.new_task_once(
            keys, channel=channel, thread_ts=thread_ts, requester=user, requester_name=await deps.user_name(user),
            requester_email=await deps.user_email(user), prompt=text, mention_ts=ts, model=model, repo=repo,
            status=status, automation_id=automation_id, files=files)
    except Exception as exc:
        log.exception("could not record a task")
        await say(deps, channel, thread_ts, f"Sorry, I could not start this task: {reason(exc)}")
        return None
    return task_ref(recorded[1], recorded[0]) if recorded else None


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


async def handle_reply(deps: Deps, *, channel: str, thread_ts: str, user: str, text: str, ts: str,
                       keys: tuple[str, ...] = (), files: list[dict[str, Any]] | None = None) -> bool | None:
    """A message in an agent thread: steering for its active task, else a follow-up task; either is
    recorded with the delivery `keys`. None when the thread is not an agent thread; False when
    nothing was recorded (a duplicate delivery, or a failure the thread was told of)."""
    thread = await deps.store.thread_for(channel, thread_ts)
    if thread is None:
        return None
    assert thread.id is not None  # read from the store
    name = await deps.user_name(user)
    in_inbox = False
    if any(t.status in ACTIVE for t in await deps.store.thread_tasks(thread.id)):
        row_id = await deps.store.add_inbox_once(keys, thread.id, user=user, user_name=name, text=text, ts=ts,
                                                 files=files)
        if row_id is None:
            return False
        if any(t.status in ACTIVE for t in await deps.store.thread_tasks(thread.id)):
            return True
        # The task ended meanwhile, maybe without reading it: whoever takes the row answers it.
        if not await deps.store.take_inbox(thread.id, 0, only=[row_id]):
            return True
        in_inbox, keys = True, ()  # the inbox row recorded this delivery already
    opts = parse_options(text)  # a follow-up keeps the thread's repository; model= still applies
    refused = await model_refusal(deps, opts.model, channel)
    if refused:
        if in_inbox or await deps.store.first_time(*keys):
            await say(deps, channel, thread_ts, refused)
        return True
    ref = await start_task(deps, channel=channel, thread_ts=thread_ts, user=user, text=opts.text or text, ts=ts,
                           keys=keys, model=opts.model, files=files)
    return in_inbox or ref is not None
