"""Read-only queries for reports (the daily digest): what a channel's tasks and automations came to.

Terminal tasks (`slackbot exec`, `pinned` set) belong to the person at the terminal, never to a
channel's report. Times are compared in UTC; SQLite hands back naive datetimes, which are UTC.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from ..protocol import FINAL_STATUSES, TaskStatus
from .models import AgentThread, Automation, AutomationRun, Task
from .store import Store

FINAL = [str(s) for s in FINAL_STATUSES]
ACTIVE = [TaskStatus.RUNNING.value, TaskStatus.QUEUED.value]


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive ones, as SQLite returns them, are UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class Reports:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def channels_with_activity(self, since: datetime, until: datetime) -> list[str]:
        """Channels with a task finished in [since, until) or one running or queued now."""
        since, until = as_utc(since), as_utc(until)
        finished = and_(col(Task.status).in_(FINAL), col(Task.finished_at) >= since, col(Task.finished_at) < until)
        q = (select(Task.channel).distinct()
             .where(Task.pinned == "", or_(finished, col(Task.status).in_(ACTIVE))).order_by(col(Task.channel)))
        return await self.store.run(lambda s: list(s.exec(q).all()))

    async def finished(self, channel: str, since: datetime, until: datetime) -> list[tuple[Task, AgentThread]]:
        """Tasks that ended in [since, until), in the order they ended."""
        since, until = as_utc(since), as_utc(until)
        q = (select(Task, AgentThread).where(Task.thread_id == AgentThread.id, Task.channel == channel,
                                             Task.pinned == "", col(Task.status).in_(FINAL),
                                             col(Task.finished_at) >= since, col(Task.finished_at) < until)
             .order_by(col(Task.finished_at), col(Task.id)))
        return await self.store.run(lambda s: [(t, th) for t, th in s.exec(q).all()])

    async def active(self, channel: str) -> list[tuple[Task, AgentThread]]:
        """Tasks running or queued now, oldest first."""
        q = (select(Task, AgentThread).where(Task.thread_id == AgentThread.id, Task.channel == channel,
                                             Task.pinned == "", col(Task.status).in_(ACTIVE))
             .order_by(col(Task.id)))
        return await self.store.run(lambda s: [(t, th) for t, th in s.exec(q).all()])

    async def daily_outcomes(self, channel: str, days: list[date], tz: ZoneInfo) -> dict[date, dict[str, int]]:
        """Per local day (in `tz`), the number of tasks that ended then, by status. Every day asked
        for is present; days without tasks map to {}."""
        if not days:
            return {}
        since = as_utc(datetime.combine(min(days), time(), tz))
        until = as_utc(datetime.combine(max(days) + timedelta(days=1), time(), tz))
        q = select(Task.status, Task.finished_at).where(
            Task.channel == channel, Task.pinned == "", col(Task.status).in_(FINAL),
            col(Task.finished_at) >= since, col(Task.finished_at) < until)
        rows = await self.store.run(lambda s: list(s.exec(q).all()))
        counts: dict[date, dict[str, int]] = {d: defaultdict(int) for d in days}
        for status, finished_at in rows:
            day = as_utc(finished_at).astimezone(tz).date() if finished_at else None
            if day in counts:
                counts[day][status] += 1
        return {d: dict(c) for d, c in counts.items()}

    async def automation_runs(self, channel: str, since: datetime,
                              until: datetime) -> list[tuple[AutomationRun, Automation, Task | None]]:
        """Automation runs fired in [since, until) that were posted in the channel (a run that never
        posted counts for its automation's channel), with their task when one started."""
        since, until = as_utc(since), as_utc(until)
        q = (select(AutomationRun, Automation, Task)
             .join(Automation, col(Automation.id) == col(AutomationRun.automation_id))
             .outerjoin(Task, col(Task.id) == col(AutomationRun.task_id))
             .where(or_(col(AutomationRun.channel) == channel,
                        and_(col(AutomationRun.channel) == "", col(Automation.channel) == channel)),
                    col(AutomationRun.created_at) >= since, col(AutomationRun.created_at) < until)
             .order_by(col(AutomationRun.created_at), col(AutomationRun.id)))
        return await self.store.run(lambda s: [(r, a, t) for r, a, t in s.exec(q).all()])

    async def automation_names(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        def fn(s: Session) -> dict[int, str]:
            rows = s.exec(select(Automation.id, Automation.name).where(col(Automation.id).in_(ids))).all()
            return {i: name for i, name in rows if i is not None}
        return await self.store.run(fn)
