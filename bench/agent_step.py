"""One agent step's overhead beyond the model's own time: a scripted model that answers at once, 40 steps of
`true` in a real sandbox, through the real bot (fake Slack, real database and Docker), with the command channel
on and off. A step's overhead is the time from the model's answer being ready (in the model server) to the
next request arriving there: the command, the bot's bookkeeping and the HTTP client's work.

    python bench/agent_step.py [--steps 40] [--runs 3] [--image IMAGE]
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

from slackbot.app import Bot  # noqa: E402
from slackbot.settings import Settings  # noqa: E402
from tests.fakes import FakeSlack, ScriptedModel, shell, text  # noqa: E402
from tests.helpers import wait_final  # noqa: E402


async def steps(channel: bool, n: int, runs: int, image: str) -> list[float]:
    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            model = ScriptedModel()
            await model.start()
            settings = Settings(SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN=slack.app_token,
                                SLACK_API_URL=slack.api_url, OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="bench",
                                SLACKBOT_MODEL="bench", SLACKBOT_DATA_DIR=str(Path(tmp) / "data"),
                                SLACKBOT_SANDBOX_IMAGE=image, SLACKBOT_COMMAND_CHANNEL=channel,
                                SLACKBOT_MAX_STEPS=n + 5)
            try:
                async with Bot(settings, port=0):
                    for run in range(runs + 1):  # the first run warms up (images, mirrors, caches)
                        marker = f"steps-{run}"
                        model.script_for(marker, [shell("true")] * n + [text("done")])
                        payload, ts = slack.mention("C1", "U1", f"<@UBOT> {marker}")
                        await slack.wait_ack(await slack.socket_send("events_api", payload))
                        await wait_final(slack, "C1", ts, timeout=300)
                        first = len(model.requests) - len(model.requests_for(marker))
                        arrived = [r.time for r in model.requests[first:]]
                        answered = model.answered[first:]
                        if run:  # from an answer being ready to the next request arriving
                            gaps += [b - a for a, b in zip(answered, arrived[1:])]
            finally:
                await model.stop()
    return gaps


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000


async def main(n: int, runs: int, image: str) -> None:
    rows = []
    for channel in (False, True):
        started = time.perf_counter()
        gaps = await steps(channel, n, runs, image)
        rows.append(("channel" if channel else "docker exec", gaps, time.perf_counter() - started))
    print(f"one agent step (model answers at once; `true`), {n} steps x {runs} tasks   p50 ms   p99 ms   mean ms")
    for name, gaps, _ in rows:
        print(f"{name:<62} {pct(gaps, 50):7.1f}  {pct(gaps, 99):7.1f}  {statistics.mean(gaps) * 1000:7.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", default="slackbot-sandbox:latest")
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.runs, args.image))
