"""A process's identity among the processes sharing the database, its lease, and the sweep that
finds processes that died.

A process renews its row every lease/6. One silent for half its lease (three missed renewals) is
presumed dead: any live process takes its row (compare-and-set, so exactly one does) and cleans
up after it, each process looking every lease/6; a dead worker's tasks are thereby told within
one lease. On this host a dead process is known at once (its pid is gone, or is another process
now), so a bot restarted after `kill -9` recovers without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Awaitable, Callable

from ..store import Coord, WorkerRow
from ..store.coord import silent

log = logging.getLogger(__name__)
GRACE = 0.5  # presumed dead after this share of its lease without a renewal
BEATS = 6  # renewals (and looks for the dead) per lease


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    """This process's PID namespace ("pid:[4026531836]"; "" when it cannot be told). Containers on
    one host share its boot id, and with host networking its hostname, but not their pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name before ")" may hold spaces


class Identity:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.boot = _boot_id()
        self.pid_ns = _pid_namespace()
        self.proc = f"{self.boot}/{self.pid_ns}/{_start_time(self.pid)}"
        self.id = ""
        self.renew_id()

    def renew_id(self) -> None:
        self.id = f"{self.host}:{self.pid}:{secrets.token_hex(3)}"

    def row(self, lease_s: float) -> WorkerRow:
        return WorkerRow(id=self.id, kind=self.kind, host=self.host, pid=self.pid, proc=self.proc, lease_s=lease_s)

    def surely_dead(self, row: WorkerRow) -> bool:
        """A process of this host (same boot) and of this PID namespace (its pid means the same here)
        whose pid is gone or belongs to another process now. Any other is left to its lease."""
        here = f"{self.boot}/{self.pid_ns}/"
        if row.host != self.host or not self.boot or not self.pid_ns or not row.proc.startswith(here):
            return False
        if row.id == self.id:
            return False
        return row.proc != f"{here}{_start_time(row.pid)}"


OnDead = Callable[[WorkerRow], Awaitable[None]]
OnLost = Callable[[], Awaitable[None]]


class WorkerRegistry:
    def __init__(self, coord: Coord, identity: Identity, *, lease_s: float, on_dead: OnDead,
                 on_lost: OnLost) -> None:
        self.coord = coord
        self.me = identity
        self.lease_s = lease_s
        self.on_dead = on_dead
        self.on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.me.id

    async def start(self) -> None:
        await self.coord.register(self.me.row(self.lease_s))
        await self.sweep()
        self._task = asyncio.create_task(self._beat(), name="worker-lease")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.coord.unregister(self.me.id)
        except Exception:
            log.exception("could not remove this worker's row; others will find it expired")

    async def live_ids(self) -> set[str]:
        return {row.id for row in await self.coord.workers()}

    async def sweep(self) -> int:
        """Cleans up after every process presumed dead; returns how many."""
        dead = [row for row in await self.coord.workers() if silent(row, GRACE) or self.me.surely_dead(row)]
        swept = 0
        for row in dead:
            if row.id == self.me.id or not await self.coord.take_dead(row):
                continue
            swept += 1
            log.warning("worker %s (%s) stopped renewing its lease: cleaning up after it", row.id, row.kind)
            try:
                await self.on_dead(row)
            except Exception:
                log.exception("cleaning up after worker %s failed", row.id)
        return swept

    async def _beat(self) -> None:
        interval = self.lease_s / BEATS
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.coord.heartbeat(self.me.id):
                    # Others presumed us dead (a long stall) and interrupted our tasks: drop them
                    # and go on under a new identity.
                    log.error("this worker's lease was taken over (a stall over %.0f s?)", self.lease_s * GRACE)
                    # The new id first: on_lost labels what this process starts from now on with it
                    # (a container labelled with the swept id is reaped by the next process starting).
                    self.me.renew_id()
                    await self.on_lost()
                    await self.coord.register(self.me.row(self.lease_s))
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing the lease failed; retrying")
