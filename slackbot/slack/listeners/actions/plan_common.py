"""What the plan buttons share: who pressed where, the permission check (the requester or an admin,
as for Stop), and the answer once the core has decided. Every press gets a visible reply."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ....runs.plan import PlanCode, PlanResult
from ....store import Task
from ...access import tell
from ...deps import Deps
from ...ids import parse_id
from ...intake import post_status_and_enqueue, reason
from ...mrkdwn import clip, escape
from ...plan_view import decided_blocks, refused_text, result_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Press:
    user: str
    channel: str
    message_ts: str
    thread_ts: str | None
    value: str
    shows: tuple[str, ...] | None = None  # the plan buttons' values on the pressed message (None: a form's)
    trigger_id: str = ""  # a button's (to open a form)

    @property
    def task_id(self) -> int | None:
        return parse_id(self.value)

    def ts_of(self, task_id: int) -> str:
        """The pressed message, when it is this plan's (its buttons carry the task): a forged press
        naming another message of the channel never has the bot rewrite it."""
        return self.message_ts if self.shows is None or str(task_id) in self.shows else ""


def read_press(body: dict[str, Any], action: dict[str, Any]) -> Press:
    message = body.get("message") or {}
    shows = tuple(str(e.get("value", "")) for b in message.get("blocks") or [] if isinstance(b, dict)
                  for e in b.get("elements") or [] if isinstance(e, dict)
                  and str(e.get("action_id", "")).startswith("plan_"))
    return Press(body["user"]["id"], (body.get("channel") or {}).get("id", ""), str(message.get("ts", "")),
                 message.get("thread_ts"), str(action.get("value", "")), shows, str(body.get("trigger_id", "")))


async def say_to(deps: Deps, press: Press, text: str) -> None:
    """To the presser alone."""
    await tell(deps, channel=press.channel, user=press.user, text=text, thread_ts=press.thread_ts)


async def allowed(deps: Deps, press: Press) -> Task | None:
    """The plan's task when the presser may decide on it; else they are told why, and None."""
    task_id = press.task_id
    task = await deps.store.get_task(task_id) if task_id is not None else None
    if task is None or task.id is None or task.channel != press.channel:  # (a forged value, another channel's)
        await say_to(deps, press, f"There is no task #{clip(escape(press.value.removeprefix('#')), 40)} here.")
        return None
    if press.user != task.requester and not await deps.is_admin(press.user):
        await say_to(deps, press, refused_text(task.requester, task.id))
        return None
    return task


async def answer(deps: Deps, press: Press, task: Task, result: PlanResult, action: str) -> None:
    """A task that goes on is posted and queued; a press that changed nothing is told why, and a
    message still showing buttons for a decided plan loses them."""
    if result.next is not None:
        await post_status_and_enqueue(deps, result.next)
        return
    if result.code == PlanCode.CANCELLED:
        return  # (the message says so: the renderer updates it)
    await say_to(deps, press, result_text(result, action))
    if result.code == PlanCode.DECIDED and result.decision and task.id is not None and press.ts_of(task.id):
        text, blocks = decided_blocks(task.id, task.answer, result.decision, result.by)
        deps.renderer.updater.submit(press.channel, press.message_ts, text, blocks, final=True)


async def failed(deps: Deps, press: Press, exc: Exception, action: str) -> None:
    log.exception("the plan's %s button failed", action)
    await say_to(deps, press, f"Sorry, I could not {action} the plan: {escape(reason(exc))}")


Decide = Callable[[Press, Task], Awaitable[None]]


def button(deps: Deps, verb: str, decide: Decide):
    """A plan button's listener (Bolt passes `ack`, `body`, `action` by name): acknowledged at once,
    the press checked (`allowed`), then `decide`; a failure is told to the presser (never silent)."""
    async def pressed(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        press = read_press(body, action)
        try:
            task = await allowed(deps, press)
            if task is not None and task.id is not None:
                await decide(press, task)
        except Exception as exc:  # never silent
            await failed(deps, press, exc, verb)
    return pressed
