"""Small helpers for end-to-end tests: send a mention, read the thread like a person would."""

from __future__ import annotations

from tests.fakes import FakeSlack

FINAL_MARK = "⏱"  # the usage line of a final reply


async def mention(slack: FakeSlack, text: str, *, channel: str = "C1", user: str = "U1",
                  thread_ts: str | None = None) -> str:
    """Delivers an app_mention over Socket Mode (and the same message as `message`, as Slack does)."""
    payload, ts = slack.mention(channel, user, f"<@{slack.bot_user_id}> {text}", thread_ts=thread_ts)
    envelope = await slack.socket_send("events_api", payload)
    await slack.wait_ack(envelope)
    return ts


async def reply(slack: FakeSlack, text: str, *, channel: str, thread_ts: str, user: str = "U1") -> str:
    ts = slack.post_user_message(channel, user, text, thread_ts=thread_ts)
    event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
             "thread_ts": thread_ts, "channel_type": "channel"}
    envelope = await slack.socket_send("events_api", slack.event_callback(event))
    await slack.wait_ack(envelope)
    return ts


def bot_messages(slack: FakeSlack, channel: str, thread_ts: str) -> list[dict]:
    return [m for m in slack.thread(channel, thread_ts) if m.get("bot_id")]


def status_message(slack: FakeSlack, channel: str, thread_ts: str, task_id: int | None = None) -> dict | None:
    for m in bot_messages(slack, channel, thread_ts):
        for b in m.get("blocks") or []:
            if b.get("type") == "actions" or "#" in (m.get("text") or ""):
                if task_id is None or f"#{task_id}" in (m.get("text") or ""):
                    return m
    return None


def final_replies(slack: FakeSlack, channel: str, thread_ts: str) -> list[dict]:
    out = []
    for m in bot_messages(slack, channel, thread_ts):
        for b in m.get("blocks") or []:
            if b.get("type") == "context" and FINAL_MARK in str(b.get("elements")):
                out.append(m)
                break
    return out


def block_text(message: dict) -> str:
    parts = [message.get("text") or ""]
    for b in message.get("blocks") or []:
        if isinstance(b.get("text"), dict):
            parts.append(b["text"].get("text", ""))
        for e in b.get("elements") or []:
            if isinstance(e, dict) and isinstance(e.get("text"), str):
                parts.append(e["text"])
    return "\n".join(parts)


async def wait_final(slack: FakeSlack, channel: str, thread_ts: str, count: int = 1, timeout: float = 90) -> dict:
    await slack.wait_for(lambda: len(final_replies(slack, channel, thread_ts)) >= count, timeout=timeout)
    return final_replies(slack, channel, thread_ts)[count - 1]


def output_of(tool_result: str) -> str:
    """The command output inside a shell tool result (after the exit code line and the data fence)."""
    lines = tool_result.split("\n")
    if len(lines) >= 4 and lines[1].startswith("[data: ") and set(lines[2]) == {"`"}:
        return "\n".join(lines[3:-1])
    return "\n".join(lines[1:])


def unfenced(tool_result: str) -> str:
    """A shell tool result as it read before command output was fenced as data: the exit code line,
    then the output."""
    lines = tool_result.split("\n")
    if len(lines) >= 4 and lines[1].startswith("[data: ") and set(lines[2]) == {"`"} and lines[-1] == lines[2]:
        return "\n".join([lines[0], *lines[3:-1]])
    return tool_result
