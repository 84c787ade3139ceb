"""The writes an agent step makes, taken off its path: in order, a failing one logged and passed over,
`flush` waiting for all of them, `close` dropping what is left."""

from __future__ import annotations

import asyncio

from slackbot.runs.write_behind import WriteBehind


async def test_writes_run_in_order_and_flush_waits_for_them(caplog):
    done: list[int] = []
    writes = WriteBehind("t")

    def write(n: int, delay: float = 0.0, fail: bool = False):
        async def go() -> None:
            await asyncio.sleep(delay)
            if fail:
                raise RuntimeError(f"write {n} failed")
            done.append(n)
        return go

    for n in range(5):
        writes.put(write(n, delay=0.01 * (5 - n), fail=n == 2))  # later ones are quicker: order still holds
    assert done == []  # nothing waited for by the one who put them
    await writes.flush()
    assert done == [0, 1, 3, 4]
    assert "write 2 failed" in caplog.text
    await writes.flush()  # nothing pending: returns at once

    writes.put(write(9, delay=10))
    await asyncio.sleep(0.01)
    await writes.close()  # a task taken over by another process: what is left is dropped
    assert 9 not in done
