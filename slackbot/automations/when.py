"""What people type after `/automation add`: when it should run, then what it should do.

  "0 9 * * mon-fri" triage new issues      cron in straight or Slack's curly quotes
  every day at 09:00 …, daily at 5pm …     also 9am, 9:30pm, 17:00
  every weekday at 8:30 …, every monday at 8:30 …
  every hour …, hourly …, every 2 hours …, every 15 minutes …

A `tz=Area/City` token may stand anywhere; without one the default zone applies.

Intervals must divide the hour (or the day) evenly, because a cron step starts again every hour:
`*/45` fires at :00 and :45, fifteen minutes apart. Nothing runs more often than every 5 minutes,
and a quoted cron whose runs come closer than that is refused as well.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import timezone

from . import cron

EXAMPLE = '/automation add "0 9 * * mon-fri" triage new issues'
EXAMPLE_WORDS = "/automation add every day at 09:00 summarise yesterday's PRs"
EXAMPLE_DAY = "/automation add every monday at 09:00 plan the week"
EXAMPLE_OFTEN = "/automation add every 15 minutes check the deploy"
EXAMPLE_TZ = "/automation add every day at 09:00 tz=Europe/Berlin summarise yesterday's PRs"
MIN_MINUTES = 5
MINUTE_STEPS = (5, 6, 10, 12, 15, 20, 30)
HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
DAY_NAMES = dict(zip(cron.DAYS, ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")))
DAY_WORDS = {name.lower(): day for day, name in DAY_NAMES.items()} | {day: day for day in cron.DAYS}
DAY_WORDS |= {"tues": "tue", "thur": "thu", "thurs": "thu", "day": "*", "weekday": "mon-fri"}
QUOTES = "\"'\u201c\u201d\u2018\u2019"
SEPARATORS = " \t\n,:;-\u2013\u2014"

TZ = re.compile(r"(?<!\S)tz=(\S*)\s*", re.IGNORECASE)
QUOTED = re.compile(f"[{QUOTES}]([^{QUOTES}]*)[{QUOTES}]")
EVERY_N = re.compile(r"every\s+(?:([0-9]+)\s+)?(minute|min|hour|hr)s?(?!\w)", re.IGNORECASE)
HOURLY = re.compile(r"hourly(?!\w)", re.IGNORECASE)
DAY_AT = re.compile(
    r"(?:every\s+(?P<day>\w+)|daily)"
    r"(?P<at>\s+at(?:\s+(?P<time>[0-9]{1,2}(?::[0-9]{2})?(?:\s*[ap]m)?)(?![\w:]|\.[0-9]))?)?",
    re.IGNORECASE,
)
TIME = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?\s*([ap]m)?", re.IGNORECASE)
STEP = re.compile(r"\*/([0-9]+)")


class ScheduleError(ValueError):
    """A schedule we cannot read; the message says why and shows a form that works."""

    def __init__(self, why: str, *examples: str) -> None:
        shown = " or ".join(f"`{e}`" for e in examples or (EXAMPLE_WORDS,))
        super().__init__(f"{why} For example {shown}.")


@dataclass(frozen=True)
class Schedule:
    cron: str  # five fields that cron.trigger accepts
    tz: str  # an IANA zone name
    label: str  # how we show it: "every weekday at 09:00 (Europe/Berlin)"


def parse_schedule(text: str, default_tz: str) -> tuple[Schedule, str]:
    """The schedule at the start of `text` and the rest, the prompt."""
    tz = validate_tz(default_tz)
    if found := TZ.search(text):
        tz = validate_tz(found[1])
        text = text[: found.start()] + text[found.end() :]
    expression, rest = _take_schedule(text.strip())
    prompt = rest.lstrip(SEPARATORS).strip()
    if not prompt:
        raise ScheduleError("What should it do? Put the task after the schedule.", EXAMPLE_WORDS)
    return Schedule(expression, tz, f"{describe(expression)} ({tz})"), prompt


def parse_when(text: str, default_tz: str) -> Schedule:
    """A schedule alone (the form's trigger field): nothing may follow it."""
    tz = validate_tz(default_tz)
    if found := TZ.search(text):
        tz = validate_tz(found[1])
        text = text[: found.start()] + text[found.end() :]
    text = text.strip()
    if text and text[0] not in QUOTES and not text[0].isalpha():
        text = f'"{text}"'  # a bare cron expression is whole here: no prompt to tell it from
    expression, rest = _take_schedule(text)
    if rest.strip(SEPARATORS).strip():
        raise ScheduleError(f"I read “{describe(expression)}” but not “{rest.strip()[:60]}”: the task goes in "
                            "the prompt field.", EXAMPLE_WORDS)
    return Schedule(expression, tz, f"{describe(expression)} ({tz})")


def validate_tz(name: str) -> str:
    """The IANA name of zone `name` (letter case forgiven); ScheduleError naming it when unknown."""
    try:
        zoneinfo.ZoneInfo(name)
        return name
    except (KeyError, ValueError, OSError):  # not found, a path outside the database, a directory
        known = {zone.lower(): zone for zone in zoneinfo.available_timezones()}
        if name.lower() in known:
            return known[name.lower()]
    raise ScheduleError(f"`{name}` is not a time zone I know; use a name like Europe/Berlin.", EXAMPLE_TZ)


def describe(expression: str) -> str:
    """A readable name for a simple cron expression; anything else is shown as it is, in backticks."""
    fields = cron.MACROS.get(expression.strip().lower(), expression).split()
    try:
        cron.trigger(" ".join(fields), timezone.utc)
    except cron.CronError:
        return f"`{expression}`"
    minute, hour, dom, month, dow = fields
    minute_step, hour_step = STEP.fullmatch(minute), STEP.fullmatch(hour)
    if (dom, month, dow) == ("*", "*", "*"):
        if (minute, hour) == ("*", "*"):
            return "every minute"
        if minute_step and hour == "*" and int(minute_step[1]) in MINUTE_STEPS:
            return f"every {int(minute_step[1])} minutes"
        if minute.isdigit() and hour == "*":
            return "every hour" if int(minute) == 0 else f"every hour at :{int(minute):02}"
        if minute == "0" and hour_step and int(hour_step[1]) in HOUR_STEPS:
            return "every hour" if int(hour_step[1]) == 1 else f"every {int(hour_step[1])} hours"
    if not (minute.isdigit() and hour.isdigit() and month == "*"):
        return f"`{expression}`"
    at = f"at {int(hour):02}:{int(minute):02}"
    if dom == "*":
        days = cron.weekdays(dow)
        if len(days) == 7:
            return f"every day {at}"
        if days == WEEKDAYS:
            return f"every weekday {at}"
        if len(days) == 1:
            return f"every {DAY_NAMES[days[0]]} {at}"
    elif dow == "*" and dom.isdigit():
        return f"on day {int(dom)} of every month {at}"
    return f"`{expression}`"


def _take_schedule(text: str) -> tuple[str, str]:
    """The cron expression for the schedule `text` starts with, and the text after it."""
    if not text:
        raise ScheduleError("Say when it should run, then what it should do.", EXAMPLE_WORDS, EXAMPLE)
    if text[0] in QUOTES:
        if not (quoted := QUOTED.match(text)):
            raise ScheduleError("The cron expression needs a closing quote.", EXAMPLE)
        inner = quoted[1].strip()
        if inner and inner[0].isalpha():  # a quoted "every day at 09:00" reads like the bare form
            expression, left = _take_schedule(inner)
            if left.strip():
                raise ScheduleError(f"`{inner}` is not a schedule I know.", EXAMPLE_WORDS, EXAMPLE)
            return expression, text[quoted.end() :]
        return _checked_cron(quoted[1]), text[quoted.end() :]
    if every := EVERY_N.match(text):
        return _interval(every[1], every[2].lower()), text[every.end() :]
    if hourly := HOURLY.match(text):
        return "0 * * * *", text[hourly.end() :]
    if day_at := DAY_AT.match(text):
        return _daily(day_at), text[day_at.end() :]
    if text[0] in "0123456789*@":
        raise ScheduleError("Put the cron expression in quotes.", EXAMPLE)
    start = " ".join(text.split()[:3])
    raise ScheduleError(f"Start with when it should run; `{start}` is not a schedule I know.",
                        EXAMPLE_WORDS, EXAMPLE)


def _interval(count: str | None, unit: str) -> str:
    n = int(count) if count else 1
    if unit.startswith("m"):
        if n < MIN_MINUTES:
            said = "Every minute" if n == 1 else f"Every {n} minutes"
            raise ScheduleError(f"{said} is too often: automations run at most every {MIN_MINUTES} minutes.",
                                EXAMPLE_OFTEN)
        if n % 60:
            if n not in MINUTE_STEPS:
                raise ScheduleError(f"Every {n} minutes does not divide the hour evenly; choose 5, 6, 10, "
                                    "12, 15, 20 or 30 minutes, or a number of hours.", EXAMPLE_OFTEN)
            return f"*/{n} * * * *"
        n //= 60  # every 120 minutes is every 2 hours
    if n not in HOUR_STEPS:
        raise ScheduleError(f"Every {n} hours does not divide the day evenly; choose 1, 2, 3, 4, 6, 8 or "
                            "12 hours, or every day at a time.", "/automation add every 2 hours check the queue")
    return "0 * * * *" if n == 1 else f"0 */{n} * * *"


def _daily(found: re.Match[str]) -> str:
    word = (found["day"] or "day").lower()
    day = DAY_WORDS.get(word) or DAY_WORDS.get(word.removesuffix("s"))
    if day is None:
        raise ScheduleError(f"`{found['day']}` is not a day I know; say day, weekday or a day name "
                            "such as monday.", EXAMPLE_DAY)
    if found["time"] is None:
        after = found.string[found.end() :].split()[:1] if found["at"] else []
        if after:
            raise ScheduleError(f"`{after[0]}` is not a time of day; write 09:00, 9am or 5:30pm.", EXAMPLE_WORDS)
        raise ScheduleError("At what time? Write at and a time after the day: 09:00, 9am or 5:30pm.", EXAMPLE_WORDS)
    hour, minute = _time(found["time"])
    return f"{minute} {hour} * * {day}"


def _time(text: str) -> tuple[int, int]:
    parts = TIME.fullmatch(text)
    assert parts is not None  # DAY_AT only captures what TIME reads
    hour, minute, half = int(parts[1]), int(parts[2] or 0), (parts[3] or "").lower()
    if minute > 59 or hour > (12 if half else 23) or (half and hour == 0):
        raise ScheduleError(f"`{text}` is not a time of day; write 09:00, 9am or 5:30pm.", EXAMPLE_WORDS)
    if half:
        hour = hour % 12 + (12 if half == "pm" else 0)
    return hour, minute


def _checked_cron(text: str) -> str:
    expression = " ".join(text.split())
    expression = cron.MACROS.get(expression.lower(), expression)
    try:
        cron.trigger(expression, timezone.utc)
    except cron.CronError as exc:
        raise ScheduleError(f"{exc.why} The five fields are minute hour day-of-month month day-of-week.",
                            EXAMPLE) from exc
    if _shortest_gap(expression) < MIN_MINUTES:
        raise ScheduleError(f"`{expression}` runs less than {MIN_MINUTES} minutes apart: automations run at "
                            f"most every {MIN_MINUTES} minutes.", '/automation add "*/15 * * * *" check the deploy')
    return expression


def _shortest_gap(expression: str) -> int:
    """Minutes between the closest two runs, judged by the times of day (days may only widen it)."""
    minute, hour = expression.split()[:2]
    times = sorted(h * 60 + m for h in cron.expand(hour, 1) for m in cron.expand(minute, 0))
    return min(b - a for a, b in zip(times, times[1:] + [times[0] + 24 * 60]))
