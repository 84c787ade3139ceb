"""Secret-shaped strings never reach Slack nor a stored transcript: the redactor, the Web API client
that applies it to every call, and a real task whose command prints tokens."""

from __future__ import annotations

import json

import pytest

from slackbot.redact import MARK, Redactor
from slackbot.slack.app import RedactingWebClient
from tests.conftest import TEST_OPENAI_KEY
from tests.fakes import shell, text
from tests.helpers import block_text, mention, wait_final
from tests.slack_actions import button, press

SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
USER_TOKEN = "xoxp-2222222222-3333333333-ZyXwVuTsRqPoNmLkJiHg"
REFRESH_TOKEN = "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAtMDk4NzY1NDMyMQ"
APP_TOKEN = "xapp-1-A0123456789-1234567890123-abcdef0123456789"
GITHUB_TOKEN = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP"
OPENAI_KEY = "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCd"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n{PEM_BODY[::-1]}\n-----END RSA PRIVATE KEY-----"
SHAPED = [SLACK_TOKEN, USER_TOKEN, REFRESH_TOKEN, APP_TOKEN, GITHUB_TOKEN, GITHUB_PAT, OPENAI_KEY, AWS_KEY]


# ---- the redactor ---------------------------------------------------------------------------------


def test_every_shape_is_redacted():
    r = Redactor()
    for secret in SHAPED:
        out = r.text(f"before {secret} after")
        assert out == f"before {MARK} after", secret
    assert r.text(f"key:\n{PEM}\nmore") == f"key:\n{MARK}\nmore"
    # A BEGIN without its END (output cut short) hides everything after it.
    assert r.text(f"key:\n{PEM[:80]}") == f"key:\n{MARK}"
    # The tail of a key whose BEGIN was cut off.
    assert PEM_BODY[::-1] not in r.text(PEM[60:] + "\nrest")
    assert r.text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----") == MARK
    assert r.text("export AWS_ACCESS_KEY_ID=ASIAY34FZKBOKMUTVV7A;") == f"export AWS_ACCESS_KEY_ID={MARK};"
    assert r.text("https://bob:hunter2hunter2@git.example.com/x.git") == f"https://{MARK}@git.example.com/x.git"


def test_ordinary_text_stays():
    r = Redactor()
    for plain in ("sk-learn", "task-runner", "risk-assessment-for-the-payments-team", "sk-learn-compatible-estimators",
                  "xoxb-…", "ghp_short", "AKIA", "the github_pat_ prefix", "-----BEGIN PUBLIC KEY-----",
                  "https://github.com/acme/app", "http://localhost:8080/a@b", "git@github.com:acme/app.git"):
        assert r.text(plain) == plain


def test_configured_secrets_and_their_escaped_form():
    r = Redactor(["s3cr3t&value", "", "short"])
    assert r.text("a s3cr3t&value b") == f"a {MARK} b"
    assert r.text("a s3cr3t&amp;value b") == f"a {MARK} b"  # as it sits in Slack text
    assert r.text("a short word") == "a short word"  # under 6 characters: ignored
    assert Redactor([TEST_OPENAI_KEY]).text(f"key={TEST_OPENAI_KEY}") == f"key={MARK}"


def test_value_walks_dicts_lists_and_tuples():
    r = Redactor(["configured-secret"])
    data = {"text": f"a {GITHUB_TOKEN}", "n": 3, "blocks": [{"t": ("x", AWS_KEY)}], "none": None,
            "flag": True, "nested": {"deep": ["configured-secret"]}}
    assert r.value(data) == {"text": f"a {MARK}", "n": 3, "blocks": [{"t": ("x", MARK)}], "none": None,
                             "flag": True, "nested": {"deep": [MARK]}}
    assert r.binary(b"\xff\xfe " + SLACK_TOKEN.encode()) == b"\xff\xfe " + MARK.encode()


# ---- the Web API client ---------------------------------------------------------------------------


async def test_client_redacts_every_call_but_keeps_its_own_token(slack):
    client = RedactingWebClient(token=slack.bot_token, base_url=slack.api_url,
                                redactor=Redactor([slack.app_token, "configured-secret"]))
    root = slack.post_user_message("C1", "U1", "hi")
    await client.chat_postMessage(channel="C1", thread_ts=root, text=f"t {SLACK_TOKEN}", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": f"b {GITHUB_TOKEN} configured-secret"}}])
    msg = slack.thread("C1", root)[-1]
    assert msg["text"] == f"t {MARK}"
    assert msg["blocks"][0]["text"]["text"] == f"b {MARK} {MARK}"
    await client.files_upload_v2(channel="C1", thread_ts=root, content=f"file {PEM}\n{AWS_KEY}\n",
                                 filename="x.txt", title=f"title {GITHUB_TOKEN}")
    assert slack.files[-1]["content"] == f"file {MARK}\n{MARK}\n".encode()
    assert slack.files[-1]["title"] == f"title {MARK}"
    # The app token is configured as a secret, yet Socket Mode's own call must still carry it.
    opened = await client.apps_connections_open(app_token=slack.app_token)
    assert opened["ok"]


# ---- a real task ----------------------------------------------------------------------------------


@pytest.mark.docker
async def test_secrets_printed_by_a_task_reach_neither_slack_nor_the_transcript(slack, model, bot, settings):
    configured = [settings.slack_signing_secret, TEST_OPENAI_KEY]
    secrets = [*SHAPED, *configured, PEM_BODY, PEM_BODY[::-1]]
    words = " ".join(f"'{s}'" for s in SHAPED + configured)
    pem = PEM.replace("\n", "\\n")
    model.script([
        shell(f"printf '%s\\n' {words} > leak.txt; printf -- '{pem}\\n' > key.pem; cat leak.txt key.pem"),
        text(f"Found {SLACK_TOKEN} and {GITHUB_TOKEN}, AWS {AWS_KEY}, the signing secret "
             f"{settings.slack_signing_secret} and this key:\n```\n{PEM}\n```"),
    ])
    ts = await mention(slack, "print the secrets")
    final = await wait_final(slack, "C1", ts)
    assert MARK in block_text(final)
    tool_output = model.requests[-1].body["messages"][-1]["content"]
    assert AWS_KEY in tool_output and PEM_BODY in tool_output  # the command really printed them

    await press(slack, "task_transcript", button(final, "task_transcript")["value"], user="U1", channel="C1",
                message_ts=final["ts"], thread_ts=ts)
    transcript = await slack.wait_for(lambda: next((f for f in slack.files if "transcript" in f["name"]), None))
    assert b"leak.txt" in transcript["content"] and MARK.encode() in transcript["content"]
    events = await bot.store.events(1)
    if any(e.get("diff") for e in events):  # the change as a .patch: its content went through the client too
        await slack.wait_for(lambda: any(f["name"].endswith(".patch") for f in slack.files))

    sent = json.dumps([c.params for c in slack.calls])
    files = b"".join(f["content"] or b"" for f in slack.files)
    stored = json.dumps(events)
    for secret in secrets:
        assert secret not in sent, secret
        assert secret.encode() not in files, secret
        assert secret not in stored, secret
    assert MARK in stored
