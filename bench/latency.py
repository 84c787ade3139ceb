"""Prints user-visible latencies of the real bot against the fakes and a real Docker engine:
mention → 👀 and first status message, reply → the agent receiving it, Stop → container gone,
and, for a linked repository, mention → agent started on a first and a second thread.

    python bench/latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slackbot.app import Bot, instance_label  # noqa: E402
from slackbot.settings import Settings  # noqa: E402
from tests.fakes import FakeSlack, ScriptedModel, shell, text  # noqa: E402
from tests.helpers import bot_messages, wait_final  # noqa: E402


def settings_for(data: Path, slack: FakeSlack, model: ScriptedModel) -> Settings:
    return Settings(SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN=slack.app_token, SLACK_API_URL=slack.api_url,
                    OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="bench", SLACKBOT_MODEL="bench",
                    SLACKBOT_DATA_DIR=str(data), SLACKBOT_ADMINS="U1")


def call_time(slack: FakeSlack, method: str, after: float, pred=lambda p: True) -> float:
    return next(c.time for c in slack.calls if c.method == method and c.time >= after and pred(c.params))


def containers(settings: Settings) -> list:
    client = docker.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"slackbot.instance={instance_label(settings)}"})
    finally:
        client.close()


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max " \
           f"{max(values) * 1000:.0f}, n={len(values)})"


async def send_mention(slack: FakeSlack, text_: str, channel: str = "C1") -> tuple[str, float]:
    payload, ts = slack.mention(channel, "U1", f"<@UBOT> {text_}")
    sent = time.monotonic()
    await slack.wait_ack(await slack.socket_send("events_api", payload))
    return ts, sent


async def mention_latency(slack, model, runs: int) -> None:
    react, status = [], []
    for i in range(runs):
        model.script_for(f"bench-{i}", [text("ok")])
        ts, sent = await send_mention(slack, f"bench-{i}")
        await wait_final(slack, "C1", ts)
        react.append(call_time(slack, "reactions.add", sent) - sent)
        status.append(call_time(slack, "chat.postMessage", sent, lambda p: p.get("thread_ts") == ts) - sent)
    print(f"mention → 👀 reaction:            {ms(react)}")
    print(f"mention → first status message:   {ms(status)}")


async def steer_latency(slack, model, runs: int) -> None:
    waits, after_command = [], []
    offset = time.time() - time.monotonic()  # the command prints wall time; requests carry monotonic
    for i in range(runs):
        model.script_for(f"steer-{i}", [shell("sleep 1; date +%s.%N"), text("ok")])
        ts, _ = await send_mention(slack, f"steer-{i}")
        await model.wait_for_requests(len(model.requests) + 1)
        await asyncio.sleep(0.3)
        user_ts = slack.post_user_message("C1", "U1", f"turn left {i}", thread_ts=ts)
        event = {"type": "message", "channel": "C1", "user": "U1", "text": f"turn left {i}", "ts": user_ts,
                 "thread_ts": ts}
        sent = time.monotonic()
        await slack.wait_ack(await slack.socket_send("events_api", slack.event_callback(event)))
        await wait_final(slack, "C1", ts)
        request = next(r for r in model.requests if f"turn left {i}" in str(r.body.get("messages")))
        waits.append(request.time - sent)
        output = [m["content"] for m in request.body["messages"] if m["role"] == "tool"][-1]
        ended = float(output.split()[-1]) - offset
        after_command.append(request.time - ended)
    print(f"reply during a 1 s command → model call carrying it: {ms(waits)} (includes the rest of the command)")
    print(f"  of which after the command ended:  {ms(after_command)}")


async def stop_latency(slack, model, settings, runs: int) -> None:
    gone = []
    for i in range(runs):
        model.script_for(f"stop-{i}", [shell("sleep 300")])
        ts, _ = await send_mention(slack, f"stop-{i}")
        while not containers(settings) or not any(f"stop-{i}" in str(r.body) for r in model.requests):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        status = bot_messages(slack, "C1", ts)[0]
        task_id = status["text"].split("#")[1].split()[0]
        payload = slack.block_action_payload("task_stop", task_id, "U1", "C1", status["ts"], thread_ts=ts)
        pressed = time.monotonic()
        await slack.wait_ack(await slack.socket_send("interactive", payload))
        while containers(settings):
            await asyncio.sleep(0.02)
        gone.append(time.monotonic() - pressed)
        await wait_final(slack, "C1", ts)
    print(f"Stop → container gone:            {ms(gone)}")


async def repo_latency(slack, model, tmp: Path) -> None:
    """By URL (no link): the first thread clones the mirror, the second fetches it."""
    remote = tmp / "remote.git"
    work = tmp / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for n in range(2000):  # a mid-sized repository: 2,000 files
        (work / f"file{n}.py").write_text(f"x = {n}\n" * 50)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "seed"],
                   check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    for label in ("first thread (mirror cloned)", "second thread (mirror fetched)"):
        marker = f"repo-{label.split()[0]}"
        model.script_for(marker, [text("ok")])
        ts, sent = await send_mention(slack, f"repo={remote} {marker}", channel="C9")
        await wait_final(slack, "C9", ts)
        started = next(r.time for r in model.requests if marker in str(r.body.get("messages")))
        print(f"repo by URL, {label}: mention → agent started {(started - sent) * 1000:.0f} ms")


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            model = ScriptedModel()
            await model.start()
            settings = settings_for(Path(tmp) / "data", slack, model)
            async with Bot(settings, port=0):
                await slack.wait_socket_connected()
                await mention_latency(slack, model, runs)
                await steer_latency(slack, model, runs)
                await stop_latency(slack, model, settings, runs)
                await repo_latency(slack, model, Path(tmp))
            await model.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
