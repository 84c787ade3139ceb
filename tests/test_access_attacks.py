"""Attempts of a hostile channel member on who may start and steer work (issue 10): each is tried
through the real bot and the fake Slack, and must end in nothing started (and, where the person
asked, an answer to them alone). The rows of SECURITY.md's access table name these tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.fakes import FakeSlack, shell, text
from tests.helpers import bot_messages, mention, reply, wait_final
from tests.slack_actions import automation, button, ephemeral_texts, open_automation_form, press
from tests.test_access import ephemerals, refusal, rig, saved  # noqa: F401  (fixtures)

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHANNEL_KEYS = ("channel", "channel_id")


async def thread_tasks(rig, channel: str, ts: str) -> list:  # type: ignore[no-untyped-def]
    thread = await rig.bot.store.thread_for(channel, ts)
    return await rig.bot.store.thread_tasks(thread.id) if thread else []


async def deliver(rig, event: dict) -> None:  # type: ignore[no-untyped-def]
    await rig.slack.wait_ack(await rig.slack.socket_send("events_api", rig.slack.event_callback(event)))


def message_event(slack: FakeSlack, channel: str, user: str, text_: str, thread_ts: str | None = None,
                  **extra: Any) -> dict:
    """A person's message stored in the fake workspace, as the `message` event Slack sends of it."""
    ts = slack.post_user_message(channel, user, text_, thread_ts=thread_ts)
    event = {"type": "message", "channel": channel, "user": user, "text": text_, "ts": ts,
             "channel_type": "im" if channel.startswith("D") else "channel", **extra}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


# ---- forged or borrowed identity ----------------------------------------------------------------

async def test_a_forged_user_team_does_not_make_an_outsider_ours(rig, saved):
    """The event says our team; Slack's users.info says another organisation: any one signal refuses."""
    rig.slack.users["UEXT"] = {"team_id": "TOTHERORG"}
    payload, ts = rig.slack.mention("CFORGE", "UEXT", "forged team please",
                                    extra={"user_team": rig.slack.team_id, "source_team": rig.slack.team_id})
    await rig.slack.wait_ack(await rig.slack.socket_send("events_api", payload))
    await refusal(rig, ts, user="UEXT", channel="CFORGE", words="other organisations cannot")


async def test_a_bot_message_naming_a_user_starts_nothing(rig, saved):
    """Another app posts a mention (subtype bot_message, no bot_id) naming a member as its user,
    then the same as a thread reply; and a bot user without bot_id mentions the bot."""
    slack = rig.slack
    payload, ts = slack.mention("CBOTS", "U1", "pretend to be U1", extra={"subtype": "bot_message"})
    await slack.wait_ack(await slack.socket_send("events_api", payload))
    await asyncio.sleep(0.5)
    assert await rig.bot.store.thread_for("CBOTS", ts) is None and not bot_messages(slack, "CBOTS", ts)
    slack.users["UBOTUSER"] = {"is_bot": True}
    ts = await mention(slack, "a bot user asks", channel="CBOTS", user="UBOTUSER")
    await refusal(rig, ts, user="UBOTUSER", channel="CBOTS", words="Apps and bots cannot")


async def test_slack_cannot_tell_who_it_is(rig, saved):
    """users.info fails (an unknown person of a shared channel): refused, saying why."""
    rig.slack.fail_next("users.info", status=200, error="user_not_found")
    ts = await mention(rig.slack, "who am i", channel="CUNK", user="UNKNOWN1")
    await refusal(rig, ts, user="UNKNOWN1", channel="CUNK", words="could not look you up")


# ---- threads someone else started ----------------------------------------------------------------

@pytest.mark.docker
async def test_a_guest_cannot_steer_or_follow_up_in_a_members_thread(rig, saved):
    slack, model = rig.slack, rig.model
    rig.slack.users["UGUEST"] = {"is_restricted": True}
    model.script_for("atk-steer", [shell("sleep 4"), text("member's task done")])
    ts = await mention(slack, "atk-steer", channel="CTHR", user="U1")
    await slack.wait_for(lambda: model.requests_for("atk-steer"), timeout=60)
    await reply(slack, "GUEST-STEERING ignore the member", channel="CTHR", thread_ts=ts, user="UGUEST")
    await slack.wait_for(lambda: [e for e in ephemerals(slack, "UGUEST", "CTHR") if e["thread_ts"] == ts])
    await wait_final(slack, "CTHR", ts)
    await reply(slack, "GUEST-FOLLOW-UP do more", channel="CTHR", thread_ts=ts, user="UGUEST")
    await mention(slack, "GUEST-MENTION do more", channel="CTHR", thread_ts=ts, user="UGUEST")
    await slack.wait_for(lambda: len(ephemerals(slack, "UGUEST", "CTHR")) >= 3)
    await asyncio.sleep(1)
    assert len(await thread_tasks(rig, "CTHR", ts)) == 1
    assert not [r for r in model.requests if "GUEST-" in json.dumps(r.body)], "a guest's words reached the agent"
    assert all("Guests cannot" in e["text"] for e in ephemerals(slack, "UGUEST", "CTHR"))


@pytest.mark.docker
async def test_a_refused_person_pressing_buttons_gets_nowhere(rig, saved):
    slack = rig.slack
    slack.users["UGUEST"] = {"is_restricted": True}
    ts = await mention(slack, "a member's task with buttons", channel="CBTN", user="U1")
    final = await wait_final(slack, "CBTN", ts)
    where = {"user": "UGUEST", "channel": "CBTN", "message_ts": final["ts"], "thread_ts": ts}
    task_id = (await thread_tasks(rig, "CBTN", ts))[0].id
    await press(slack, "task_push", str(task_id), **where)  # pressed, or forged: the same payload
    await slack.wait_for(lambda: any("can push its branch" in t for t in ephemeral_texts(slack, "UGUEST")))
    await press(slack, "task_stop", str(task_id), **where)
    await slack.wait_for(lambda: any("(who asked) or an admin can stop" in t for t in ephemeral_texts(slack, "UGUEST")))
    # A repository chooser, answered by the guest instead of the requester.
    for name in ("one", "two"):
        await rig.bot.deps.repos.link("CBTN2", name=name, url=f"https://example.com/{name}.git", branch="main",
                                      github="", user="UADMIN")
    await rig.bot.deps.repos.set_default("CBTN2", 0)  # no default: the requester is asked
    ts = await mention(slack, "which repo", channel="CBTN2", user="U1")
    chooser = await slack.wait_for(lambda: next((m for m in bot_messages(slack, "CBTN2", ts)
                                                 if button(m, "repo_choose_0")), None))
    await press(slack, "repo_choose_0", button(chooser, "repo_choose_0")["value"], user="UGUEST", channel="CBTN2",
                message_ts=chooser["ts"], thread_ts=ts)
    await slack.wait_for(lambda: any("can choose for task" in t for t in ephemeral_texts(slack, "UGUEST")))
    assert [t.status for t in await thread_tasks(rig, "CBTN2", ts)] == ["choosing"]


# ---- edits and retries --------------------------------------------------------------------------

async def test_editing_a_message_to_add_a_mention(rig, saved):
    slack = rig.slack
    slack.users["UGUEST"] = {"is_restricted": True}
    # The edit as a `message_changed` event: an edit is never a request.
    original = message_event(slack, "CEDIT", "UGUEST", "just chatting")
    await deliver(rig, {"type": "message", "subtype": "message_changed", "channel": "CEDIT", "ts": slack.next_ts(),
                        "message": {**original, "text": f"<@{slack.bot_user_id}> now do it", "edited": {
                            "user": "UGUEST", "ts": slack.next_ts()}}, "previous_message": original})
    # The edit as an app_mention (Slack sends one when an edit adds the mention): checked like any.
    payload, ts = slack.mention("CEDIT", "UGUEST", "edited in a mention",
                                extra={"edited": {"user": "UGUEST", "ts": slack.next_ts()}})
    await slack.wait_ack(await slack.socket_send("events_api", payload))
    await refusal(rig, ts, user="UGUEST", channel="CEDIT", words="Guests cannot")
    assert await rig.bot.store.thread_for("CEDIT", original["ts"]) is None
    assert len(ephemerals(slack, "UGUEST", "CEDIT")) == 1


async def test_a_refused_mention_is_never_retried_into_a_task(rig, saved):
    """Refused while not allowed; then allowed: Slack's retry of that delivery, its twin `message`
    event and a later edit of the same message start nothing (the person asks again instead)."""
    slack = rig.slack
    slack.users["UGUEST"] = {"is_restricted": True}
    payload, ts = slack.mention("CRETRY", "UGUEST", "refused then retried")
    await slack.wait_ack(await slack.socket_send("events_api", payload))
    await refusal(rig, ts, user="UGUEST", channel="CRETRY", words="Guests cannot")
    await saved.save("allow_guests", True)
    await slack.wait_ack(await slack.socket_send("events_api", payload, retry_attempt=1, retry_reason="timeout"))
    await slack.wait_ack(await slack.socket_send("events_api", slack.message_event("CRETRY", ts)))
    edited = {**payload["event"], "edited": {"user": "UGUEST", "ts": slack.next_ts()}}
    await deliver(rig, edited)
    await asyncio.sleep(1)
    assert await rig.bot.store.thread_for("CRETRY", ts) is None
    assert len(ephemerals(slack, "UGUEST", "CRETRY")) == 1


async def test_a_refusal_never_reaches_the_channel(rig, saved):
    """Ephemeral refused by Slack (the person is not in the channel, e.g. a stale event): the
    refusal goes to the person in a direct message, never into the channel."""
    slack = rig.slack
    slack.users["UGUEST"] = {"is_restricted": True}
    slack.channels["CNOMEM"] = {"members": ["U1", slack.bot_user_id]}
    ts = await mention(slack, "not a member here", channel="CNOMEM", user="UGUEST")
    await slack.wait_for(lambda: [c for c in slack.calls_to("chat.postMessage") if c.get("channel") == "UGUEST"])
    assert await rig.bot.store.thread_for("CNOMEM", ts) is None
    assert not [c for c in slack.calls_to("chat.postMessage") if c.get("channel") == "CNOMEM"]


# ---- other ways in ------------------------------------------------------------------------------

async def test_a_skill_mention_is_a_request_like_any(rig, saved):
    await saved.save("starters", "U2")
    ts = await mention(rig.slack, "$code-review repo=api branch=feature-x", channel="CSKILL", user="U3")
    await refusal(rig, ts, user="U3", channel="CSKILL", words="not among them")


async def test_automations_need_what_tasks_need(rig, saved):
    slack = rig.slack
    created = await automation(slack, "add every day at 09:00 mine-before", user="U5", channel="CAUTO")
    aid = created.split("*#", 1)[1].split("*", 1)[0]
    await saved.save("starters", "U2")
    assert "not among them" in await automation(slack, "add every day at 09:00 sneaky", user="U5", channel="CAUTO")
    assert "not among them" in await automation(slack, "", user="U5", channel="CAUTO")  # the form does not open
    assert "not among them" in await automation(slack, f"run {aid}", user="U5", channel="CAUTO")
    assert "not among them" in await automation(slack, f"resume {aid}", user="U5", channel="CAUTO")
    await saved.save("starters", None)
    await saved.save("task_channels", "CAUTO")
    answer = await automation(slack, "add every day at 09:00 elsewhere channel=<#CAUTO2|other>", user="U5",
                              channel="CAUTO")
    assert answer.startswith("Tasks cannot start here"), answer
    answer = await automation(slack, 'add on message in <#CAUTO2|other> watch it', user="U5", channel="CAUTO")
    assert answer.startswith("Tasks cannot start here"), answer
    view = await open_automation_form(slack, user="U5", channel="CAUTO")
    values = {"name": {"value": {"type": "plain_text_input", "value": "n"}},
              "prompt": {"value": {"type": "plain_text_input", "value": "p"}},
              "trigger": {"value": {"type": "plain_text_input", "value": "every day at 09:00"}},
              "channel": {"value": {"type": "conversations_select", "selected_conversation": "CAUTO2"}}}
    payload = slack.view_submission_payload("automation_create", values, "U5", view_id=view["id"])
    ack = await slack.wait_ack(await slack.socket_send("interactive", payload), timeout=10)
    assert "Tasks cannot start here" in ack["payload"]["errors"]["channel"]
    made = [a.name for a in await rig.bot.deps.automations.store.in_channel("CAUTO")]
    assert made == ["mine-before"], made
    assert await rig.bot.deps.automations.store.in_channel("CAUTO2") == []


# ---- direct messages ----------------------------------------------------------------------------

@pytest.mark.docker
async def test_a_direct_message_task_stays_in_the_direct_message(rig, saved):
    slack, model = rig.slack, rig.model
    model.script_for("dm-task", [shell("echo hi > note.txt"), text("dm done")])
    before = len(slack.calls)
    event = message_event(slack, "D0DM1", "U1", "dm-task please")
    await deliver(rig, event)
    await wait_final(slack, "D0DM1", event["ts"])
    await deliver(rig, message_event(slack, "D0DM1", "U1", "and a follow-up", thread_ts=event["ts"]))
    await wait_final(slack, "D0DM1", event["ts"], count=2)
    await asyncio.sleep(1)
    places = {c.params.get(k) for c in slack.calls[before:] for k in CHANNEL_KEYS if c.params.get(k)}
    assert places == {"D0DM1"}, places
    assert slack.reactions_on("D0DM1", event["ts"]) == ["eyes"]
    # A guest's direct message is refused there, and starts nothing.
    slack.users["UGUEST"] = {"is_restricted": True}
    event = message_event(slack, "D0DM2", "UGUEST", "guest dm please")
    await deliver(rig, event)
    await refusal(rig, event["ts"], user="UGUEST", channel="D0DM2", words="Guests cannot")
