"""Standard five-field cron, as people write it, turned into APScheduler 3 triggers.

APScheduler 3 numbers days of the week from Monday and has no 7, and it ANDs day-of-month with
day-of-week; cron numbers from Sunday (0 or 7) and, when both day fields are restricted (neither
starts with `*`), fires on either. So every field is checked and expanded here, days of the week
travel as names, and a restricted pair becomes an OrTrigger of two CronTriggers.

Daylight saving: each local wall-clock time fires at most once a day.
- Clocks go back: APScheduler 3 fires a daily 02:30 in both passes of the repeated hour; we skip the
  second pass, as cron does for a fixed-time job. (Cron repeats jobs whose minute or hour starts
  with `*`; we keep the one rule.)
- Clocks go forward: APScheduler reads a time in the gap with the old offset, so a daily 02:30 in
  Berlin fires once, at 03:30 new time (cron would run it at 03:00, right after the jump).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

EXAMPLE = "`0 9 * * mon-fri` (minute hour day-of-month month day-of-week)"
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


class CronError(ValueError):
    """A cron expression we cannot use; the message says why and shows a good one."""

    def __init__(self, why: str) -> None:
        super().__init__(f"{why} For example {EXAMPLE}.")
        self.why = why


class Cron(BaseTrigger):
    """A cron expression as an APScheduler trigger that fires each local wall-clock time once."""

    def __init__(self, expression: str, tz: tzinfo | str) -> None:
        self.expression = expression
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.inner = _build(expression, self.tz)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return _next(self.inner, previous_fire_time, now)

    def __reduce__(self) -> tuple[type[Cron], tuple[str, tzinfo]]:
        # Job stores pickle triggers: keep the expression, rebuild the rest.
        return (Cron, (self.expression, self.tz))

    def __str__(self) -> str:
        return f"cron[{self.expression}]"

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {self.tz!r})"


def trigger(expression: str, tz: tzinfo | str) -> BaseTrigger:
    """The trigger for a cron expression (five fields or @daily and friends) in time zone `tz`."""
    return Cron(expression, tz)


def fires(trig: BaseTrigger, after: datetime) -> Iterator[datetime]:
    """The fire times strictly after `after`, earliest first, in the trigger's zone."""
    now = as_utc(after) + timedelta(microseconds=1)
    while (nxt := _next(trig, None, now)) is not None:
        yield nxt
        now = as_utc(nxt) + timedelta(microseconds=1)


def next_fires(trig: BaseTrigger, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, earliest first, in the trigger's zone."""
    return list(itertools.islice(fires(trig, after), count))


def fire_key(dt: datetime) -> str:
    """The key of one firing for the at-most-once claim: UTC to the second, `2026-03-29T07:00:00Z`."""
    return as_utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(dt: datetime) -> datetime:
    """`dt` in UTC. Aware datetimes only: a naive one's zone would be a guess."""
    if dt.utcoffset() is None:
        raise ValueError(f"{dt!r} has no time zone")
    return dt.astimezone(timezone.utc)


def weekdays(field: str) -> list[str]:
    """Cron's day-of-week field (0 or 7 = Sunday, names, ranges, lists, steps) as names, Monday first."""
    days = {d % 7 for d in expand(field, 4)}
    return [DAYS[d] for d in sorted(days, key=lambda d: (d + 6) % 7)]


FIELDS = (  # name, lowest, highest, names for lowest upwards
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of the month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of the week", 0, 7, DAYS),
)


def expand(field: str, position: int) -> set[int]:
    """The values one field allows (lists, ranges, `*`, steps, names); `position` counts from 0."""
    what, lo, hi, _ = FIELDS[position]
    values: set[int] = set()
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isascii() and step_text.isdigit() else 0
        if slash and step < 1:
            raise CronError(f"The step in `{field}` must be a whole number of 1 or more.")
        if base == "*":
            first, last = lo, (6 if position == 4 else hi)  # 7 is Sunday again
        else:
            low, dash, high = base.partition("-")
            first = _value(low, position)
            last = _value(high, position) if dash else (hi if slash else first)
            if position == 4 and last == 0 < first:  # `fri-sun`: Sunday ends the week
                last = 7
        if first > last:
            raise CronError(f"The range `{base}` in the {what} runs backwards; put the smaller end first.")
        values.update(range(first, last + 1, step or 1))
    return values


def _value(token: str, position: int) -> int:
    what, lo, hi, names = FIELDS[position]
    if token.lower() in names:
        return names.index(token.lower()) + lo
    if token.isascii() and token.isdigit() and lo <= int(token) <= hi:
        return int(token)
    allowed = f"{lo}-{hi}" + (f" or {names[0]}-{names[-1]}" if names else "")
    sunday = " (0 and 7 are Sunday)" if position == 4 else ""
    raise CronError(f"The {what} must be {allowed}{sunday}; `{token}` is not.")


def _build(expression: str, tz: tzinfo) -> BaseTrigger:
    fields = MACROS.get(expression.strip().lower(), expression).split()
    if len(fields) != 5:
        raise CronError(f"A cron schedule has five fields; `{expression}` has {len(fields)}.")
    minute, hour, dom, month, dow = fields
    days = expand(dom, 2)
    months = expand(month, 3)
    common = {
        "minute": _listed(minute, expand(minute, 0)),
        "hour": _listed(hour, expand(hour, 1)),
        "month": _listed(month, months),
        "timezone": tz,
    }
    by_week = "*" if dow == "*" else ",".join(weekdays(dow))
    by_month = _listed(dom, days)
    day_comes = min(days) <= max(MONTH_DAYS[m - 1] for m in months)
    both = not dom.startswith("*") and not dow.startswith("*")
    if not day_comes and not both:
        raise CronError(f"`{expression}` never fires: no month it names has day {min(days)}.")
    try:
        if not both:  # cron ANDs the day fields when either starts with `*`
            return CronTrigger(day=by_month, day_of_week=by_week, **common)
        week = CronTrigger(day_of_week=by_week, **common)
        return OrTrigger([CronTrigger(day=by_month, **common), week]) if day_comes else week
    except ValueError as exc:
        raise CronError(f"`{expression}` is not a schedule APScheduler can use ({exc}).") from exc


def _listed(field: str, values: set[int]) -> str:
    return "*" if field == "*" else ",".join(str(v) for v in sorted(values))


def _next(trig: BaseTrigger, previous: datetime | None, now: datetime) -> datetime | None:
    """The trigger's next fire time, skipping the second pass of a repeated (fall-back) hour."""
    nxt = trig.get_next_fire_time(previous, now)
    while nxt is not None and _repeated(nxt):
        # Not (previous, nxt + 1s): with a previous time CronTrigger restarts from just after it
        # and returns this time again. A UTC `now` also keeps the fold that local arithmetic drops.
        nxt = trig.get_next_fire_time(None, as_utc(nxt) + timedelta(seconds=1))
    return None if nxt is None else as_utc(nxt).astimezone(nxt.tzinfo)


def _repeated(dt: datetime) -> bool:
    """True when this wall-clock time already happened earlier the same day (clocks went back)."""
    local = as_utc(dt).astimezone(dt.tzinfo)
    return as_utc(local.replace(fold=0)) < as_utc(local)
