"""Stop permission and wording, shared by the button and `/agent stop`."""

from __future__ import annotations

from .deps import Deps
from .ids import parse_id
from .mrkdwn import clip, compose, escape, mention
from .wording import stop_text


async def stop_task(deps: Deps, value: str, user: str) -> str:
    """Stops the task whose id is `value` (typed, or a button's); the answer, as mrkdwn."""
    task_id = parse_id(value)
    task = await deps.store.get_task(task_id) if task_id is not None else None
    if task_id is None or task is None:
        return f"There is no task #{clip(escape(value.strip().removeprefix('#')), 40)}."
    if user != task.requester and not await deps.is_admin(user):
        return compose("Only ", mention(task.requester), f" (who asked) or an admin can stop task #{task_id}.")
    return escape(stop_text(await deps.runs.stop_task(task_id, user)))
