"""What people type after `/automation add`, read into a schedule and a prompt; every error shows a
form that works."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from slackbot.automations.cron import fire_key, next_fires, trigger
from slackbot.automations.when import Schedule, ScheduleError, describe, parse_schedule, validate_tz

BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(("text", "cron", "label", "prompt"), [
    ('"0 9 * * mon-fri" triage new issues', "0 9 * * mon-fri", "every weekday at 09:00", "triage new issues"),
    ("\u201c0 9 * * 1-5\u201d triage new issues", "0 9 * * 1-5", "every weekday at 09:00", "triage new issues"),
    ("\u20180 9 * * 1-5\u2019 triage", "0 9 * * 1-5", "every weekday at 09:00", "triage"),
    ("'0 9 1 * mon' pay the bills", "0 9 1 * mon", "`0 9 1 * mon`", "pay the bills"),
    ('"@daily" tidy up', "0 0 * * *", "every day at 00:00", "tidy up"),
    ("every day at 09:00 summarise yesterday's PRs", "0 9 * * *", "every day at 09:00", "summarise yesterday's PRs"),
    ("Every day at 9am go", "0 9 * * *", "every day at 09:00", "go"),
    ("every day at 9:30pm go", "30 21 * * *", "every day at 21:30", "go"),
    ("every day at 12am go", "0 0 * * *", "every day at 00:00", "go"),
    ("every day at 12 pm go", "0 12 * * *", "every day at 12:00", "go"),
    ("every day at 9 amazing things", "0 9 * * *", "every day at 09:00", "amazing things"),
    ("every day at 09:00, summarise", "0 9 * * *", "every day at 09:00", "summarise"),
    ("every weekday at 8:30 stand-up notes", "30 8 * * mon-fri", "every weekday at 08:30", "stand-up notes"),
    ("every monday at 8:30 plan the week", "30 8 * * mon", "every Monday at 08:30", "plan the week"),
    ("every sun at 18:00 backups", "0 18 * * sun", "every Sunday at 18:00", "backups"),
    ("every hour check CI", "0 * * * *", "every hour", "check CI"),
    ("hourly check CI", "0 * * * *", "every hour", "check CI"),
    ("every 2 hours check CI", "0 */2 * * *", "every 2 hours", "check CI"),
    ("every 120 minutes check CI", "0 */2 * * *", "every 2 hours", "check CI"),
    ("every 15 minutes check the deploy", "*/15 * * * *", "every 15 minutes", "check the deploy"),
    ("every 5 mins ping", "*/5 * * * *", "every 5 minutes", "ping"),
    ("daily at 17:00 wrap up", "0 17 * * *", "every day at 17:00", "wrap up"),
])
def test_forms(text, cron, label, prompt):
    schedule, rest = parse_schedule(text, BERLIN)
    assert schedule == Schedule(cron, BERLIN, f"{label} ({BERLIN})")
    assert rest == prompt
    trigger(schedule.cron, schedule.tz)  # what the scheduler will be given


@pytest.mark.parametrize("text", [
    "tz=America/New_York every day at 09:00 standup",
    "every day at 09:00 tz=America/New_York standup",
    "every day at 09:00 standup tz=america/new_york",
])
def test_a_time_zone_token_anywhere(text):
    schedule, prompt = parse_schedule(text, BERLIN)
    assert (schedule.tz, schedule.label, prompt) == (
        "America/New_York", "every day at 09:00 (America/New_York)", "standup")


def test_the_schedule_runs_when_it_says():
    schedule, _ = parse_schedule("every 15 minutes check", "UTC")
    got = next_fires(trigger(schedule.cron, schedule.tz), datetime(2026, 1, 1, 9, 1, tzinfo=timezone.utc), 3)
    assert [fire_key(t) for t in got] == ["2026-01-01T09:15:00Z", "2026-01-01T09:30:00Z", "2026-01-01T09:45:00Z"]
    schedule, _ = parse_schedule("every weekday at 9am tz=Europe/Berlin check", "UTC")
    got = next_fires(trigger(schedule.cron, schedule.tz), datetime(2026, 3, 27, 12, tzinfo=timezone.utc), 2)
    assert [fire_key(t) for t in got] == ["2026-03-30T07:00:00Z", "2026-03-31T07:00:00Z"]  # Mon, Tue


@pytest.mark.parametrize(("text", "why"), [
    ('"0 9 * *" triage', "five fields; `0 9 * *` has 4"),
    ('"0 9 * * * *" triage', "has 6"),
    ('"61 9 * * *" triage', "minute must be 0-59"),
    ('"0 25 * * *" triage', "hour must be 0-23"),
    ('"0 9 32 * *" triage', "day of the month must be 1-31"),
    ('"0 9 * * 8" triage', "day of the week must be 0-7"),
    ('"0 9 * * funday" triage', "`funday` is not"),
    ("every funday at 9 party", "`funday` is not a day I know"),
    ("every day at 09:00 tz=Mars/Base triage", "`Mars/Base` is not a time zone"),
    ("tz=Europe triage", "`Europe` is not a time zone"),
    ("every day at 09:00", "What should it do?"),
    ('"0 9 * * mon-fri"   ', "What should it do?"),
    ("every day at 09:00 tz=UTC", "What should it do?"),
    ("every 2 minutes ping", "Every 2 minutes is too often"),
    ("every minute ping", "Every minute is too often"),
    ('"*/2 * * * *" ping', "less than 5 minutes apart"),
    ('"0,1 9 * * *" ping', "less than 5 minutes apart"),
    ("every 45 minutes ping", "does not divide the hour"),
    ("every 5 hours ping", "does not divide the day"),
    ("every day at 25:00 go", "`25:00` is not a time of day"),
    ("every day at 9:75 go", "`9:75` is not a time of day"),
    ("every day at 13pm go", "`13pm` is not a time of day"),
    ("every day at noon go", "`noon` is not a time of day"),
    ("every day go", "At what time?"),
    ("daily go", "At what time?"),
    ('"0 9 * * mon-fri triage', "closing quote"),
    ("0 9 * * mon-fri triage", "in quotes"),
    ("please summarise the PRs", "`please summarise the` is not a schedule"),
    ("", "Say when it should run"),
])
def test_errors_say_why_and_show_a_form_that_works(text, why):
    with pytest.raises(ScheduleError) as err:
        parse_schedule(text, BERLIN)
    assert why in str(err.value)
    assert "`/automation add " in str(err.value)
    assert isinstance(err.value, ValueError)


def test_time_zones():
    assert validate_tz("Europe/Berlin") == "Europe/Berlin"
    assert validate_tz("asia/tokyo") == "Asia/Tokyo"
    assert validate_tz("UTC") == "UTC"
    for bad in ["Mars/Base", "", "../etc/passwd", "/etc/localtime", "Europe", "x" * 300]:
        with pytest.raises(ScheduleError, match="is not a time zone I know"):
            validate_tz(bad)
    with pytest.raises(ScheduleError, match="`Nowhere/Land`"):
        parse_schedule("every day at 09:00 triage", "Nowhere/Land")


@pytest.mark.parametrize(("cron", "label"), [
    ("0 9 * * *", "every day at 09:00"),
    ("0 9 * * 1-5", "every weekday at 09:00"),
    ("30 8 * * 1", "every Monday at 08:30"),
    ("0 9 * * 7", "every Sunday at 09:00"),
    ("@weekly", "every Sunday at 00:00"),
    ("0 12 15 * *", "on day 15 of every month at 12:00"),
    ("* * * * *", "every minute"),
    ("*/15 * * * *", "every 15 minutes"),
    ("15 * * * *", "every hour at :15"),
    ("0 */6 * * *", "every 6 hours"),
    ("0 9 1 * mon", "`0 9 1 * mon`"),
    ("*/7 * * * *", "`*/7 * * * *`"),
    ("0 9 * * 0,6", "`0 9 * * 0,6`"),
    ("not a cron", "`not a cron`"),
])
def test_describe(cron, label):
    assert describe(cron) == label


def test_a_quoted_natural_schedule_reads_like_the_bare_one():
    """The contract's form is `/automation add "SCHEDULE" PROMPT`: SCHEDULE may be words too."""
    assert parse_schedule('"every day at 09:00" summarise PRs', "UTC")[0].cron == "0 9 * * *"
    assert parse_schedule("“every monday at 8:30” update deps", "UTC") == (
        parse_schedule("every monday at 8:30 update deps", "UTC"))
    with pytest.raises(ScheduleError, match="/automation add"):
        parse_schedule('"every day at 09:00 please" x', "UTC")


def test_a_schedule_alone_for_the_forms_trigger_field():
    from slackbot.automations.when import parse_when

    assert parse_when("every weekday at 9am", "UTC").cron == "0 9 * * mon-fri"
    assert parse_when("0 9 * * 1-5 tz=Europe/Berlin", "UTC") == Schedule("0 9 * * 1-5", "Europe/Berlin",
                                                                          "every weekday at 09:00 (Europe/Berlin)")
    with pytest.raises(ScheduleError, match="prompt field"):
        parse_when("every day at 09:00 triage", "UTC")
    with pytest.raises(ScheduleError, match="/automation add"):
        parse_when("every day at", "UTC")
