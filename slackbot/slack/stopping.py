"""Stop permission and wording, shared by the Stop button, `/agent stop` and Slack's own Stop
(agent_session_stopped): one check, one answer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..runs.outcomes import StopCode
from .deps import Deps
from .ids import parse_id
from .mrkdwn import clip, compose, escape, mention
from .wording import stop_text

log = logging.getLogger(__name__)
STOPPED = frozenset({StopCode.DEQUEUED, StopCode.STOPPING, StopCode.ALREADY_STOPPING})


@dataclass(frozen=True)
class StopAnswer:
    text: str  # mrkdwn, for the person who asked
    stopped: bool = False  # the task stops (or left the queue)
    refused: bool = False  # this person may not stop it


async def stop(deps: Deps, value: str, user: str) -> StopAnswer:
    """Stops the task whose id is `value` (typed, or a button's) when `user` may."""
    task_id = parse_id(value)
    task = await deps.store.get_task(task_id) if task_id is not None else None
    if task_id is None or task is None:
        return StopAnswer(f"There is no task #{clip(escape(value.strip().removeprefix('#')), 40)}.")
    if user != task.requester and not await deps.is_admin(user):
        return StopAnswer(compose("Only ", mention(task.requester), f" (who asked) or an admin can stop task #{task_id}."),
                          refused=True)
    result = await deps.runs.stop_task(task_id, user)
    return StopAnswer(escape(stop_text(result)), stopped=result.code in STOPPED)


async def stop_task(deps: Deps, value: str, user: str) -> str:
    """`stop`, as the answer's text."""
    return (await stop(deps, value, user)).text


async def tell(deps: Deps, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
    """The answer to a Stop, to its presser alone, in the thread. Never raises."""
    if not (text and channel):
        return
    try:
        await deps.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except Exception:
        log.exception("could not answer the Stop of %s", user)
