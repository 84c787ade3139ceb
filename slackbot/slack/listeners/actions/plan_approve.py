"""Approve on a plan: the edits continue the same conversation in a new task, with a writable workspace."""

from __future__ import annotations

from ....store import Task
from ...deps import Deps
from .plan_common import Press, answer, button


def handler(deps: Deps):
    async def approve(press: Press, task: Task) -> None:
        assert task.id is not None
        result = await deps.runs.plans.approve(task.id, by=press.user, by_name=await deps.user_name(press.user),
                                               message_ts=press.ts_of(task.id))
        await answer(deps, press, task, result, "approve")
    return button(deps, "approve", approve)
