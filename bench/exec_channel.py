"""Per-command overhead in a sandbox: one `docker exec` per command against the persistent command
channel, `true` run N times each in the same container, on this machine, in one run.

    python bench/exec_channel.py [--runs 200] [--image slackbot-sandbox:latest]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slackbot.protocol import Mount  # noqa: E402
from slackbot.sandbox import DockerSandboxes  # noqa: E402
from slackbot.settings import Settings  # noqa: E402


async def timings(channel: bool, runs: int, image: str, workspace: Path) -> list[float]:
    settings = Settings(SLACKBOT_SANDBOX_IMAGE=image, SLACKBOT_COMMAND_CHANNEL=channel)
    provider = DockerSandboxes(settings, instance=f"bench-{'channel' if channel else 'exec'}")
    try:
        await provider.ping()
        box = await provider.start(task_id=1, mounts=(Mount(str(workspace), "/workspace"),))
        try:
            for _ in range(5):  # warm-up (the channel starts on the first command)
                await box.exec("true", timeout_s=30)
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                result = await box.exec("true", timeout_s=30)
                times.append(time.perf_counter() - started)
                assert result.exit_code == 0, result
            return times
        finally:
            await box.close()
    finally:
        await provider.reap()
        await provider.aclose()


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000


async def main(runs: int, image: str) -> None:
    with tempfile.TemporaryDirectory(prefix="slackbot-bench-") as tmp:
        Path(tmp).chmod(0o777)
        docker_exec = await timings(False, runs, image, Path(tmp))
        channel = await timings(True, runs, image, Path(tmp))
    print(f"`true` x {runs} in one container          p50 ms   p99 ms   mean ms")
    for name, xs in (("docker exec per command", docker_exec), ("persistent command channel", channel)):
        print(f"{name:<36} {pct(xs, 50):7.2f}  {pct(xs, 99):7.2f}  {statistics.mean(xs) * 1000:7.2f}")
    print(f"ratio (docker exec / channel, p50): {pct(docker_exec, 50) / pct(channel, 50):.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--image", default="slackbot-sandbox:latest")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.image))
