"""What processes sharing one database tell each other: who is alive (worker rows and their
heartbeats), named coordination rows (the claim lock, the queue's change counter, the Slack output
lease and its cursor), and notifications (Postgres NOTIFY; readers on SQLite poll the rows).

Times are compared inside SQL against parameters from this process's clock: hosts sharing a
database need synchronised clocks (NTP), as leases everywhere do.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from .models import Coordination, WorkerRow, utcnow

if TYPE_CHECKING:
    from .store import Store

CHANNEL = "slackbot"  # the Postgres NOTIFY channel
CLAIM_LOCK = "claim-lock"
QUEUE = "queue"
OUTPUT = "slack-output"


def notify(s: Session, payload: str) -> None:
    """Sent when the session's transaction commits; nothing on SQLite (readers poll there)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})


def ensure_row(s: Session, name: str) -> None:
    if s.get(Coordination, name) is None:
        s.add(Coordination(name=name))
        try:
            s.commit()
        except IntegrityError:  # another process made it meanwhile
            s.rollback()


def lock_claims(s: Session) -> None:
    """Takes the installation-wide claim lock for the rest of the transaction: a write to one row,
    so on SQLite the transaction holds the database's write lock before it reads anything, and on
    Postgres concurrent claimers wait on the row lock. Limits are counted under it."""
    if not s.exec(update(Coordination).where(col(Coordination.name) == CLAIM_LOCK)
                  .values(counter=Coordination.counter + 1)).rowcount:
        ensure_row(s, CLAIM_LOCK)
        s.exec(update(Coordination).where(col(Coordination.name) == CLAIM_LOCK)
               .values(counter=Coordination.counter + 1))


def bump(s: Session, name: str) -> None:
    """Counts a change of `name` (pollers compare the counter) and announces it."""
    step = update(Coordination).where(col(Coordination.name) == name).values(counter=Coordination.counter + 1)
    if not s.exec(step).rowcount:  # (the migrations make the rows; this is for a database made otherwise)
        ensure_row(s, name)
        s.exec(step)
    notify(s, name)


def bump_queue(s: Session) -> None:
    """The queue changed (a task queued, or one ended and freed room)."""
    bump(s, QUEUE)


class Coord:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- workers ---------------------------------------------------------------------------

    async def register(self, row: WorkerRow) -> None:
        def fn(s: Session) -> None:
            s.add(row)
            s.commit()
        await self.store.run(fn)

    async def heartbeat(self, worker_id: str) -> bool:
        """Renews the worker's lease; False when its row is gone (others presumed it dead)."""
        def fn(s: Session) -> bool:
            changed = s.exec(update(WorkerRow).where(col(WorkerRow.id) == worker_id)
                             .values(seen_at=utcnow())).rowcount
            s.commit()
            return bool(changed)
        return await self.store.run(fn)

    async def unregister(self, worker_id: str) -> None:
        def fn(s: Session) -> None:
            s.exec(delete(WorkerRow).where(col(WorkerRow.id) == worker_id))
            s.commit()
        await self.store.run(fn)

    async def workers(self) -> list[WorkerRow]:
        return await self.store.run(lambda s: list(s.exec(select(WorkerRow)).all()))

    async def take_dead(self, row: WorkerRow) -> bool:
        """Removes a dead worker's row if it is unchanged since it was read: exactly one process
        cleans up after it, and a worker that was only slow and renewed meanwhile is left alone."""
        def fn(s: Session) -> bool:
            gone = s.exec(delete(WorkerRow).where(col(WorkerRow.id) == row.id, col(WorkerRow.seen_at) == row.seen_at)
                          ).rowcount
            s.commit()
            return bool(gone)
        return await self.store.run(fn)

    # ---- the queue's change counter --------------------------------------------------------

    async def queue_counter(self) -> int:
        def fn(s: Session) -> int:
            row = s.get(Coordination, QUEUE)
            return row.counter if row else 0
        return await self.store.run(fn)

    async def queue_changed(self) -> None:
        def fn(s: Session) -> None:
            bump_queue(s)
            s.commit()
        await self.store.run(fn)

    async def send(self, payload: str) -> None:
        def fn(s: Session) -> None:
            notify(s, payload)
            s.commit()
        await self.store.run(fn)

    # ---- leases (one holder at a time) -----------------------------------------------------

    async def hold(self, name: str, holder: str, lease_s: float) -> tuple[bool, int]:
        """Takes or renews the lease `name` for `holder` when free, expired or already held;
        returns whether it is held, and the row's counter (the Slack output's cursor)."""
        def fn(s: Session) -> tuple[bool, int]:
            ensure_row(s, name)
            now = utcnow()
            taken = s.exec(
                update(Coordination).where(col(Coordination.name) == name).where(
                    (col(Coordination.holder) == holder) | (col(Coordination.holder) == "")
                    | col(Coordination.until).is_(None) | (col(Coordination.until) < now))
                .values(holder=holder, until=now + timedelta(seconds=lease_s))).rowcount
            s.commit()
            row = s.get(Coordination, name)
            s.refresh(row)
            return bool(taken), row.counter if row else 0
        return await self.store.run(fn)

    async def advance(self, name: str, holder: str, counter: int, lease_s: float) -> bool:
        """Stores the holder's progress (and renews); False when the lease was lost meanwhile."""
        def fn(s: Session) -> bool:
            moved = s.exec(update(Coordination)
                           .where(col(Coordination.name) == name, col(Coordination.holder) == holder)
                           .values(counter=counter, until=utcnow() + timedelta(seconds=lease_s))).rowcount
            s.commit()
            return bool(moved)
        return await self.store.run(fn)

    async def release(self, name: str, holder: str) -> None:
        def fn(s: Session) -> None:
            s.exec(update(Coordination).where(col(Coordination.name) == name, col(Coordination.holder) == holder)
                   .values(holder="", until=None))
            s.commit()
        await self.store.run(fn)


def silent(row: WorkerRow, grace: float) -> bool:
    """The worker has not renewed its lease for longer than `grace` × the lease."""
    return _older(row.seen_at, utcnow() - timedelta(seconds=row.lease_s * grace))


def _older(seen: datetime, limit: datetime) -> bool:
    """Compares a stored time (naive UTC on SQLite and in Postgres `timestamp` columns) with an aware one."""
    if seen.tzinfo is None:
        limit = limit.replace(tzinfo=None)
    return seen < limit
