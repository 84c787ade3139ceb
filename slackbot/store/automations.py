"""Automations and their runs. A change bumps the `automations` coordination counter, which every
process's scheduler watches; a firing is claimed by inserting its unique (automation, key) row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from .coord import bump
from .models import Automation, AutomationRun, Coordination, Task, utcnow
from .store import Store

CHANGES = "automations"


@dataclass(frozen=True)
class RunCap:
    """At most `limit` runs caused by `causes` since `since`."""

    limit: int
    since: datetime
    causes: tuple[str, ...]


class RunCapReached(Exception):
    pass


class AutomationStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, automation: Automation) -> Automation:
        def fn(s: Session) -> Automation:
            s.add(automation)
            bump(s, CHANGES)
            s.commit()
            s.refresh(automation)
            return automation
        return await self.store.run(fn)

    async def get(self, automation_id: int) -> Automation | None:
        return await self.store.run(lambda s: s.get(Automation, automation_id))

    async def in_channel(self, channel: str) -> list[Automation]:
        return await self.store.run(lambda s: list(s.exec(
            select(Automation).where(Automation.channel == channel).order_by(col(Automation.id))).all()))

    async def enabled(self, trigger: str) -> list[Automation]:
        return await self.store.run(lambda s: list(s.exec(
            select(Automation).where(Automation.trigger == trigger, col(Automation.enabled).is_(True))).all()))

    async def in_watch(self, channel: str) -> list[Automation]:
        """Every message automation watching `channel`, paused ones included."""
        return await self.store.run(lambda s: list(s.exec(
            select(Automation).where(Automation.trigger == "message", Automation.watch_channel == channel)).all()))

    async def update(self, automation_id: int, **fields: Any) -> Automation | None:
        def fn(s: Session) -> Automation | None:
            row = s.get(Automation, automation_id)
            if row is None:
                return None
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.add(row)
            bump(s, CHANGES)
            s.commit()
            s.refresh(row)
            return row
        return await self.store.run(fn)

    async def delete(self, automation_id: int) -> bool:
        """The automation goes; its runs stay (the digest and old threads refer to them)."""
        def fn(s: Session) -> bool:
            gone = s.exec(delete(Automation).where(col(Automation.id) == automation_id)).rowcount
            bump(s, CHANGES)
            s.commit()
            return bool(gone)
        return await self.store.run(fn)

    async def changes(self) -> int:
        def fn(s: Session) -> int:
            row = s.get(Coordination, CHANGES)
            return row.counter if row else 0
        return await self.store.run(fn)

    # ---- runs ------------------------------------------------------------------------------

    async def claim(self, automation_id: int, fire_key: str, cause: str, *, fire_at: datetime | None = None,
                    cap: RunCap | None = None) -> AutomationRun | None:
        """The run for `fire_key`, numbered; None when another process (or an earlier delivery)
        claimed that key already, or the automation is gone. `fire_at`: a scheduled time, which
        becomes the automation's latest (catch-up looks from there). `cap`: RunCapReached when the
        automation has that many runs already (counted under the automation row's lock)."""
        def fn(s: Session) -> AutomationRun | None:
            # The row's lock first (a write): concurrent claims of one automation queue here, so
            # the count below and the insert are one step for each of them.
            s.exec(update(Automation).where(col(Automation.id) == automation_id).values(runs=Automation.runs))
            row = s.get(Automation, automation_id)
            if row is None:
                return None
            if cap is not None and s.exec(select(func.count()).select_from(AutomationRun).where(
                    AutomationRun.automation_id == automation_id, col(AutomationRun.created_at) >= cap.since,
                    col(AutomationRun.cause).in_(cap.causes))).one() >= cap.limit:
                s.rollback()
                raise RunCapReached(automation_id)
            run = AutomationRun(automation_id=automation_id, fire_key=fire_key, cause=cause, channel=row.channel)
            s.add(run)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                return None
            # Numbered under the row's update lock: two claims of different keys never share a number.
            s.exec(update(Automation).where(col(Automation.id) == automation_id).values(runs=Automation.runs + 1))
            if fire_at is not None:
                s.exec(update(Automation).where(col(Automation.id) == automation_id)
                       .where((col(Automation.last_fire_at).is_(None)) | (col(Automation.last_fire_at) < fire_at))
                       .values(last_fire_at=fire_at))
            s.flush()
            s.refresh(row)
            run.number = row.runs
            s.add(run)
            s.commit()
            s.refresh(run)
            return run
        return await self.store.run(fn)

    async def skip_to(self, automation_id: int, fire_at: datetime) -> None:
        """Missed times are skipped: catch-up looks only after `fire_at` from now on."""
        def fn(s: Session) -> None:
            s.exec(update(Automation).where(col(Automation.id) == automation_id).values(last_fire_at=fire_at))
            s.commit()
        await self.store.run(fn)

    async def set_run(self, run_id: int, **fields: Any) -> None:
        def fn(s: Session) -> None:
            s.exec(update(AutomationRun).where(col(AutomationRun.id) == run_id).values(**fields))
            s.commit()
        await self.store.run(fn)

    async def recent_runs(self, automation_id: int, limit: int = 5) -> list[tuple[AutomationRun, Task | None]]:
        def fn(s: Session) -> list[tuple[AutomationRun, Task | None]]:
            runs = s.exec(select(AutomationRun).where(AutomationRun.automation_id == automation_id)
                          .order_by(col(AutomationRun.id).desc()).limit(limit)).all()
            return [(r, s.get(Task, r.task_id) if r.task_id else None) for r in runs]
        return await self.store.run(fn)

    async def run_of_task(self, task_id: int) -> tuple[AutomationRun, Automation | None] | None:
        def fn(s: Session) -> tuple[AutomationRun, Automation | None] | None:
            run = s.exec(select(AutomationRun).where(AutomationRun.task_id == task_id)).first()
            return (run, s.get(Automation, run.automation_id)) if run else None
        return await self.store.run(fn)
