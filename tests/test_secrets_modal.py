"""`/agent secrets NAME` end to end: the real bot in Socket Mode against the fake Slack. The form lists
names only, errors show on their fields, admins only (checked again on a forged submission), a missing
key is told clearly, and a value never appears in anything the bot sends to Slack or logs."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.fernet import Fernet

from slackbot.app import Bot
from slackbot.secret_box import SecretBox
from slackbot.store import RepoSecrets
from tests.conftest import make_settings
from tests.fakes import FakeSlack
from tests.slack_actions import command, ephemeral_texts

KEY = Fernet.generate_key().decode()
VALUE = "npm_Qm4Xw8Lz2Vb6Nc0Ry5Tu"
OTHER = "pypi-AgEIcHlwaS5vcmcCJ9"


@pytest.fixture
async def bot(tmp_path, slack, model, db_url, caplog):
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN", DATABASE_URL=db_url,
                             SLACKBOT_SECRETS_KEY=KEY)
    async with Bot(settings, port=0) as running:
        app = await running.deps.repos.link("C1", name="app", url="https://example.com/app.git", branch="",
                                            github="", user="UADMIN")
        await running.deps.repos.link("C2", name="elsewhere", url="https://example.com/e.git", branch="",
                                      github="", user="UADMIN")
        running.app_repo = app
        yield running


async def open_form(slack: FakeSlack, text: str = "secrets app", *, user: str = "UADMIN",
                    channel: str = "C1") -> dict:
    opened = len(slack.opened_views)
    payload = slack.slash_command_payload("/agent", text, user, channel)
    await slack.wait_ack(await slack.socket_send("slash_commands", payload))
    await slack.wait_for(lambda: len(slack.opened_views) > opened)
    return slack.opened_views[-1]


async def submit(slack: FakeSlack, view: dict | None, *, name: str = "", value: str = "",
                 remove: tuple[str, ...] = (), user: str = "UADMIN") -> dict:
    state: dict = {"name": {"value": {"type": "plain_text_input", "value": name}},
                   "value": {"value": {"type": "plain_text_input", "value": value}}}
    if remove:
        state["remove"] = {"value": {"type": "multi_static_select",
                                     "selected_options": [{"value": n, "text": {"type": "plain_text", "text": n}}
                                                          for n in remove]}}
    payload = slack.view_submission_payload("repo_secrets", state, user, view_id=view["id"] if view else None)
    ack = await slack.wait_ack(await slack.socket_send("interactive", payload), timeout=10)
    return ack.get("payload") or {}


async def stored(bot) -> dict[str, str]:
    return SecretBox(KEY).open_all(await RepoSecrets(bot.store).sealed(bot.app_repo.id))


def everything_sent(slack: FakeSlack) -> str:
    """Every Web API call, response-URL post, view and message the fake Slack saw from the bot."""
    return json.dumps([[c.method, c.params] for c in slack.calls], default=str) + json.dumps(
        [slack.responses, slack.ephemerals, slack.views, slack.opened_views, slack.messages], default=str)


def assert_never_shown(slack: FakeSlack, caplog, acks: list[dict], *values: str) -> None:
    sent = everything_sent(slack) + json.dumps(acks)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for value in values:
        assert value not in sent and value not in logged


async def test_admin_adds_replaces_and_removes_secrets(slack, bot, caplog):
    view = await open_form(slack)
    assert view["callback_id"] == "repo_secrets"
    assert json.loads(view["private_metadata"]) == {"repo": bot.app_repo.id, "channel": "C1"}
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == ["name", "value"]
    assert "No secrets yet" in json.dumps(view["blocks"]) and slack.block_errors == []

    acks = [await submit(slack, view, name="NPM_TOKEN", value=f"  {VALUE}\n")]  # a paste's stray spaces go
    assert acks[-1] == {}
    assert await stored(bot) == {"NPM_TOKEN": VALUE}
    said = await slack.wait_for(lambda: [t for t in ephemeral_texts(slack, "UADMIN") if "Saved" in t])
    assert "Saved `NPM_TOKEN`" in said[-1] and "`app`'s setup command gets `NPM_TOKEN`" in said[-1]
    assert [e["channel"] for e in slack.ephemerals if e["user"] == "UADMIN"][-1] == "C1"

    view = await open_form(slack)
    listing = json.dumps(view["blocks"], ensure_ascii=False)
    assert "`NPM_TOKEN` — set by <@UADMIN>" in listing
    remove = next(b for b in view["blocks"] if b.get("block_id") == "remove")["element"]
    assert [o["value"] for o in remove["options"]] == ["NPM_TOKEN"] and slack.block_errors == []

    acks.append(await submit(slack, view, name="PIP_TOKEN", value=OTHER))
    acks.append(await submit(slack, view, name="NPM_TOKEN", value=VALUE + "-v2"))
    assert acks[-2:] == [{}, {}]
    assert await stored(bot) == {"NPM_TOKEN": VALUE + "-v2", "PIP_TOKEN": OTHER}
    await slack.wait_for(lambda: any("Replaced `NPM_TOKEN`" in t for t in ephemeral_texts(slack, "UADMIN")))

    acks.append(await submit(slack, view, remove=("PIP_TOKEN",)))
    assert acks[-1] == {} and await stored(bot) == {"NPM_TOKEN": VALUE + "-v2"}
    said = await slack.wait_for(lambda: [t for t in ephemeral_texts(slack, "UADMIN") if "Removed" in t])
    assert "Removed `PIP_TOKEN`" in said[-1]

    # The values are redacted by this process from now on, even where the bot would quote them.
    assert bot.deps.redactor.text(f"x {OTHER} x") == "x [redacted] x"
    assert_never_shown(slack, caplog, acks, VALUE, OTHER)
    assert any("UADMIN added secret NPM_TOKEN of repository app" in r.getMessage() for r in caplog.records)


async def test_errors_show_on_their_fields_and_never_quote_the_value(slack, bot, caplog):
    view = await open_form(slack)
    acks = []
    cases = [
        (dict(name="npm_token", value=VALUE), {"name": "capital letters"}),
        (dict(name="PATH", value="/tmp/evil/bin:/usr/bin"), {"name": "set by the sandbox"}),
        (dict(name="HTTPS_PROXY", value="http://evil.example:3128"), {"name": "egress proxy"}),
        (dict(name="SLACKBOT_SECRETS_KEY", value=VALUE), {"name": "SLACKBOT_"}),
        (dict(name="GIT_SSH_COMMAND", value="ssh -i /tmp/k x"), {"name": "GIT_"}),
        (dict(name="LD_PRELOAD", value="/workspace/evil.so"), {"name": "loaded"}),
        (dict(name="NPM_TOKEN", value=""), {"value": "Give the secret's value"}),
        (dict(name="", value=VALUE), {"name": "Give the secret a name"}),
        (dict(name="NPM_TOKEN", value="abc"), {"value": "shorter than 6"}),
        (dict(name="NPM_TOKEN", value="abc\x00" + VALUE), {"value": "NUL"}),
        (dict(name="NPM_TOKEN", value="x" * 9000), {"value": "8 KiB"}),
        (dict(name="bad name", value="abc"), {"name": "capital letters", "value": "shorter than 6"}),
        (dict(), {"name": "Give a name and a value"}),
    ]
    for fields, expected in cases:
        ack = await submit(slack, view, **fields)
        acks.append(ack)
        assert ack.get("response_action") == "errors", (fields, ack)
        assert set(ack["errors"]) == set(expected), (fields, ack)
        for field, says in expected.items():
            assert says in ack["errors"][field], (fields, ack)
    assert await stored(bot) == {}
    assert_never_shown(slack, caplog, acks, VALUE, "/tmp/evil/bin", "evil.example", "/workspace/evil.so")

    await submit(slack, view, name="NPM_TOKEN", value=VALUE)
    view = await open_form(slack)
    ack = await submit(slack, view, name="NPM_TOKEN", value=OTHER, remove=("NPM_TOKEN",))
    assert list(ack["errors"]) == ["remove"] and "both set and removed" in ack["errors"]["remove"]
    assert await stored(bot) == {"NPM_TOKEN": VALUE}


async def test_only_admins_and_a_forged_submission_is_refused(slack, bot, caplog):
    answer = await command(slack, "secrets app", user="U1")
    assert "Only admins" in answer and slack.opened_views == []

    view = await open_form(slack)  # an admin's form...
    await submit(slack, view, name="NPM_TOKEN", value=VALUE)
    # ...submitted by someone else, with its callback id and private metadata (a forged payload).
    for forged in (view, None):
        ack = await submit(slack, forged, name="NPM_TOKEN", value=OTHER, user="U1")
        assert ack["response_action"] == "errors" and "Only admins" in ack["errors"]["name"]
        ack = await submit(slack, forged, remove=("NPM_TOKEN",), user="U1")
        assert ack["response_action"] == "errors" and "Only admins" in ack["errors"]["name"]
    assert await stored(bot) == {"NPM_TOKEN": VALUE}
    assert any("U1, not an admin, submitted the secrets form" in r.getMessage() for r in caplog.records)

    # An admin's form whose metadata points at a repository not linked to its channel.
    sneaky = dict(view, private_metadata=json.dumps({"repo": bot.app_repo.id, "channel": "C2"}))
    slack.views[view["id"]] = sneaky
    ack = await submit(slack, sneaky, name="NPM_TOKEN", value=OTHER)
    assert "no longer linked" in ack["errors"]["name"]
    slack.views[view["id"]] = dict(view, private_metadata="")
    ack = await submit(slack, view, name="NPM_TOKEN", value=OTHER)
    assert "lost its repository" in ack["errors"]["name"]
    assert await stored(bot) == {"NPM_TOKEN": VALUE}
    assert_never_shown(slack, caplog, [], VALUE, OTHER)


async def test_command_answers(slack, bot):
    assert "Usage: `/agent secrets NAME`" in await command(slack, "secrets", user="UADMIN")
    answer = await command(slack, f"secrets app NPM_TOKEN={VALUE}", user="UADMIN")
    assert answer.startswith("Nothing was stored: type values into the form") and VALUE not in answer
    assert "No repository named `elsewhere` is linked here" in await command(slack, "secrets elsewhere",
                                                                             user="UADMIN")
    assert "`app`" in await command(slack, "secrets nope", user="UADMIN")
    assert slack.opened_views == []
    assert "`/agent secrets NAME`" in await command(slack, "help", user="U1")
    assert VALUE not in everything_sent(slack)


@pytest.mark.parametrize("key", ["", "not-a-fernet-key"])
async def test_a_missing_key_is_told_clearly(tmp_path, slack, model, key):
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN", SLACKBOT_SECRETS_KEY=key)
    async with Bot(settings, port=0) as bot:
        await bot.deps.repos.link("C1", name="app", url="https://example.com/app.git", branch="", github="",
                                  user="UADMIN")
        answer = await command(slack, "secrets app", user="UADMIN")
        assert "SLACKBOT_SECRETS_KEY" in answer and "Fernet.generate_key()" in answer
        assert ("is not set" if not key else "not a valid key") in answer
        assert slack.opened_views == []
        assert "Only admins" in await command(slack, "secrets app", user="U1")  # no hint for others
