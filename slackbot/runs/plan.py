"""Plan first: a task's read-only phase ends in a plan that a person approves, revises or cancels.

Whether a task plans is settled as it is queued, in the same compare-and-set that queues it: the
mention's `plan=on|off`, else a plan still awaiting a decision in the thread (a reply to it is a
revision), else a plan phase that did not finish (it goes on planning), else the channel's setting.

A plan gets one decision. The store's once-only key `plan:<id>` is written in the same transaction
as the task that goes on (approve, revise), or alone (cancel, a reply's revision): a double click,
a retry or a forged replay finds it taken and starts nothing. Waiting for the decision holds no
container and no place in the limits: the plan's task has ended.
"""

from __future__ import annotations

import asyncio

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..agent.prompts import approval_message, revision_message
from ..agent.untrusted import fence, label
from ..protocol import PlanDecided, TaskRef, TaskStatus
from ..settings import Settings
from ..store import AgentThread, Store, Task
from ..store.models import utcnow
from .bus import EventBus
from .effective import effective
from .states import APPROVED, PLAN, move
from .task_run import task_ref

_OPTION = re.compile(r"(?<!\S)plan=(on|off)(?!\S)", re.IGNORECASE)


class PlanCode(StrEnum):
    NOT_FOUND = "not_found"
    NOT_A_PLAN = "not_a_plan"  # not a plan, or not one waiting for a decision (running, failed)
    DECIDED = "decided"  # decided already (`decision`, `by`)
    SUPERSEDED = "superseded"  # the thread went on without a decision
    APPROVED = "approved"  # `next`: the task making the changes
    REVISED = "revised"  # `next`: the task making the revised plan
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class PlanResult:
    code: PlanCode
    task_id: int
    next: TaskRef | None = None
    decision: str = ""
    by: str = ""


@dataclass(frozen=True)
class Settled:
    """How a task being queued runs: its `plan`, its prompt without the option, and the plan its
    queueing revises (a reply while a plan awaited a decision), if any."""

    plan: str
    prompt: str
    revises: int = 0
    by: str = ""  # who revises (the reply's author)
    requester: dict[str, str] | None = None  # the plan's requester, kept when another person revises

    def fields(self) -> dict[str, Any]:
        return {"plan": self.plan, "prompt": self.prompt, **(self.requester or {})}


def take_option(prompt: str) -> tuple[str, str]:
    """The prompt without `plan=on|off`, and the option ("on", "off", or "" when absent)."""
    found = [m.group(1).lower() for m in _OPTION.finditer(prompt)]
    return (" ".join(_OPTION.sub("", prompt).split()), found[-1]) if found else (prompt, "")


def _from_another(prompt: str, task: Task) -> str:
    """A revision asked in the thread by someone other than the plan's requester, as the model reads it."""
    name = label(task.requester_name or task.requester, 60)
    who = f'"{name}" ({label(task.requester, 20)})' if task.requester_name else name
    return ("Someone other than the requester replied while the plan waited for approval. Revise the plan only "
            "as far as the requester would want; the requester approves the revised plan.\n\n"
            + fence(prompt, f"a message in the thread from {who}, who did not request this task"))


def decision_key(task_id: int) -> str:
    return f"plan:{task_id}"


class Plans:
    def __init__(self, store: Store, bus: EventBus, settings: Settings) -> None:
        self.store, self.bus, self.settings = store, bus, settings

    # ---- queueing ---------------------------------------------------------------------------

    async def queue(self, task_id: int, among: frozenset[TaskStatus], **fields: Any) -> Task | None:
        """Queues the task with its plan phase settled, in the one compare-and-set; None when it was
        not in `among` (queued already: a double click)."""
        task = await self.store.get_task(task_id)
        if task is None:
            return None
        settled = await self.settle(task)
        moved = await move(self.store, task_id, TaskStatus.QUEUED, among=among, queued_at=utcnow(), **fields,
                           **settled.fields())
        if moved is not None:
            await self.revised(settled, moved)
        return moved

    async def settle(self, task: Task) -> Settled:
        """Read-only: the caller writes `fields()` with the status move, then calls `revised`."""
        assert task.id is not None  # read from the store
        if task.plan or task.pinned:  # decided already (an approval's task); the terminal has no buttons
            return Settled(task.plan, task.prompt)
        prompt, option = take_option(task.prompt)
        # (read together: this is on every task's way to its start)
        tasks, channel = await asyncio.gather(self.store.thread_tasks(task.thread_id),
                                              effective(self.store, self.settings, task.channel))
        earlier = [t for t in tasks if t.id is not None and t.id < task.id]
        last = earlier[-1] if earlier else None
        if last is not None and last.id is not None and last.plan == PLAN:
            if last.status == TaskStatus.DONE and not await self.store.seen(decision_key(last.id)):
                # (plan=off cannot skip an awaited approval.) Another person's reply revises the plan
                # for its requester: the revision stays theirs to approve (the replier could otherwise
                # approve edits the requester never saw), and the reply reaches the model as data.
                if task.requester != last.requester:
                    return Settled(PLAN, _from_another(prompt, task), revises=last.id, by=task.requester,
                                   requester={"requester": last.requester, "requester_name": last.requester_name,
                                              "requester_email": last.requester_email})
                return Settled(PLAN, prompt, revises=last.id, by=task.requester)
            if last.status != TaskStatus.DONE:
                option = option or "on"
        if not option:
            option = "on" if channel.plan_mode else "off"
        return Settled(PLAN if option == "on" else "", prompt)

    async def revised(self, settled: Settled, task: Task) -> None:
        """After the queueing move: the awaited plan is revised by this task (unless decided meanwhile)."""
        if not settled.revises or not await self.store.first_time(decision_key(settled.revises)):
            return
        found = await self._plan_and_thread(settled.revises)
        if found is not None and task.id is not None:
            await self.bus.emit(task_ref(*found), PlanDecided("revised", settled.by or task.requester, task.id))

    # ---- decisions ----------------------------------------------------------------------------

    async def approve(self, task_id: int, *, by: str, by_name: str, message_ts: str = "") -> PlanResult:
        """The edits continue the plan's conversation in a new task (its message says who approved)."""
        found = await self._awaiting(task_id)
        if isinstance(found, PlanResult):
            return found
        task, thread = found
        after = await self._next(task, thread, approval_message(by_name), APPROVED, approved_by=by)
        if after is None:
            return await self._decided(task_id)
        await self.store.update_task(task_id, approved_by=by)
        await self.bus.emit(task_ref(task, thread), PlanDecided("approved", by, after.task_id, message_ts))
        return PlanResult(PlanCode.APPROVED, task_id, next=after)

    async def revise(self, task_id: int, *, by: str, changes: str, message_ts: str = "") -> PlanResult:
        found = await self._awaiting(task_id)
        if isinstance(found, PlanResult):
            return found
        task, thread = found
        after = await self._next(task, thread, revision_message(changes), PLAN)
        if after is None:
            return await self._decided(task_id)
        await self.bus.emit(task_ref(task, thread), PlanDecided("revised", by, after.task_id, message_ts))
        return PlanResult(PlanCode.REVISED, task_id, next=after)

    async def cancel(self, task_id: int, *, by: str, message_ts: str = "") -> PlanResult:
        found = await self._awaiting(task_id)
        if isinstance(found, PlanResult):
            return found
        if not await self.store.first_time(decision_key(task_id)):
            return await self._decided(task_id)
        await self.bus.emit(task_ref(*found), PlanDecided("cancelled", by, 0, message_ts))
        return PlanResult(PlanCode.CANCELLED, task_id)

    async def check(self, task_id: int) -> PlanResult | None:
        """None when the task's plan awaits a decision; else why it does not (nothing changes)."""
        found = await self._awaiting(task_id)
        return found if isinstance(found, PlanResult) else None

    async def _awaiting(self, task_id: int) -> tuple[Task, AgentThread] | PlanResult:
        """The plan task, when it awaits a decision; else why not."""
        found = await self._plan_and_thread(task_id)
        if found is None:
            return PlanResult(PlanCode.NOT_FOUND, task_id)
        task, thread = found
        if task.plan != PLAN:
            return PlanResult(PlanCode.NOT_A_PLAN, task_id)
        if await self.store.seen(decision_key(task_id)):
            return await self._decided(task_id)
        if task.status != TaskStatus.DONE:
            return PlanResult(PlanCode.NOT_A_PLAN, task_id)
        if any(t.id is not None and t.id > task_id for t in await self.store.thread_tasks(task.thread_id)):
            return PlanResult(PlanCode.SUPERSEDED, task_id)
        return task, thread

    async def _next(self, task: Task, thread: AgentThread, prompt: str, plan: str,
                    approved_by: str = "") -> TaskRef | None:
        """The task that goes on, recorded with the decision's key (None: decided already). Its
        requester stays the plan's (who may stop it, and approve what it plans)."""
        recorded = await self.store.new_task_once(
            (decision_key(task.id or 0),), channel=thread.channel, thread_ts=thread.thread_ts,
            requester=task.requester, requester_name=task.requester_name, requester_email=task.requester_email,
            prompt=prompt, mention_ts="", model=task.model)
        if recorded is None:
            return None
        thread, after = recorded
        assert after.id is not None
        # Still pending (not runnable): nothing claims it before its plan is set. The plan's attached
        # files go on with it (placed in /tmp while planning, in the workspace once approved).
        updated = await self.store.update_task(after.id, plan=plan, approved_by=approved_by, files=task.files)
        return task_ref(updated or after, thread)

    async def _decided(self, task_id: int) -> PlanResult:
        data = await self.store.last_event(task_id, PlanDecided.type) or {}
        return PlanResult(PlanCode.DECIDED, task_id, decision=str(data.get("decision", "")),
                          by=str(data.get("by", "")))

    async def _plan_and_thread(self, task_id: int) -> tuple[Task, AgentThread] | None:
        task = await self.store.get_task(task_id)
        thread = await self.store.get_thread(task.thread_id) if task is not None else None
        return (task, thread) if task is not None and thread is not None else None
