"""Cron as people write it, on APScheduler 3: Sunday as 0 and 7, day-of-month OR day-of-week,
daylight-saving days. Every fire time is computed from a fixed instant (no sleeping, no clock)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from slackbot.automations.cron import CronError, as_utc, fire_key, next_fires, trigger, weekdays

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fires(expression: str, after: datetime, count: int, tz: ZoneInfo | timezone = UTC) -> list[datetime]:
    return next_fires(trigger(expression, tz), after, count)


def shown(times: list[datetime]) -> list[str]:
    return [t.strftime("%a %m-%d %H:%M") for t in times]


def in_utc(times: list[datetime]) -> list[str]:
    return [fire_key(t) for t in times]


@pytest.mark.parametrize("expression", ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun", "0 9 * * SUN"])
def test_sunday_is_0_and_7(expression):
    got = fires(expression, datetime(2026, 12, 2, tzinfo=UTC), 2)  # a Wednesday
    assert shown(got) == ["Sun 12-06 09:00", "Sun 12-13 09:00"]


def test_day_of_month_or_day_of_week_when_both_are_restricted():
    # December 2026 starts on a Tuesday: the 1st fires for the day of the month, Mondays for the week.
    assert isinstance(trigger("0 9 1 * mon", UTC).inner, OrTrigger)
    got = fires("0 9 1 * mon", datetime(2026, 11, 28, tzinfo=UTC), 5)  # a Saturday
    assert shown(got) == ["Mon 11-30 09:00", "Tue 12-01 09:00", "Mon 12-07 09:00", "Mon 12-14 09:00",
                          "Mon 12-21 09:00"]


def test_a_star_in_either_day_field_means_both_must_match():
    # `*/10` starts with `*`, so cron ANDs: Mondays that are the 1st, 11th, 21st or 31st.
    got = fires("0 9 */10 * mon", datetime(2026, 1, 1, tzinfo=UTC), 3)
    assert [t.date().isoformat() for t in got] == ["2026-05-11", "2026-06-01", "2026-08-31"]


def test_a_day_of_the_month_that_never_comes_leaves_the_weekdays():
    got = fires("0 9 30 2 mon", datetime(2026, 1, 1, tzinfo=UTC), 5)
    assert [t.date().isoformat() for t in got] == ["2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23",
                                                   "2027-02-01"]


def test_weekdays_skip_the_weekend():
    got = fires("30 8 * * mon-fri", datetime(2026, 12, 3, 9, tzinfo=UTC), 6)  # Thursday after 8:30
    assert shown(got) == ["Fri 12-04 08:30", "Mon 12-07 08:30", "Tue 12-08 08:30", "Wed 12-09 08:30",
                          "Thu 12-10 08:30", "Fri 12-11 08:30"]
    assert fires("30 8 * * 1-5", datetime(2026, 12, 3, 9, tzinfo=UTC), 6) == got


def test_steps():
    got = fires("*/15 * * * *", datetime(2026, 1, 1, 23, 7, tzinfo=UTC), 5)
    assert in_utc(got) == ["2026-01-01T23:15:00Z", "2026-01-01T23:30:00Z", "2026-01-01T23:45:00Z",
                           "2026-01-02T00:00:00Z", "2026-01-02T00:15:00Z"]
    got = fires("10-40/15 9 * * *", datetime(2026, 1, 1, tzinfo=UTC), 4)
    assert shown(got) == ["Thu 01-01 09:10", "Thu 01-01 09:25", "Thu 01-01 09:40", "Fri 01-02 09:10"]


def test_month_names_and_macros():
    got = fires("0 0 1 JAN-mar/2,dec *", datetime(2026, 1, 2, tzinfo=UTC), 3)
    assert [t.date().isoformat() for t in got] == ["2026-03-01", "2026-12-01", "2027-01-01"]
    after = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)  # a Wednesday
    assert shown(fires("@hourly", after, 1)) == ["Wed 12-02 11:00"]
    assert shown(fires("@daily", after, 1)) == ["Thu 12-03 00:00"]
    assert shown(fires("@weekly", after, 1)) == ["Sun 12-06 00:00"]
    assert shown(fires("@monthly", after, 1)) == ["Fri 01-01 00:00"]


@pytest.mark.parametrize(("field", "names"), [
    ("0", ["sun"]), ("7", ["sun"]), ("1-5", ["mon", "tue", "wed", "thu", "fri"]),
    ("0-6", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), ("5-7", ["fri", "sat", "sun"]),
    ("fri-sun", ["fri", "sat", "sun"]), ("*/2", ["tue", "thu", "sat", "sun"]), ("1-5/2", ["mon", "wed", "fri"]),
    ("sat,0", ["sat", "sun"]), ("0,6", ["sat", "sun"]), ("MON-fri", ["mon", "tue", "wed", "thu", "fri"]),
])
def test_days_of_the_week_are_translated(field, names):
    assert weekdays(field) == names


def test_fire_times_are_strictly_after_and_distinct():
    at_nine = datetime(2026, 5, 4, 9, tzinfo=UTC)
    got = fires("0 9 * * *", at_nine, 3)
    assert in_utc(got) == ["2026-05-05T09:00:00Z", "2026-05-06T09:00:00Z", "2026-05-07T09:00:00Z"]
    assert all(t.tzinfo is not None for t in got)


def test_spring_forward_fires_a_time_in_the_gap_once():
    # Berlin jumps from 02:00 to 03:00 on 2026-03-29. APScheduler reads 02:30 with the old offset
    # (+01:00), which is 01:30 UTC: the job runs once that day, at 03:30 summer time.
    got = fires("30 2 * * *", datetime(2026, 3, 28, tzinfo=BERLIN), 3, BERLIN)
    assert [t.isoformat() for t in got] == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00",
                                            "2026-03-30T02:30:00+02:00"]
    assert in_utc(got) == ["2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"]


def test_fall_back_fires_a_repeated_time_once():
    # 02:30 happens twice on 2026-10-25 in Berlin; plain APScheduler fires in both passes.
    plain = CronTrigger(minute=30, hour=2, timezone=BERLIN)
    first_pass = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert fire_key(plain.get_next_fire_time(None, first_pass + timedelta(seconds=1))) == "2026-10-25T01:30:00Z"

    got = fires("30 2 * * *", datetime(2026, 10, 24, tzinfo=BERLIN), 3, BERLIN)
    assert [t.isoformat() for t in got] == ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00",
                                            "2026-10-26T02:30:00+01:00"]


def test_the_scheduler_path_skips_the_repeat_too():
    # APScheduler asks get_next_fire_time(previous, now) itself, so the trigger must skip as well.
    t = trigger("30 2 * * *", BERLIN)
    previous = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)  # first pass, 00:30 UTC
    in_second_pass = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 winter time
    assert t.get_next_fire_time(previous, in_second_pass).isoformat() == "2026-10-26T02:30:00+01:00"
    assert t.get_next_fire_time(None, in_second_pass).isoformat() == "2026-10-26T02:30:00+01:00"


def test_an_hourly_job_runs_each_wall_clock_hour_once_when_clocks_go_back():
    got = fires("0 * * * *", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 4, BERLIN)
    assert [t.strftime("%H:%M%z") for t in got] == ["01:00+0200", "02:00+0200", "03:00+0100", "04:00+0100"]


@pytest.mark.parametrize(("after", "local", "utc"), [
    (datetime(2026, 3, 27, 12, tzinfo=BERLIN), ["03-28 09:00 +0100", "03-29 09:00 +0200"],
     ["2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"]),
    (datetime(2026, 10, 23, 12, tzinfo=BERLIN), ["10-24 09:00 +0200", "10-25 09:00 +0100"],
     ["2026-10-24T07:00:00Z", "2026-10-25T08:00:00Z"]),
])
def test_nine_oclock_stays_nine_oclock_across_the_change(after, local, utc):
    got = fires("0 9 * * *", after, 2, BERLIN)
    assert [t.strftime("%m-%d %H:%M %z") for t in got] == local
    assert in_utc(got) == utc
    assert as_utc(got[1]) - as_utc(got[0]) in (timedelta(hours=23), timedelta(hours=25))


def test_new_york():
    got = fires("0 9 * * *", datetime(2026, 3, 7, 12, tzinfo=NEW_YORK), 2, NEW_YORK)  # clocks forward 03-08
    assert in_utc(got) == ["2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"]
    assert [t.strftime("%H:%M") for t in got] == ["09:00", "09:00"]
    got = fires("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), 2, NEW_YORK)  # back 11-01
    assert [t.isoformat() for t in got] == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_fire_key_is_utc_to_the_second():
    assert fire_key(datetime(2026, 3, 29, 9, tzinfo=BERLIN)) == "2026-03-29T07:00:00Z"
    assert fire_key(datetime(2026, 3, 29, 7, 0, 0, 999, tzinfo=UTC)) == "2026-03-29T07:00:00Z"
    with pytest.raises(ValueError):
        as_utc(datetime(2026, 3, 29, 9))


def test_a_stored_trigger_comes_back_the_same():
    t = trigger("0 9 1 * mon", BERLIN)
    back = pickle.loads(pickle.dumps(t))
    after = datetime(2026, 11, 28, tzinfo=UTC)
    assert next_fires(back, after, 4) == next_fires(t, after, 4)
    assert str(back) == "cron[0 9 1 * mon]"


@pytest.mark.parametrize(("bad", "why"), [
    ("", "five fields"), ("0 9 * *", "has 4"), ("0 9 * * * *", "has 6"), ("@reboot", "five fields"),
    ("61 9 * * *", "minute must be 0-59"), ("0 24 * * *", "hour must be 0-23"),
    ("0 9 0 * *", "day of the month must be 1-31"), ("0 9 * 13 *", "month must be 1-12"),
    ("0 9 * * 8", "0-7 or sun-sat"), ("0 9 * * funday", "`funday` is not"), ("0 9 * * sat-mon", "backwards"),
    ("0 9 * * */0", "step"), ("0 9 * * ²", "`²` is not"), ("x 9 * * *", "`x` is not"),
    ("0 0 30 2 *", "never fires"), ("0 9 L * *", "`L` is not"), ("0 9 ? * mon", "`?` is not"),
])
def test_bad_schedules_say_why_with_an_example(bad, why):
    with pytest.raises(CronError) as err:
        trigger(bad, UTC)
    assert why in str(err.value)
    assert "`0 9 * * mon-fri`" in str(err.value)
    assert isinstance(err.value, ValueError)
