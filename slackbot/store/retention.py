"""Retention: a thread whose last task ended more than the kept days ago loses its transcripts (the
tasks' events and patches) and its model history; the thread keeps a short summary (each request and
its answer), so a later follow-up still knows what happened, and the tasks keep their answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from .models import AgentThread, EventRow, HistoryRow, PatchRow, Task
from .store import Store

FINAL = ("done", "failed", "stopped", "interrupted")
BATCH = 200  # threads per pass: one pass stays short whatever has piled up
REQUEST_CHARS, ANSWER_CHARS = 300, 1000


async def forget_before(store: Store, cutoff: datetime) -> int:
    """Forgets the threads idle since before `cutoff` that still have something to forget; returns how many."""
    def fn(s: Session) -> int:
        last = (select(Task.thread_id, func.max(Task.finished_at).label("last"))
                .group_by(col(Task.thread_id)).subquery())
        busy = select(Task.thread_id).where(col(Task.status).not_in(FINAL))
        kept = select(EventRow.task_id).union(select(PatchRow.task_id)).subquery()
        with_rows = (select(Task.thread_id).where(col(Task.id).in_(select(kept.c.task_id)))
                     .union(select(HistoryRow.thread_id)))
        ids = list(s.exec(select(last.c.thread_id).where(last.c.last < cutoff, last.c.thread_id.not_in(busy),
                                                         last.c.thread_id.in_(with_rows)).limit(BATCH)).all())
        for thread_id in ids:
            _forget(s, thread_id)
        s.commit()
        return len(ids)
    return await store.run(fn)


def _forget(s: Session, thread_id: int) -> None:
    thread = s.get(AgentThread, thread_id)
    if thread is None:
        return
    tasks = list(s.exec(select(Task).where(Task.thread_id == thread_id).order_by(col(Task.id))).all())
    task_ids = [t.id for t in tasks]
    upto = s.exec(select(func.max(HistoryRow.id)).where(HistoryRow.thread_id == thread_id)).one()
    if upto is not None:
        recap = "\n".join(f"- #{t.id} asked: {_cut(t.prompt, REQUEST_CHARS)}\n  answer ({t.status}): "
                          f"{_cut(t.answer, ANSWER_CHARS) or '(none)'}" for t in tasks)
        earlier = f"{thread.summary}\n\n" if thread.summary else ""
        thread.summary = f"{earlier}The transcripts of these tasks were deleted (retention):\n{recap}"
        thread.summary_upto = upto
        s.add(thread)
        s.exec(delete(HistoryRow).where(col(HistoryRow.thread_id) == thread_id))
    s.exec(delete(EventRow).where(col(EventRow.task_id).in_(task_ids)))
    s.exec(delete(PatchRow).where(col(PatchRow.task_id).in_(task_ids)))


def _cut(text: str, most: int) -> str:
    one = " ".join((text or "").split())
    return one if len(one) <= most else one[:most - 1] + "…"
