"""Prints what a sandbox costs: container create+start, and the round trip of one `exec`.

Usage: python bench/sandbox_overhead.py [--runs N] [--image IMAGE]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from slackbot.sandbox import DockerSandboxes
from slackbot.settings import Settings


async def main(runs: int, image: str) -> None:
    settings = Settings(sandbox_image=image)
    provider = DockerSandboxes(settings, instance="bench")
    with tempfile.TemporaryDirectory(prefix="slackbot-bench-") as tmp:
        try:
            await provider.ping()  # the client's first call asks the engine its version: not part of the figures
            starts, closes, execs = [], [], []
            for i in range(max(3, runs // 10)):
                t0 = time.perf_counter()
                box = await provider.start(task_id=i, workspace=Path(tmp))
                starts.append(time.perf_counter() - t0)
                if i == 0:
                    await box.exec("true", timeout_s=30)  # warm-up
                    for _ in range(runs):
                        t1 = time.perf_counter()
                        result = await box.exec("true", timeout_s=30)
                        execs.append(time.perf_counter() - t1)
                        assert result.exit_code == 0, result
                t2 = time.perf_counter()
                await box.close()
                closes.append(time.perf_counter() - t2)
        finally:
            await provider.reap()
            await provider.aclose()
    print(f"container create+start: {ms(starts)}")
    print(f"exec `true` round trip: {ms(execs)}")
    print(f"container remove:       {ms(closes)}")


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f}, n={len(xs)})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--image", default="slackbot-sandbox:latest")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.image))
