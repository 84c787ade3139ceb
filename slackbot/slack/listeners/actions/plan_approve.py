"""Approve on a plan: the edits continue the same conversation in a new task, with a writable workspace."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from .plan_common import allowed, answer, failed, read_press


def handler(deps: Deps):
    async def plan_approve(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        press = read_press(body, action)
        try:
            task = await allowed(deps, press)
            if task is None or task.id is None:
                return
            result = await deps.runs.plans.approve(task.id, by=press.user, by_name=await deps.user_name(press.user),
                                                   message_ts=press.ts_of(task.id))
            await answer(deps, press, task, result, "approve")
        except Exception as exc:  # never silent
            await failed(deps, press, exc, "approve")
    return plan_approve
