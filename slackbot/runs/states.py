"""The one owner of task status: which moves are allowed, made as compare-and-set on the store.

Every status change in the code base goes through `move`; the store refuses any other writer.
"""

from __future__ import annotations

from typing import Any

from ..protocol import FINAL_STATUSES, TaskStatus
from ..store import Store, Task

S = TaskStatus
ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.QUEUED, S.STOPPED}),
    S.CHOOSING: frozenset({S.PENDING, S.QUEUED, S.STOPPED}),
    # A queued task pinned to a worker that died is interrupted; claims move it to running.
    S.QUEUED: frozenset({S.RUNNING, S.STOPPED, S.INTERRUPTED}),
    S.RUNNING: frozenset({S.DONE, S.FAILED, S.STOPPED, S.INTERRUPTED}),
    **{final: frozenset() for final in FINAL_STATUSES},
}
ACTIVE = frozenset({S.PENDING, S.CHOOSING, S.QUEUED, S.RUNNING})  # a thread with one is busy
WAITING = frozenset({S.PENDING, S.CHOOSING, S.QUEUED})  # not yet claimed by a worker
# A task's `plan` (plan first, runs/plan.py): "" edits at once; PLAN a read-only phase ending in a
# plan; APPROVED the edits after approval.
PLAN, APPROVED = "plan", "approved"


def sources(to: TaskStatus, among: frozenset[TaskStatus] | None = None) -> tuple[TaskStatus, ...]:
    """The statuses a task may move to `to` from (restricted to `among`)."""
    return tuple(sorted(f for f, targets in ALLOWED.items() if to in targets and (among is None or f in among)))


async def move(store: Store, task_id: int, to: TaskStatus, *, among: frozenset[TaskStatus] | None = None,
               of_worker: str | None = None, **fields: Any) -> Task | None:
    """Moves the task to `to` if its status allows (and, with `of_worker`, it is that worker's);
    returns the task after the move, or None when it was elsewhere (someone moved it first).
    Moves that free room or add work tell waiting workers."""
    froms = sources(to, among)
    if not froms:
        raise ValueError(f"no task may move to {to} from {sorted(among or ())}")
    changes_queue = to == S.QUEUED or (S.RUNNING in froms and to.final)
    return await store.transition(task_id, froms, of_worker=of_worker, queue_changed=changes_queue,
                                  status=to.value, **fields)
