"""`/automation` end to end: the real bot in Socket Mode against the fake Slack, on SQLite and
PostgreSQL. Text forms and their errors, list/show/pause/resume/delete/run, who may, the form."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from slackbot.app import Bot
from tests.conftest import make_settings
from tests.fakes import FakeSlack
from tests.slack_actions import automation as command, ephemeral_texts, open_automation_form


@pytest.fixture
async def bot(tmp_path, slack, model, db_url):
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN", DATABASE_URL=db_url,
                             SLACKBOT_TIMEZONE="Asia/Tokyo")
    slack.users["U1"] = {"tz": "Europe/Berlin"}
    async with Bot(settings, port=0) as running:
        yield running


async def rows(bot, channel: str = "C1"):
    return await bot.deps.automations.store.in_channel(channel)


async def created_id(answer: str) -> int:
    found = re.search(r"Created automation \*#(\d+)\*", answer)
    assert found, answer
    return int(found[1])


# ---- add: schedules -----------------------------------------------------------------------------

async def test_add_schedules(slack, bot):
    answer = await command(slack, 'add "0 9 * * mon-fri" triage new issues and summarise')
    assert "every weekday at 09:00 (Europe/Berlin)" in answer and "next run" in answer
    assert re.search(r"next run \w{3} \d+ \w{3} \d{4} 09:00 CES?T", answer), answer
    [a] = await rows(bot)
    assert (a.trigger, a.cron, a.tz, a.creator, a.channel, a.name, a.enabled, a.notify) == (
        "schedule", "0 9 * * mon-fri", "Europe/Berlin", "U1", "C1", "triage new issues and summarise", True, "always")
    assert f"*#{a.id}*" in answer

    await command(slack, 'add every day at 09:00 summarise merged PRs tz=America/New_York name="Daily PRs" '
                         "notify=changes")
    await command(slack, "add every monday at 8:30 plan the week")
    await command(slack, "add every 2 hours check the queue")
    await command(slack, "add \u201c30 7 * * *\u201d a curly-quoted cron, as some keyboards type it")
    await command(slack, "add every day at 10:00 the bot's zone", user="U3")
    got = [(a.name, a.cron, a.tz, a.notify) for a in (await rows(bot))[1:]]
    assert got == [("Daily PRs", "0 9 * * *", "America/New_York", "changes"),
                   ("plan the week", "30 8 * * mon", "Europe/Berlin", "always"),
                   ("check the queue", "0 */2 * * *", "Europe/Berlin", "always"),
                   ("a curly-quoted cron, as some keyboards", "30 7 * * *", "Europe/Berlin", "always"),
                   ("the bot's zone", "0 10 * * *", "UTC", "always")]  # U3's users.info says UTC


async def test_add_falls_back_to_the_bots_zone(slack, bot):
    slack.users["U4"] = {"tz": None}
    await command(slack, "add every day at 10:00 stand-up notes", user="U4")
    [a] = await rows(bot)
    assert a.tz == "Asia/Tokyo"


async def test_add_errors_answer_with_an_example(slack, bot):
    cases = {
        'add "61 9 * * *" check': "minute",
        'add "*/2 * * * *" check': "less than 5 minutes apart",
        "add every 1 minutes check": "too often",
        "add every day at 09:00 check tz=Mars/Base": "`Mars/Base` is not a time zone I know",
        "add every funday at 09:00 check": "`funday` is not a day I know",
        "add every day at 09:00": "What should it do?",
        "add on webhook": "What should it do?",
        "add on message in <#C2|alerts>": "What should it do?",
        "add tomorrow please check": "is not a schedule I know",
        "add": "Say when it should run",
        "add on friday check": "After `on` comes",
        "add every day at 09:00 check repo=nope": "No repository named `nope`",
        "add on message in #nowhere check": "I found no public channel named #nowhere",
        'add on message in <#C2|alerts> matching "(" check': "The pattern does not compile",
        "add every day at 09:00 check notify=sometimes": "notify= takes always or changes",
        "add every day at 09:00 check branch=..bad": "is not a branch name",
        'add every day at 09:00 check name="' + "n" * 90 + '"': "longer than 80",
        "add every day at 09:00 check channel=#nowhere": "no public channel named #nowhere",
    }
    for text, expected in cases.items():
        answer = await command(slack, text)
        assert expected in answer, (text, answer)
        assert "For example" in answer or "for example" in answer, (text, answer)
    assert await rows(bot) == [] and await rows(bot, "C2") == []


# ---- add: watches and webhooks ------------------------------------------------------------------

async def test_add_message_watch(slack, bot):
    slack.channels.update({f"C{n:05d}X": {"name": f"room-{n}"} for n in range(450)})
    slack.channels["CZALERTS"] = {"name": "alerts"}  # listed last: found on the third page
    answer = await command(slack, 'add on message in #alerts matching "ERROR|FATAL" find the cause')
    assert "on each new message in <#CZALERTS> matching `ERROR|FATAL`" in answer
    pages = slack.calls_to("conversations.list")
    assert len(pages) == 3 and pages[1]["cursor"] and pages[0]["types"] == "public_channel"
    [a] = await rows(bot)
    assert (a.trigger, a.watch_channel, a.pattern, a.prompt, a.label) == (
        "message", "CZALERTS", "ERROR|FATAL", "find the cause", 'on message in #alerts matching "ERROR|FATAL"')

    # A reference Slack made (the command escapes them) is taken as it is, a private one too.
    slack.channels["GPRIV01"] = {"name": "secret"}
    await command(slack, "add on message in <#GPRIV01|secret> every message &lt;3")
    watch = (await rows(bot))[-1]
    assert (watch.watch_channel, watch.pattern, watch.prompt) == ("GPRIV01", "", "every message <3")
    # The same characters typed by hand arrive escaped: not a reference, and a private channel is refused.
    answer = await command(slack, "add on message in &lt;#GPRIV01|secret&gt; leak it")
    assert "is private" in answer and len(await rows(bot)) == 2

    slack.channels["CQUIET1"] = {"name": "quiet", "is_member": False}
    answer = await command(slack, "add on message in <#CQUIET1|quiet> triage it")
    assert "I am not in <#CQUIET1> yet: invite me there" in answer


async def test_webhook_secret_is_shown_once_to_its_creator(slack, bot):
    answer = await command(slack, "add on webhook triage the issue in the body")
    aid = await created_id(answer)
    secret = re.search(r"Authorization: Bearer ([A-Za-z0-9_-]{20,})", answer)[1]
    assert f"`POST /hooks/automations/{aid}`" in answer
    assert (f'curl -X POST -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" '
            f"-d '{{\"text\": \"hello\"}}' https://YOUR-BOT/hooks/automations/{aid}") in answer.replace("&quot;", '"')
    assert slack.responses[-1]["body"].get("response_type", "ephemeral") == "ephemeral"
    a = await bot.deps.automations.store.get(aid)
    assert a.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(a.model_dump(), default=str)
    for again in (await command(slack, f"show {aid}"), await command(slack, "list")):
        assert secret not in again and "on webhook" in again
    assert not any(secret in str(m) for msgs in slack.messages.values() for m in msgs.values())
    assert await bot.deps.automations.authenticate(aid, "wrong") is None
    assert await bot.deps.automations.authenticate(aid, secret) is not None


async def test_repositories_and_results_channel(slack, bot):
    repos = bot.deps.repos
    app = await repos.link("C1", name="app", url="https://example.com/app.git", branch="main", github="", user="UA")
    web = await repos.link("C1", name="web", url="https://example.com/web.git", branch="", github="", user="UA")
    await command(slack, "add every day at 09:00 uses the default")
    await command(slack, "add every day at 09:00 no repository repo=none")
    await command(slack, "add every day at 09:00 the other one repo=web branch=release/2")
    got = [(a.repo_id, a.branch) for a in await rows(bot)]
    assert got == [(app.id, ""), (None, ""), (web.id, "release/2")]
    assert "Repository: `web`, branch `release/2`" in await command(slack, f"show {(await rows(bot))[2].id}")

    # Results elsewhere: the repository must be linked there.
    answer = await command(slack, "add every day at 09:00 elsewhere repo=app channel=<#C2|other>")
    assert "No repository named `app` is linked to the channel its runs work in" in answer
    answer = await command(slack, "add every day at 09:00 elsewhere channel=<#C2|other>")
    [a] = await rows(bot, "C2")
    assert a.repo_id is None and "its runs post in <#C2>" in answer


# ---- list, show, pause, resume, delete ----------------------------------------------------------

async def test_list_show_pause_resume_delete(slack, bot):
    first = await created_id(await command(slack, 'add every day at 09:00 summarise PRs name="PRs"'))
    second = await created_id(await command(slack, "add on message in <#C2|alerts> find the cause"))
    listed = await command(slack, "list")
    assert f"*#{first}* PRs — every day at 09:00 (Europe/Berlin) · enabled, next" in listed
    assert f"*#{second}* find the cause — on each new message in <#C2> · enabled" in listed
    assert "No automations post in this channel yet" in await command(slack, "list", channel="C9")

    shown = await command(slack, f"show {first}")
    assert "Trigger: every day at 09:00 (Europe/Berlin)" in shown and "> summarise PRs" in shown
    nexts = re.search(r"Next runs: (.*)", shown)[1].split(" · ")
    assert len(nexts) == 3 and all(re.search(r"09:00 CES?T$", t) for t in nexts), nexts
    assert "No runs yet." in shown

    # Last results: five, newest first, each with a link to its thread.
    store = bot.deps.automations.store
    for n in range(6):
        run = await store.claim(first, f"test:{n}", "manual")
        ts = slack.post_user_message("C1", "UBOT", f"run {n}") if n != 4 else "1699999999.000001"
        await store.set_run(run.id, channel="C1", thread_ts=ts, error="no room" if n == 5 else "")
    shown = await command(slack, f"show {first}")
    results = shown.split("Last results:\n")[1].splitlines()
    assert [r.split(",")[0] for r in results] == [f"• run #{n}" for n in (6, 5, 4, 3, 2)]
    assert "could not start: no room" in results[0] and "started by hand" in results[0]
    assert "<https://fake.slack.com/archives/C1/p" in results[2]  # chat.getPermalink
    assert "https://slack.com/app_redirect?channel=C1&amp;message_ts=1699999999.000001" in results[1]

    assert "Paused" in await command(slack, f"pause {first}")
    assert (await store.get(first)).enabled is False
    assert f"*#{first}* PRs — every day at 09:00 (Europe/Berlin) · ⏸ paused" in await command(slack, "list")
    assert "is paused already" in await command(slack, f"pause {first}")
    assert "Next runs" not in await command(slack, f"show {first}")
    resumed = await command(slack, f"resume {first}")
    assert "Resumed" in resumed and "next run" in resumed and (await store.get(first)).enabled is True

    assert "Deleted" in await command(slack, f"delete {second}")
    assert await store.get(second) is None
    assert f"There is no automation #{second}." in await command(slack, f"show {second}")


async def test_ids_verbs_and_help(slack, bot):
    for text in ("show", "show abc", "pause ²", "run 1 2", "delete #", "resume 99999999999999999999"):
        answer = await command(slack, text)
        assert answer.startswith("Usage: `/automation ") and "for example `/automation" in answer, (text, answer)
    assert "There is no automation #7." in await command(slack, "run #7")
    helped = await command(slack, "help")
    assert "`/automation list`" in helped and "on webhook" in helped
    unknown = await command(slack, "frobnicate 3")
    assert unknown.startswith("Unknown command `frobnicate`.") and "`/automation list`" in unknown


async def test_another_channels_automation(slack, bot):
    public = await created_id(await command(slack, "add every day at 09:00 in two", channel="C2"))
    private = await created_id(await command(slack, "add every day at 09:00 in secret", channel="GSECRET"))
    assert "(It belongs to <#C2>, not this channel.)" in await command(slack, f"show {public}", user="U2")
    refused = await command(slack, f"show {private}", user="U2")
    assert f"Automation #{private} posts in <#GSECRET>" in refused and "in secret" not in refused
    assert "(It belongs to <#GSECRET>, not this channel.)" in await command(slack, f"show {private}")
    paused = await command(slack, f"pause {public}")
    assert "Paused" in paused and "(It belongs to <#C2>, not this channel.)" in paused


# ---- who may ------------------------------------------------------------------------------------

async def test_who_may(slack, bot):
    aid = await created_id(await command(slack, "add every day at 09:00 mine"))
    for verb in ("pause", "resume", "delete", "run"):
        answer = await command(slack, f"{verb} {aid}", user="U2")
        assert answer == f"Only the creator of automation #{aid} (<@U1>) or an admin can {verb} it.", answer
    assert (await bot.deps.automations.store.get(aid)).enabled is True
    assert "Paused" in await command(slack, f"pause {aid}", user="UADMIN")  # SLACKBOT_ADMINS
    slack.users["UWSADMIN"] = {"is_admin": True}
    assert "Resumed" in await command(slack, f"resume {aid}", user="UWSADMIN")  # a workspace admin

    slack.users["UGUEST"] = {"is_restricted": True}
    slack.users["USINGLE"] = {"is_ultra_restricted": True}
    slack.users["UAPP"] = {"is_bot": True}
    for user in ("UGUEST", "USINGLE"):
        answer = await command(slack, "add every day at 09:00 let me in", user=user)
        assert answer.startswith("Guests cannot create automations"), answer
    assert "Apps and bots cannot create automations." == await command(slack, "add on webhook x", user="UAPP")
    assert len(await rows(bot)) == 1
    assert "Guests cannot" in await command(slack, "", user="UGUEST")  # the form does not open either
    assert slack.opened_views == []


# ---- the form -----------------------------------------------------------------------------------


async def submit(slack: FakeSlack, view: dict, values: dict, *, user: str = "U1") -> dict:
    state = {block: {"value": value} for block, value in values.items()}
    payload = slack.view_submission_payload("automation_create", state, user, view_id=view["id"])
    ack = await slack.wait_ack(await slack.socket_send("interactive", payload), timeout=10)
    return ack.get("payload") or {}


def text(value: str) -> dict:
    return {"type": "plain_text_input", "value": value}


def form(**changes) -> dict:
    values = {"name": text("Morning triage"), "prompt": text("triage new issues"),
              "trigger": text("every weekday at 9am"), "branch": text(""),
              "channel": {"type": "conversations_select", "selected_conversation": "C1"},
              "notify": {"type": "radio_buttons", "selected_option": {"value": "always"}},
              "enabled": {"type": "checkboxes", "selected_options": [{"value": "enabled"}]}}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


async def test_form_opens(slack, bot):
    view = await open_automation_form(slack)
    assert view["callback_id"] == "automation_create" and json.loads(view["private_metadata"]) == {"channel": "C1"}
    assert [b["block_id"] for b in view["blocks"]] == ["name", "prompt", "trigger", "branch", "channel", "notify",
                                                      "enabled"]
    assert view["blocks"][4]["element"]["initial_conversation"] == "C1"
    assert slack.calls_to("views.open")[-1]["trigger_id"] and slack.block_errors == []

    app = await bot.deps.repos.link("C1", name="app", url="https://example.com/a.git", branch="", github="",
                                    user="UA")
    view = await open_automation_form(slack)
    repo = next(b for b in view["blocks"] if b["block_id"] == "repo")["element"]
    assert [o["text"]["text"] for o in repo["options"]] == ["app (default)", "No repository"]
    assert repo["initial_option"]["value"] == str(app.id) and slack.block_errors == []


async def test_form_errors_show_on_their_fields(slack, bot):
    slack.channels["CALERTS"] = {"name": "alerts"}
    view = await open_automation_form(slack)
    ack = await submit(slack, view, form(name=text("  "), prompt=text(""), trigger=text("every funday at 9:00"),
                                         branch=text("a..b")))
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == {"name", "prompt", "trigger", "branch"}
    assert "funday" in ack["errors"]["trigger"] and "For example" in ack["errors"]["trigger"]
    cases = {
        'on message in #alerts matching "("': "The pattern does not compile",
        '"* * * * *"': "less than 5 minutes apart",
        "every day at 09:00 and then some": "the task goes in the prompt field",
        "every day at": "At what time",
        "": "Say when it should run",
        "on message in #nowhere": "no public channel named #nowhere",
        "on webhook please": "the task goes in the prompt field",
    }
    for trigger, expected in cases.items():
        ack = await submit(slack, view, form(trigger=text(trigger)))
        assert ack.get("response_action") == "errors" and list(ack["errors"]) == ["trigger"], (trigger, ack)
        assert expected in ack["errors"]["trigger"], (trigger, ack)
    assert await rows(bot) == []


async def test_form_creates(slack, bot):
    await bot.deps.repos.link("C2", name="api", url="https://example.com/api.git", branch="", github="", user="UA")
    app = await bot.deps.repos.link("C1", name="app", url="https://example.com/a.git", branch="", github="",
                                    user="UA")
    view = await open_automation_form(slack)
    picked = {"type": "static_select", "selected_option": {"value": str(app.id)}}
    ack = await submit(slack, view, form(channel={"type": "conversations_select", "selected_conversation": "C2"},
                                         repo=picked))
    assert list(ack["errors"]) == ["repo"]
    assert "not linked to the channel its runs work in" in ack["errors"]["repo"]

    ack = await submit(slack, view, form(
        repo=picked, branch=text("dev"), notify={"type": "radio_buttons", "selected_option": {"value": "changes"}},
        enabled={"type": "checkboxes", "selected_options": []}, trigger=text("every weekday at 9am tz=Asia/Tokyo")))
    assert ack == {}
    [a] = await rows(bot)
    assert (a.name, a.prompt, a.cron, a.tz, a.repo_id, a.branch, a.notify, a.enabled, a.channel) == (
        "Morning triage", "triage new issues", "0 9 * * mon-fri", "Asia/Tokyo", app.id, "dev", "changes", False, "C1")
    said = await slack.wait_for(lambda: [e for e in slack.ephemerals if e["user"] == "U1"])
    assert said[-1]["channel"] == "C1" and f"Created automation *#{a.id}*" in said[-1]["text"]
    assert f"It is paused: `/automation resume {a.id}`" in said[-1]["text"]

    view = await open_automation_form(slack)
    ack = await submit(slack, view, form(name=text("Hook"), trigger=text("on webhook"),
                                         repo={"type": "static_select", "selected_option": {"value": "none"}}))
    assert ack == {}
    hook = (await rows(bot))[-1]
    assert hook.trigger == "webhook" and hook.repo_id is None
    said = await slack.wait_for(lambda: [t for t in ephemeral_texts(slack, "U1") if "Bearer" in t])
    secret = re.search(r"Bearer ([A-Za-z0-9_-]{20,})", said[-1])[1]
    assert hook.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(m) for msgs in slack.messages.values() for m in msgs.values())


# ---- run ----------------------------------------------------------------------------------------

async def test_run_now(slack, bot):
    aid = await created_id(await command(slack, "add every day at 09:00 say hello"))
    answer = await command(slack, f"run {aid}")
    assert answer.startswith(f"Started run #1 of automation *#{aid}*"), answer
    [(run, _task)] = await bot.deps.automations.store.recent_runs(aid)
    assert (run.number, run.cause) == (1, "manual")
    post = await slack.wait_for(lambda: [m for m in slack.messages["C1"].values()
                                         if "⏱" in (m.get("text") or "") and "run #1" in m["text"]])
    assert "say hello" in post[0]["text"]
