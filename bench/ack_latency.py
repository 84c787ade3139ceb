"""Ack latency p50/p99 at 50, 200 and 1,000 events/s of channel chatter: people's messages in a
channel, not mentioning the bot, which the bot must ack and otherwise ignore. Target: p99 < 10 ms
at 1,000 events/s. The real bot against the fake Slack, over Socket Mode.

    python bench/ack_latency.py [--seconds 5] [--rates 50,200,1000]

The bot runs in a child process, alone on its event loop as in production; the fake Slack and the
sender run here, so their work is not counted as the bot's. Events go out on schedule (open loop:
no send waits for an earlier ack); latency is the fake's own send → ack-received time. Every fifth
message is a reply in a thread of earlier chatter (a database lookup for the bot, after its ack).
`bot CPU` is the bot process's CPU time per second; `CPU wait` the share of the phase in which some
task on the machine waited for a CPU (PSI): when it is high, the tail measures the machine, not the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slackbot.app import Bot  # noqa: E402
from slackbot.settings import Settings  # noqa: E402
from tests.fakes import FakeSlack  # noqa: E402

CHANNEL = "C0CHATTER"
PEOPLE = [f"U{n:04d}" for n in range(1, 41)]
TARGET_MS = 10.0


@dataclass
class Phase:
    rate: int
    sent: int
    acked: int
    achieved: float  # events/s the sender really kept up
    sender_busy: float  # share of the phase the sender spent building and sending
    bot_cpu: float  # the bot process's CPU seconds per wall second, acks and after-ack work alike
    cpu_wait: float  # share of the phase in which some task on this machine waited for a CPU
    latencies_ms: list[float]


def run_bot(options: dict, stop) -> None:
    """The child process: the bot, unchanged, until the parent sets `stop`."""
    async def serve() -> None:
        async with Bot(Settings(**options), port=0):
            gc.freeze()  # as `slackbot run` does once started
            await asyncio.to_thread(stop.wait)
    asyncio.run(serve())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def stalled_seconds() -> float:
    """Machine-wide time in which some runnable task waited for a CPU (Linux PSI; 0 elsewhere):
    when other work crowds the machine, latencies measure it and not the bot."""
    try:
        return int(Path("/proc/pressure/cpu").read_text().split("total=", 1)[1].split()[0]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def chatter(slack: FakeSlack, count: int, roots: list[str]) -> list[dict]:
    """`count` people's messages, each with its own ts and event_id; every fifth a reply in a recent thread."""
    payloads = []
    for k in range(count):
        n = len(slack.envelopes) + k
        thread = roots[-1 - n % 7] if n % 5 == 4 and len(roots) > 7 else None
        ts = slack.post_user_message(CHANNEL, PEOPLE[n % len(PEOPLE)], f"chatter {n}: lunch at noon?", thread)
        if thread is None:
            roots.append(ts)
        payloads.append(slack.message_event(CHANNEL, ts))
    return payloads


async def drive(slack: FakeSlack, bot_pid: int, rate: int, seconds: float, roots: list[str]) -> Phase:
    payloads = chatter(slack, int(rate * seconds), roots)  # built beforehand: the sender only sends
    envelopes, busy = [], 0.0
    cpu, stalled, start = cpu_seconds(bot_pid), stalled_seconds(), time.monotonic()
    for i, payload in enumerate(payloads):
        # Always yields, even behind schedule, so acks are read as they come and not after a burst.
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        began = time.monotonic()
        envelopes.append(await slack.socket_send("events_api", payload))
        busy += time.monotonic() - began
    elapsed = time.monotonic() - start
    achieved = (len(payloads) - 1) / elapsed if len(payloads) > 1 else float(len(payloads))
    await wait_acks(slack, envelopes, timeout=30)
    acked = sum(1 for e in envelopes if e in slack.acks)
    wall = time.monotonic() - start
    cpu, stalled = (cpu_seconds(bot_pid) - cpu) / wall, (stalled_seconds() - stalled) / wall
    latencies = [slack.ack_times[e] * 1000 for e in envelopes if e in slack.ack_times]
    return Phase(rate, len(payloads), acked, achieved, busy / elapsed, cpu, stalled, latencies)


async def wait_acks(slack: FakeSlack, envelopes: list[str], timeout: float) -> None:
    """Waits from the last sent back, so nearly all acks are in by the time their turn comes: a
    waiter per envelope at once (thousands of tasks) would stall the reading of the last acks."""
    deadline = time.monotonic() + timeout
    for envelope in reversed(envelopes):
        if envelope in slack.acks:
            continue
        try:
            await slack.wait_ack(envelope, timeout=max(0.0, deadline - time.monotonic()))
        except AssertionError:
            return  # past the deadline: the rest not in yet count as missing


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    return f"{os.cpu_count()} CPUs, {model}; Python {platform.python_version()}; load average {load}"


def table(phases: list[Phase]) -> str:
    head = ("rate/s", "events", "acks", "achieved/s", "sender", "bot CPU", "CPU wait", "p50 ms", "p99 ms", "max ms")
    rows = [" ".join(f"{h:>10}" for h in head) + f"  p99 < {TARGET_MS:g} ms"]
    for p in phases:
        lat, p99 = p.latencies_ms, percentile(p.latencies_ms, 0.99)
        cells = (p.rate, p.sent, p.acked, f"{p.achieved:.0f}", f"{p.sender_busy:.0%}", f"{p.bot_cpu:.0%}",
                 f"{p.cpu_wait:.0%}", f"{percentile(lat, 0.5):.2f}", f"{p99:.2f}", f"{max(lat, default=0):.2f}")
        ok = "yes" if p99 < TARGET_MS and p.acked == p.sent else "NO"
        rows.append(" ".join(f"{c:>10}" for c in cells) + f"  {ok}")
    return "\n".join(rows)


async def main(seconds: float, rates: list[int]) -> None:
    about = machine()  # the load average before this bench adds its own
    gc.disable()  # the fake keeps every event: a full collection here stalls ack reading by 100+ ms
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            options = dict(SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN=slack.app_token,
                           SLACK_API_URL=slack.api_url, OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # never called
                           OPENAI_API_KEY="bench", SLACKBOT_MODEL="bench", SLACKBOT_DATA_DIR=str(Path(tmp) / "data"),
                           SLACKBOT_ADMINS="U0001")
            spawn = multiprocessing.get_context("spawn")
            stop = spawn.Event()
            bot = spawn.Process(target=run_bot, args=(options, stop), name="slackbot")
            bot.start()
            pid = bot.pid or 0
            try:
                await slack.wait_socket_connected(timeout=120)
                first_call = len(slack.calls)
                roots: list[str] = []
                await drive(slack, pid, 50, 1.0, roots)  # warm-up: imports, caches, first database reads
                await asyncio.sleep(2)
                phases = []
                for rate in rates:
                    phases.append(await drive(slack, pid, rate, seconds, roots))
                    await asyncio.sleep(2)  # let the bot finish its after-ack work before the next rate
                visible = {c.method for c in slack.calls[first_call:]} - {"apps.connections.open", "auth.test"}
            finally:
                stop.set()
                await asyncio.to_thread(bot.join, 60)
                if bot.is_alive():
                    bot.terminate()
    print(about)
    print(f"{seconds:g} s per rate; latency = fake Slack's send → ack received, bot in its own process\n")
    print(table(phases))
    print(f"\nWeb API calls by the bot during chatter (none expected): {sorted(visible) or 'none'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="50,200,1000")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, [int(r) for r in args.rates.split(",")]))
