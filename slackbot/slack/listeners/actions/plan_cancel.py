"""Cancel on a plan: nothing is changed, and the buttons go."""

from __future__ import annotations

from ....store import Task
from ...deps import Deps
from .plan_common import Press, answer, button


def handler(deps: Deps):
    async def cancel(press: Press, task: Task) -> None:
        assert task.id is not None
        result = await deps.runs.plans.cancel(task.id, by=press.user, message_ts=press.ts_of(task.id))
        await answer(deps, press, task, result, "cancel")
    return button(deps, "cancel", cancel)
