"""Wake-ups between processes: a queued task, a Stop, a new event.

On Postgres one connection LISTENs and wakes the waiters at once; on SQLite (or while that
connection is down) waiters poll the database at a short interval instead. A process's own
changes wake its waiters directly (`local`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)
POLL_S = 0.25  # how often waiters look when nothing tells them
LISTEN_FALLBACK_S = 2.0  # with LISTEN working, a look now and then for what a lost notice missed
CHANNEL = "slackbot"
KINDS = ("queue", "stop", "event")


class Signals:
    def __init__(self, db_url: str, *, poll_s: float = POLL_S) -> None:
        self.db_url = db_url
        self.poll_s = poll_s
        self._waiters: dict[str, list[Waiter]] = {kind: [] for kind in KINDS}
        self.listening = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.db_url.startswith("postgresql"):
            self._task = asyncio.create_task(self._listen(), name="db-listen")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def waiter(self, kind: str, *, poll_s: float | None = None) -> Waiter:
        """One loop's own wake-up for `kind` (each loop its own, so none takes another's)."""
        w = Waiter(self, poll_s or self.poll_s)
        self._waiters[kind].append(w)
        return w

    def local(self, kind: str) -> None:
        for w in self._waiters[kind]:
            w.event.set()

    async def _listen(self) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        conninfo = make_url(self.db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 1.0
        while True:
            try:
                conn: Any = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening, delay = True, 1.0
                    for kind in KINDS:  # what was sent while not listening
                        self.local(kind)
                    async for notice in conn.notifies():
                        kind = notice.payload.split(":", 1)[0]
                        if kind in self._waiters:
                            self.local(kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for database notices failed (%s); polling meanwhile", exc)
            self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


class Waiter:
    def __init__(self, signals: Signals, poll_s: float) -> None:
        self.signals = signals
        self.poll_s = poll_s
        self.event = asyncio.Event()

    async def wait(self) -> bool:
        """Returns when signalled (True), or after the polling interval (False; longer while LISTEN
        works). Callers then look at the database either way."""
        timeout = LISTEN_FALLBACK_S if self.signals.listening else self.poll_s
        signalled = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                signalled = await self.event.wait()
        self.event.clear()
        return signalled
