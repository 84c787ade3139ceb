"""Revise on a plan: a form asks what should change, and a new read-only task makes a revised plan.
(A reply in the thread while the plan waits is a revision as well: runs/plan.py.) The permission is
checked again on submission: a submission can be forged with this form's callback id."""

from __future__ import annotations

import json
import logging
from typing import Any

from ....store import Task
from ...deps import Deps
from ...plan_view import CHANGES_MAX, revise_view, result_text
from .plan_common import Press, allowed, answer, button, failed, say_to

log = logging.getLogger(__name__)
NO_FORM = ("I could not open the form ({why}). Reply in this thread with what should change instead: while a plan "
           "waits, a reply revises it.")


def handler(deps: Deps):
    async def revise(press: Press, task: Task) -> None:
        assert task.id is not None
        problem = await deps.runs.plans.check(task.id)
        if problem is not None:
            await say_to(deps, press, result_text(problem, "revised"))
            return
        try:
            await deps.client.views_open(trigger_id=press.trigger_id,
                                         view=revise_view(task.id, press.channel, press.ts_of(task.id)))
        except Exception as exc:
            log.warning("views.open for a plan's revision failed: %s", exc)
            await say_to(deps, press, NO_FORM.format(why=exc.__class__.__name__))
    return button(deps, "revise", revise)


def submitted(deps: Deps):
    async def plan_revise_submitted(ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = (view.get("state") or {}).get("values") or {}
        changes = str(((values.get("changes") or {}).get("value") or {}).get("value") or "").strip()
        if not changes:
            await ack(response_action="errors", errors={"changes": "Say what should change in the plan."})
            return
        await ack()
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            press = Press(body["user"]["id"], str(meta.get("channel", "")), str(meta.get("ts", "")), None,
                          str(meta.get("task", "")))
        except (ValueError, TypeError, AttributeError):
            log.warning("a plan's revision form came back without its task")
            return
        try:
            task = await allowed(deps, press)
            if task is None or task.id is None:
                return
            result = await deps.runs.plans.revise(task.id, by=press.user, changes=changes[:CHANGES_MAX],
                                                  message_ts=press.ts_of(task.id))
            await answer(deps, press, task, result, "revised")
        except Exception as exc:  # never silent
            await failed(deps, press, exc, "revise")
    return plan_revise_submitted
