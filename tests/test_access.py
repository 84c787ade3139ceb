"""Who may start tasks, and where (issue 10, "Who may do what"), through the real bot and the fake
Slack: each refusal is an ephemeral answer to the person alone and never a task; each is lifted by
its setting. Settings are saved as an admin's would be, and read by the bot at each request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

from slackbot.store import SavedSettings
from tests.attack_rig import running_bot
from tests.fakes import FakeSlack, text
from tests.helpers import block_text, bot_messages, mention, reply, wait_final

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory):
    async with running_bot(tmp_path_factory.mktemp("access") / "data", SLACKBOT_ADMINS="UADMIN",
                           SLACKBOT_MODELS="alt-model") as r:
        yield r


class Saved:
    """SavedSettings that forgets, after its test, what the test saved."""

    def __init__(self, store: Any) -> None:
        self.settings = SavedSettings(store)
        self.keys: set[tuple[str, str]] = set()

    async def save(self, key: str, value: Any, scope: str = "") -> None:
        self.keys.add((key, scope))
        await self.settings.save(key, value, scope=scope)

    async def forget(self) -> None:
        for key, scope in self.keys:
            await self.settings.save(key, None, scope=scope)


@pytest_asyncio.fixture(loop_scope="module")
async def saved(rig):
    s = Saved(rig.bot.store)
    yield s
    await s.forget()
    rig.slack.users.clear()
    rig.slack.usergroups.clear()
    rig.bot.deps._users.clear()  # users.info's cache, as if it had expired
    rig.bot.deps._groups.clear()


def ephemerals(slack: FakeSlack, user: str, channel: str) -> list[dict]:
    return [e for e in slack.ephemerals if e["user"] == user and e["channel"] == channel]


async def refusal(rig, ts: str, *, user: str, channel: str, words: str) -> str:  # type: ignore[no-untyped-def]
    """The ephemeral answer to `user` containing `words`; asserts that nothing else happened: no task,
    no post or reaction in the channel."""
    slack = rig.slack
    found = await slack.wait_for(lambda: next((e for e in ephemerals(slack, user, channel)
                                               if words in e["text"]), None), timeout=15)
    await asyncio.sleep(0.3)
    assert await rig.bot.store.thread_for(channel, ts) is None, "a refused request became a task"
    assert bot_messages(slack, channel, ts) == [] and slack.reactions_on(channel, ts) == []
    assert not [c for c in slack.calls_to("chat.postMessage") if c.get("channel") == channel]
    return str(found["text"])


async def started(rig, ts: str, *, channel: str) -> dict:  # type: ignore[no-untyped-def]
    """The final reply of the task the mention started."""
    return await wait_final(rig.slack, channel, ts)


# ---- who may start tasks ------------------------------------------------------------------------

@pytest.mark.docker
async def test_only_listed_people_may_start_tasks(rig, saved):
    await saved.save("starters", "U2, UADMIN2")
    ts = await mention(rig.slack, "starters-refused please", channel="CST1", user="U3")
    answer = await refusal(rig, ts, user="U3", channel="CST1", words="not among them")
    assert "Ask an admin" in answer
    ts = await mention(rig.slack, "starters-allowed please", channel="CST1", user="U2")
    await started(rig, ts, channel="CST1")
    ts = await mention(rig.slack, "an admin is always allowed", channel="CST1", user="UADMIN")
    await started(rig, ts, channel="CST1")


@pytest.mark.docker
async def test_members_of_a_listed_user_group_may_start_tasks(rig, saved):
    rig.slack.usergroups["SDEVS"] = ["U4", "U6"]
    await saved.save("starters", "SDEVS")
    ts = await mention(rig.slack, "group-refused please", channel="CST2", user="U5")
    await refusal(rig, ts, user="U5", channel="CST2", words="not among them")
    ts = await mention(rig.slack, "group-allowed please", channel="CST2", user="U4")
    await started(rig, ts, channel="CST2")
    assert rig.slack.calls_to("usergroups.users.list")[-1]["usergroup"] == "SDEVS"


async def test_a_user_group_slack_cannot_list_refuses_clearly(rig, saved):
    await saved.save("starters", "U2,SGONE")  # no such group in the workspace
    ts = await mention(rig.slack, "group-unknown please", channel="CST3", user="U4")
    answer = await refusal(rig, ts, user="U4", channel="CST3", words="could not check the user groups")
    assert "`no_such_subteam`" in answer and "Try again" in answer
    rig.slack.usergroups["SFLAKY"] = ["U4"]
    await saved.save("starters", "SFLAKY")
    rig.slack.fail_next("usergroups.users.list", status=200, error="plan_upgrade_required")
    ts = await mention(rig.slack, "group-failing please", channel="CST4", user="U4")
    answer = await refusal(rig, ts, user="U4", channel="CST4", words="could not check the user groups")
    assert "`plan_upgrade_required`" in answer


@pytest.mark.docker
async def test_tasks_start_only_in_the_listed_channels(rig, saved):
    await saved.save("task_channels", "CWHERE1,CWHERE2")
    ts = await mention(rig.slack, "where-refused please", channel="CWHERE9", user="U2")
    answer = await refusal(rig, ts, user="U2", channel="CWHERE9", words="Tasks cannot start here")
    assert "<#CWHERE1>" in answer and "<#CWHERE2>" in answer
    ts = await mention(rig.slack, "where-allowed please", channel="CWHERE2", user="U2")
    await started(rig, ts, channel="CWHERE2")
    ts = await mention(rig.slack, "admins may anywhere", channel="CWHERE9", user="UADMIN")
    await started(rig, ts, channel="CWHERE9")


# ---- guests and other organisations -------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.parametrize("kind", ["is_restricted", "is_ultra_restricted"])
async def test_guests_are_refused_unless_allowed(rig, saved, kind):
    channel = f"CG{kind[3:5].upper()}"
    rig.slack.users["UGUEST"] = {kind: True}
    ts = await mention(rig.slack, f"guest-{kind} please", channel=channel, user="UGUEST")
    await refusal(rig, ts, user="UGUEST", channel=channel, words="Guests cannot start")
    await saved.save("allow_guests", True)
    ts = await mention(rig.slack, f"guest-{kind} allowed", channel=channel, user="UGUEST")
    await started(rig, ts, channel=channel)


@pytest.mark.docker
@pytest.mark.parametrize("who", ["stranger", "other-team", "event-team"])
async def test_people_of_other_organisations_are_refused_unless_allowed(rig, saved, who):
    channel = f"CX{who[:3].upper()}"
    extra: dict[str, Any] = {}
    if who == "stranger":
        rig.slack.users["UEXT"] = {"is_stranger": True}
    elif who == "other-team":
        rig.slack.users["UEXT"] = {"team_id": "TOTHERORG"}
    else:  # users.info says nothing unusual; the event says the message came from another team
        extra = {"user_team": "TOTHERORG", "source_team": "TOTHERORG"}
    payload, ts = rig.slack.mention(channel, "UEXT", f"external-{who} please", extra=extra)
    await rig.slack.wait_ack(await rig.slack.socket_send("events_api", payload))
    await refusal(rig, ts, user="UEXT", channel=channel, words="other organisations cannot")
    await saved.save("allow_external", True)
    payload, ts = rig.slack.mention(channel, "UEXT", f"external-{who} allowed", extra=extra)
    await rig.slack.wait_ack(await rig.slack.socket_send("events_api", payload))
    await started(rig, ts, channel=channel)


async def test_allowing_guests_does_not_let_in_other_organisations(rig, saved):
    await saved.save("allow_guests", True)
    rig.slack.users["UEXT"] = {"is_stranger": True, "is_restricted": True}
    ts = await mention(rig.slack, "external guest", channel="CXG", user="UEXT")
    await refusal(rig, ts, user="UEXT", channel="CXG", words="other organisations cannot")


async def test_being_listed_does_not_lift_the_guest_rule(rig, saved):
    """Who may start tasks narrows; it does not let in a guest the guest setting keeps out."""
    await saved.save("starters", "UGUEST")
    rig.slack.users["UGUEST"] = {"is_ultra_restricted": True}
    ts = await mention(rig.slack, "listed guest", channel="CLG", user="UGUEST")
    await refusal(rig, ts, user="UGUEST", channel="CLG", words="Guests cannot")


# ---- replies need a mention ---------------------------------------------------------------------

@pytest.mark.docker
async def test_reply_needs_mention_per_channel(rig, saved):
    slack, model = rig.slack, rig.model
    model.script_for("rnm-first", [text("first done")])
    ts = await mention(slack, "rnm-first", channel="CRNM", user="U1")
    await wait_final(slack, "CRNM", ts)
    await saved.save("reply_needs_mention", True, scope="CRNM")
    await reply(slack, "a remark between people", channel="CRNM", thread_ts=ts, user="U2")
    await asyncio.sleep(1.5)
    assert len(await rig.bot.store.thread_tasks((await rig.bot.store.thread_for("CRNM", ts)).id)) == 1
    assert not ephemerals(slack, "U2", "CRNM"), "an ignored reply is not a refusal"
    await mention(slack, "now with a mention", channel="CRNM", thread_ts=ts, user="U2")
    await wait_final(slack, "CRNM", ts, count=2)
    await saved.save("reply_needs_mention", False, scope="CRNM")
    await reply(slack, "and without one again", channel="CRNM", thread_ts=ts, user="U2")
    await wait_final(slack, "CRNM", ts, count=3)
    assert any("and without one again" in str(r.body) for r in model.requests_for("rnm-first"))
    ignored = [r for r in model.requests if "a remark between people" in str(r.body)]
    assert ignored == [], "an ignored reply reached the agent"


# ---- model= -------------------------------------------------------------------------------------

@pytest.mark.docker
async def test_model_option_uses_the_channels_saved_models(rig, saved):
    slack, model = rig.slack, rig.model
    await saved.save("models", "chan-model", scope="CMOD")
    ts = await mention(slack, "model=alt-model mod-refused", channel="CMOD")  # the environment's, not here
    await slack.wait_for(lambda: any("not available here" in block_text(m) for m in bot_messages(slack, "CMOD", ts)))
    said = next(block_text(m) for m in bot_messages(slack, "CMOD", ts) if "not available" in block_text(m))
    assert "use one of: `test-model`, `chan-model`." in said  # not the environment's alt-model
    assert await rig.bot.store.thread_for("CMOD", ts) is None
    model.script_for("mod-allowed", [text("ok")])
    ts = await mention(slack, "model=chan-model mod-allowed", channel="CMOD")
    await wait_final(slack, "CMOD", ts)
    assert [r.body["model"] for r in model.requests_for("mod-allowed")] == ["chan-model"]
    ts = await mention(slack, "model=chan-model mod-elsewhere", channel="CMOD2")  # only that channel's
    await slack.wait_for(lambda: any("not available here" in block_text(m) for m in bot_messages(slack, "CMOD2", ts)))
    await saved.save("model", "chan-default", scope="CMOD2")  # a channel's default model may be named
    model.script_for("mod-default", [text("ok")])
    ts = await mention(slack, "model=chan-default mod-default", channel="CMOD2")
    await wait_final(slack, "CMOD2", ts)
    assert model.requests_for("mod-elsewhere") == []

