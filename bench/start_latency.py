"""Task start: mention → the agent's first command running in its sandbox, cold container vs warm pool,
for scratch threads and new threads on generated repositories (2,000 files, and a large one). The real
bot against the fakes and a real Docker engine; the scripted model answers at once.

    python bench/start_latency.py [--runs 5] [--files 2000] [--large 50000]   (0: without that repository)

The first command is `date +%s.%N`: the container's clock is the host's, so its output is the moment
the command ran. "first thread" clones the mirror too (a repository nobody used yet); "new thread"
fetches it. Between runs the pool is given time to refill, as between people's mentions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slackbot.app import Bot  # noqa: E402
from slackbot.settings import Settings  # noqa: E402
from tests.fakes import FakeSlack, ScriptedModel, shell, text  # noqa: E402
from tests.helpers import output_of, wait_final  # noqa: E402


def make_repo(tmp: Path, files: int) -> Path:
    work, remote = tmp / f"seed-{files}", tmp / f"remote-{files}.git"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for n in range(files):
        folder = work / f"pkg{n % 200}" / f"mod{n % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{n}.py").write_text(f"x = {n}\n" * 50)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "seed"],
                   check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    subprocess.run(["git", "-C", str(remote), "repack", "-adq"], check=True)  # as a network clone leaves it
    return remote


class Starts:
    def __init__(self, bot: Bot, slack: FakeSlack, model: ScriptedModel) -> None:
        self.bot, self.slack, self.model, self.n = bot, slack, model, 0

    async def one(self, prefix: str, channel: str) -> float:
        self.n += 1
        marker = f"start-{self.n:03d}-"
        self.model.script_for(marker, [shell("date +%s.%N"), text("ok")])
        await self.refilled()
        channel = f"{channel}{self.n:03d}"  # (posts in one channel are paced at one a second, as Slack asks)
        payload, ts = self.slack.mention(channel, "U1", f"<@UBOT> {prefix}{marker}")
        sent = time.time()
        await self.slack.wait_ack(await self.slack.socket_send("events_api", payload))
        final = await wait_final(self.slack, channel, ts, timeout=600)
        asked = [r for r in self.model.requests if marker in str(r.body.get("messages"))]
        if len(asked) < 2:
            raise SystemExit(f"{prefix}{marker}: the task ended before its first command: {final.get('text')}")
        second = asked[1]
        ran = float(output_of(second.body["messages"][-1]["content"]).strip())
        return ran - sent

    async def refilled(self) -> None:
        sandboxes = self.bot.sandboxes
        deadline = time.monotonic() + 30
        while (not sandboxes.pool.off and sandboxes.pool.ready(sandboxes.shape()) < sandboxes.pool.size
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the previous task's finishing settles


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} {min(values) * 1000:7.0f} {max(values) * 1000:7.0f}"


async def measure(tmp: Path, pool: int, runs: int, repos: dict[str, Path]) -> dict[str, list[float]]:
    async with FakeSlack() as slack:
        model = ScriptedModel()
        await model.start()
        settings = Settings(SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN=slack.app_token,
                            SLACK_API_URL=slack.api_url, OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="bench",
                            SLACKBOT_MODEL="bench", SLACKBOT_DATA_DIR=str(tmp / f"data-{pool}"),
                            SLACKBOT_ADMINS="U1", SLACKBOT_WARM_POOL=pool)
        rows: dict[str, list[float]] = {}
        try:
            async with Bot(settings, port=0) as bot:
                await slack.wait_socket_connected()
                starts = Starts(bot, slack, model)
                rows["scratch thread"] = [await starts.one("", "C8") for _ in range(runs)]
                for name, remote in repos.items():
                    rows[f"{name}, first thread"] = [await starts.one(f"repo={remote} ", "C9")]
                    rows[f"{name}, new thread"] = [await starts.one(f"repo={remote} ", "C9") for _ in range(runs)]
        finally:
            await model.stop()
    return rows


async def main(runs: int, files: int, large: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        made = time.monotonic()
        repos = {f"{files:,}-file repository": make_repo(tmp, files)} if files else {}
        if large:
            repos[f"{large:,}-file repository"] = make_repo(tmp, large)
        print(f"(repositories generated in {time.monotonic() - made:.0f} s)")
        cold = await measure(tmp, 0, runs, repos)
        warm = await measure(tmp, 2, runs, repos)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    print(f"\nmention → first command, ms (median, min, max); {os.cpu_count()} CPUs, {cpu}")
    print(f"{'':44} {'cold (SLACKBOT_WARM_POOL=0)':>24}   {'warm pool (2)':>24}   ratio")
    for name in cold:
        ratio = statistics.median(cold[name]) / statistics.median(warm[name])
        print(f"{name:44} {ms(cold[name]):>24}   {ms(warm[name]):>24}   {ratio:4.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--large", type=int, default=50000)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.files, args.large))
