"""Mention → agent started (the first model call), for new threads on a 2,000-file repository given by
URL, and for scratch threads. The real bot against the fakes and a real Docker engine.

    python bench/start_latency.py [--runs 5] [--files 2000]

Written against the bot's public surface only (Bot, Settings, the fakes), so the same script can
time an older checkout: `PYTHONPATH=<old tree> python bench/start_latency.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slackbot.app import Bot  # noqa: E402
from slackbot.settings import Settings  # noqa: E402
from tests.fakes import FakeSlack, ScriptedModel, text  # noqa: E402
from tests.helpers import wait_final  # noqa: E402


def make_repo(tmp: Path, files: int) -> Path:
    work, remote = tmp / "seed", tmp / "remote.git"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for n in range(files):
        folder = work / f"pkg{n % 40}"
        folder.mkdir(exist_ok=True)
        (folder / f"file{n}.py").write_text(f"x = {n}\n" * 50)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "seed"],
                   check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    subprocess.run(["git", "-C", str(remote), "repack", "-adq"], check=True)  # as a network clone leaves it
    return remote


async def start_time(slack: FakeSlack, model: ScriptedModel, marker: str, prefix: str, channel: str) -> float:
    model.script_for(marker, [text("ok")])
    payload, ts = slack.mention(channel, "U1", f"<@UBOT> {prefix}{marker}")
    sent = time.monotonic()
    await slack.wait_ack(await slack.socket_send("events_api", payload))
    await wait_final(slack, channel, ts, timeout=300)
    return next(r.time for r in model.requests if marker in str(r.body.get("messages"))) - sent


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, "
            f"max {max(values) * 1000:.0f}, n={len(values)})")


async def main(runs: int, files: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        remote = make_repo(Path(tmp), files)
        async with FakeSlack() as slack:
            model = ScriptedModel()
            await model.start()
            settings = Settings(SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN=slack.app_token,
                                SLACK_API_URL=slack.api_url, OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="bench",
                                SLACKBOT_MODEL="bench", SLACKBOT_DATA_DIR=str(Path(tmp) / "data"),
                                SLACKBOT_ADMINS="U1")
            async with Bot(settings, port=0):
                await slack.wait_socket_connected()
                first = await start_time(slack, model, "warm-0", f"repo={remote} ", "C9")
                repo = [await start_time(slack, model, f"repo-{i}", f"repo={remote} ", "C9") for i in range(runs)]
                scratch = [await start_time(slack, model, f"scratch-{i}", "", "C8") for i in range(runs)]
            await model.stop()
    print(f"{files}-file repository, first thread (mirror cloned): {first * 1000:.0f} ms")
    print(f"{files}-file repository, new thread (mirror fetched): {summary(repo)}")
    print(f"scratch thread:                          {summary(scratch)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.files))
