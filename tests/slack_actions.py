"""Buttons and slash commands, delivered over Socket Mode the way Slack sends them."""

from __future__ import annotations

from tests.fakes import FakeSlack


def button(message: dict, action_id: str) -> dict | None:
    for b in message.get("blocks") or []:
        for e in b.get("elements") or []:
            if isinstance(e, dict) and e.get("action_id") == action_id:
                return e
    return None


async def press(slack: FakeSlack, action_id: str, value: str, *, user: str, channel: str, message_ts: str,
                thread_ts: str) -> None:
    payload = slack.block_action_payload(action_id, value, user, channel, message_ts, thread_ts=thread_ts)
    await slack.wait_ack(await slack.socket_send("interactive", payload))


async def command(slack: FakeSlack, text: str, *, user: str = "U1", channel: str = "C1",
                  name: str = "/agent") -> str:
    """Runs a slash command; returns the text of its (ephemeral) answer."""
    before = len(slack.responses)
    envelope = await slack.socket_send("slash_commands", slack.slash_command_payload(name, text, user, channel))
    await slack.wait_ack(envelope)
    await slack.wait_for(lambda: len(slack.responses) > before, timeout=30)
    return slack.responses[-1]["body"].get("text", "")


def ephemeral_texts(slack: FakeSlack, user: str) -> list[str]:
    return [e.get("text", "") for e in slack.ephemerals if e.get("user") == user]


async def automation(slack: FakeSlack, text: str, *, user: str = "U1", channel: str = "C1") -> str:
    """`/automation TEXT`; the text of its ephemeral answer."""
    return await command(slack, text, user=user, channel=channel, name="/automation")


async def open_automation_form(slack: FakeSlack, *, user: str = "U1", channel: str = "C1") -> dict:
    """`/automation` with no text; the view it opened."""
    opened = len(slack.opened_views)
    payload = slack.slash_command_payload("/automation", "", user, channel)
    await slack.wait_ack(await slack.socket_send("slash_commands", payload))
    await slack.wait_for(lambda: len(slack.opened_views) > opened)
    return slack.opened_views[-1]
