"""Stop permission and wording, shared by the button and `/agent stop`."""

from __future__ import annotations

from .deps import Deps


async def stop_task(deps: Deps, task_id: int, user: str) -> str:
    task = await deps.store.get_task(task_id)
    if task is None:
        return f"There is no task #{task_id}."
    if user != task.requester and not await deps.is_admin(user):
        return f"Only <@{task.requester}> (who asked) or an admin can stop task #{task_id}."
    return await deps.runs.stop_task(task_id, user)
