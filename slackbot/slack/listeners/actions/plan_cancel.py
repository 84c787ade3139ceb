"""Cancel on a plan: nothing is changed, and the buttons go."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from .plan_common import allowed, answer, failed, read_press


def handler(deps: Deps):
    async def plan_cancel(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        press = read_press(body, action)
        try:
            task = await allowed(deps, press)
            if task is None or task.id is None:
                return
            result = await deps.runs.plans.cancel(task.id, by=press.user, message_ts=press.ts_of(task.id))
            await answer(deps, press, task, result, "cancel")
        except Exception as exc:  # never silent
            await failed(deps, press, exc, "cancel")
    return plan_cancel
