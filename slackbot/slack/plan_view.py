"""Plan first, as Slack shows it: the plan's message once decided, the Revise form, and sentences
for what the core's PlanResult says. Pure builders, no calls."""

from __future__ import annotations

import json
from typing import Any

from ..runs.plan import PlanCode, PlanResult
from .blocks import ANSWER_INLINE_LIMIT, Blocks, _button, _context, _section
from .mrkdwn import clip, compose, mention, split, to_mrkdwn

REVISE_CALLBACK = "plan_revise"
CHANGES_MAX = 3000
_VERBS = {"approved": "Approved", "revised": "Revised", "cancelled": "Cancelled"}


def decided_line(decision: str, by: str, next_task: int = 0) -> str:
    """mrkdwn: who decided, and where the thread goes on."""
    mark = {"approved": "✅", "revised": "✏️", "cancelled": "✖️"}.get(decision, "•")
    line = compose(f"{mark} {_VERBS.get(decision, 'Decided')} by ", mention(by)) if by else f"{mark} Decided"
    if decision == "approved" and next_task:
        line += f" — task #{next_task} makes the changes."
    elif decision == "revised" and next_task:
        line += f" — task #{next_task} makes a revised plan."
    elif decision == "cancelled":
        line += " — nothing was changed."
    return line


def decided_blocks(task_id: int, plan: str, decision: str, by: str, next_task: int = 0) -> tuple[str, Blocks]:
    """The plan's message after its decision: the plan, who decided, no buttons."""
    body = to_mrkdwn(plan.strip())
    if len(body) > ANSWER_INLINE_LIMIT:
        body = clip(body, ANSWER_INLINE_LIMIT) + "\n…"
    line = decided_line(decision, by, next_task)
    blocks: Blocks = [_section(f"📋 *Plan of task #{task_id}*")]
    blocks += [_section(c) for c in (split(body) if body else [])][:45]
    blocks.append(_context(line))
    blocks.append({"type": "actions", "block_id": f"result_{task_id}",
                   "elements": [_button("task_transcript", "Transcript", task_id)]})
    return clip(line, 3000), blocks


def result_text(r: PlanResult, action: str = "") -> str:
    """What the presser is told (ephemeral) when the press did nothing."""
    n = f"#{r.task_id}"
    if r.code == PlanCode.DECIDED:
        if r.decision in _VERBS and r.by:
            return compose(f"The plan of task {n} was already {r.decision} by ", mention(r.by), ".")
        return f"The plan of task {n} was already decided."
    return {
        PlanCode.NOT_FOUND: f"There is no task {n} here.",
        PlanCode.NOT_A_PLAN: f"Task {n} has no plan waiting for approval.",
        PlanCode.SUPERSEDED: f"The thread went on after the plan of task {n}; it can no longer be {action or 'decided'}.",
    }.get(r.code, "")


def refused_text(requester: str, task_id: int) -> str:
    return compose("Only ", mention(requester), f" (who asked) or an admin can approve, revise or cancel the plan "
                                                f"of task #{task_id}.")


def revise_view(task_id: int, channel: str, message_ts: str) -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": REVISE_CALLBACK,
        "private_metadata": json.dumps({"task": task_id, "channel": channel, "ts": message_ts}),
        "title": {"type": "plain_text", "text": "Revise the plan"},
        "submit": {"type": "plain_text", "text": "Revise"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section(f"What should change in the plan of task #{task_id}? A new plan is made; nothing is edited "
                     "until a plan is approved."),
            {"type": "input", "block_id": "changes", "label": {"type": "plain_text", "text": "Changes"},
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True,
                         "max_length": CHANGES_MAX}},
        ],
    }
