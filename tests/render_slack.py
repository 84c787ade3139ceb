"""How the bot's messages look, as text: the fake Slack's recorded thread after one scripted task, in
streaming and in classic mode (README "How it looks" is this script's output).

    python -m tests.render_slack
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from slackbot.protocol import TaskRef
from slackbot.slack.blocks import StatusState, status_blocks
from tests.fakes import FakeSlack
from tests.test_slack_stream import Rig, script

MARKS = {"pending": "○", "in_progress": "◐", "complete": "✓", "error": "✗"}


def block_lines(blocks: list[dict]) -> list[str]:
    lines = []
    for b in blocks or []:
        if isinstance(b.get("text"), dict):
            lines.append(b["text"].get("text", ""))
        texts = [e.get("text") for e in b.get("elements") or [] if isinstance(e, dict)]
        buttons = [t["text"] for t in texts if isinstance(t, dict)]
        plain = [t for t in texts if isinstance(t, str)]
        if buttons:
            lines.append("  ".join(f"[{t}]" for t in buttons))
        if plain:
            lines.append(" ".join(plain))
    return [line for text in lines for line in text.splitlines()]


def render(message: dict) -> str:
    who = "slackbot" if message.get("bot_id") else message.get("user", "?")
    if "stream_started" in message:
        out = [f"{who} (streamed):", f"  ▸ {message.get('plan_title') or 'Plan'}"]
        for step in sorted(message.get("tasks", {}).values(), key=lambda s: s.get("order", 0)):
            extra = f"  — {step['output']}" if step.get("output") else ""
            out.append(f"    {MARKS.get(step.get('status'), '?')} {step.get('title')}{extra}")
        out += [f"  {line}" for line in (message.get("text") or "").splitlines()]
        out += [f"  {line}" for line in block_lines(message.get("blocks"))]
        return "\n".join(out)
    lines = block_lines(message.get("blocks")) or (message.get("text") or "").splitlines()
    return "\n".join([f"{who}:"] + [f"  {line}" for line in lines])


async def thread_of(mode: str, tmp: Path) -> tuple[str, str]:
    """The thread while the task works (a command running) and once it ended."""
    async with FakeSlack() as slack:
        slack.streaming, slack.agent_sessions = True, True
        async with Rig(slack, tmp / mode, mode, flush_s=0.3) as rig:
            thread_ts = slack.post_user_message("C1", "U1", f"<@{slack.bot_user_id}> do it")
            fallback, blocks = status_blocks(StatusState(1, state="working", phase="Starting"))
            resp = await rig.client.chat_postMessage(channel="C1", thread_ts=thread_ts, text=fallback, blocks=blocks)
            ref = TaskRef(1, 1, "C1", thread_ts, "U1", status_ts=resp["ts"], prompt="do it")
            working = ""
            for n, (gap, event) in enumerate(script(0.4)):
                await asyncio.sleep(gap)
                await rig.renderer.handle(ref, event)
                if n == 6:  # the second command started
                    await asyncio.sleep(1.0)
                    working = "\n".join(render(m) for m in slack.thread("C1", thread_ts))
            await rig.updater.flush()
        return working, "\n".join(render(m) for m in slack.thread("C1", thread_ts))


async def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        for mode in ("stream", "classic"):
            (Path(name) / mode).mkdir()
            working, done = await thread_of(mode, Path(name))
            print(f"--- SLACKBOT_SLACK_UI={mode}, while it works\n{working}\n")
            print(f"--- SLACKBOT_SLACK_UI={mode}, once it ended\n{done}\n")


if __name__ == "__main__":
    asyncio.run(main())
