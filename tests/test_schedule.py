"""Session schedules (machines/_schedule.py): windows, overnight and week-end boundaries, clock
changes, merged runs, and the configuration file's form."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import brokergate
from brokergate.machines import Schedule, ScheduleError, Window
from brokergate.machines._schedule import WEEKDAYS, schedule_from_mapping

EVERY_DAY = frozenset(range(7))
NEW_YORK = "America/New_York"
LONDON = "Europe/London"
CHICAGO = "America/Chicago"


def utc(year: int, month: int, day: int, *clock: int) -> datetime:
    """``utc(2026, 5, 11, 8)``: an instant given as its UTC wall time."""
    hour, minute, second, microsecond = (*clock, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def window(opens: datetime, closes: datetime) -> Window:
    return Window(opens, closes)


# -- plain days, overnight windows, the week's end ------------------------------------------------


def test_a_day_window_holds_its_open_and_not_its_close() -> None:
    s = Schedule(start=time(8), end=time(17))
    day = window(utc(2026, 5, 11, 8), utc(2026, 5, 11, 17))  # a Monday
    assert s.window_at(utc(2026, 5, 11, 8)) == day
    assert s.window_at(utc(2026, 5, 11, 16, 59, 59, 999999)) == day
    assert s.window_at(utc(2026, 5, 11, 17)) is None
    assert s.window_at(utc(2026, 5, 11, 7, 59, 59)) is None
    assert s.is_open(utc(2026, 5, 11, 12))
    assert not s.is_open(utc(2026, 5, 11, 17))


def test_an_aware_time_in_another_zone_is_the_same_instant() -> None:
    s = Schedule(start=time(8), end=time(17), timezone=CHICAGO)
    eastern = datetime(2026, 5, 11, 9, tzinfo=ZoneInfo(NEW_YORK))  # 08:00 in Chicago
    assert s.window_at(eastern) == window(utc(2026, 5, 11, 13), utc(2026, 5, 11, 22))
    plus_five = timezone(timedelta(hours=5))
    assert not s.is_open(datetime(2026, 5, 11, 17, 59, tzinfo=plus_five))  # 07:59 in Chicago
    assert s.is_open(datetime(2026, 5, 11, 18, tzinfo=plus_five))


def test_an_overnight_window_runs_past_midnight_into_the_next_day() -> None:
    s = Schedule(start=time(22), end=time(6))
    monday_night = window(utc(2026, 5, 11, 22), utc(2026, 5, 12, 6))
    assert s.window_at(utc(2026, 5, 12, 3)) == monday_night
    assert s.window_at(utc(2026, 5, 12, 0)) == monday_night
    assert s.window_at(utc(2026, 5, 12, 6)) is None
    assert s.window_at(utc(2026, 5, 11, 3)) is None  # Sunday night opened no window


def test_an_overnight_window_opening_friday_closes_on_saturday() -> None:
    s = Schedule(start=time(17), end=time(16), timezone=CHICAGO)  # mon-fri, CDT is UTC-5
    friday = window(utc(2026, 5, 8, 22), utc(2026, 5, 9, 21))
    assert s.window_at(utc(2026, 5, 9, 12)) == friday  # Saturday, not a weekday
    assert s.window_at(utc(2026, 5, 9, 21)) is None
    assert s.window_at(utc(2026, 5, 10, 23)) is None  # Sunday 18:00: no window opened
    assert s.next_window(utc(2026, 5, 9, 21)) == window(utc(2026, 5, 11, 22), utc(2026, 5, 12, 21))


def test_globex_week_opens_sunday_and_closes_friday() -> None:
    s = Schedule(start=time(17), end=time(16), timezone=CHICAGO,
                 weekdays=frozenset({6, 0, 1, 2, 3}))
    assert s.describe() == "17:00-16:00 (+1 day) America/Chicago, sun-thu"
    sunday = window(utc(2026, 5, 10, 22), utc(2026, 5, 11, 21))
    assert s.window_at(utc(2026, 5, 10, 22)) == sunday
    thursday = window(utc(2026, 5, 14, 22), utc(2026, 5, 15, 21))
    assert s.window_at(utc(2026, 5, 15, 20, 59)) == thursday
    assert s.window_at(utc(2026, 5, 15, 22)) is None  # Friday 17:00: the week is over
    assert s.next_window(utc(2026, 5, 15, 22)).opens == utc(2026, 5, 17, 22)


def test_a_holiday_drops_its_own_window_but_not_the_one_running_into_it() -> None:
    s = Schedule(start=time(17), end=time(16), timezone=CHICAGO,
                 holidays=frozenset({date(2026, 12, 25)}))  # a Friday; CST is UTC-6
    christmas_eve = window(utc(2026, 12, 24, 23), utc(2026, 12, 25, 22))
    assert s.window_at(utc(2026, 12, 25, 16)) == christmas_eve
    assert s.window_at(utc(2026, 12, 26, 0)) is None  # 18:00 on the holiday
    assert s.next_window(utc(2026, 12, 26, 0)) == window(utc(2026, 12, 28, 23),
                                                         utc(2026, 12, 29, 22))


def test_next_window_is_the_one_holding_now_or_the_next_to_open() -> None:
    s = Schedule(start=time(8), end=time(17))
    assert s.next_window(utc(2026, 5, 11, 9)) == window(utc(2026, 5, 11, 8), utc(2026, 5, 11, 17))
    assert s.next_window(utc(2026, 5, 11, 17)).opens == utc(2026, 5, 12, 8)
    assert s.next_window(utc(2026, 5, 11, 7)).opens == utc(2026, 5, 11, 8)


def test_next_window_gives_up_when_nothing_opens_within_400_days() -> None:
    mondays = frozenset(date(2026, 5, 11) + timedelta(weeks=n) for n in range(60))
    s = Schedule(start=time(8), end=time(17), weekdays=frozenset({0}), holidays=mondays)
    with pytest.raises(ValueError, match="no window opens within 400 days"):
        s.next_window(utc(2026, 5, 10))
    # The first Monday past the holidays is 420 days away; seven weeks later it is in reach.
    assert s.next_window(utc(2026, 6, 29)).opens == utc(2027, 7, 5, 8)


@pytest.mark.parametrize("method", ["window_at", "is_open", "next_window", "open_until"])
def test_a_naive_now_is_refused(method: str) -> None:
    s = Schedule(start=time(8), end=time(17))
    with pytest.raises(ValueError, match="has no time zone"):
        getattr(s, method)(datetime(2026, 5, 11, 9))


# -- clock changes --------------------------------------------------------------------------------


def test_new_york_spring_forward_a_skipped_start_is_the_first_instant_after_the_gap() -> None:
    s = Schedule(start=time(2, 30), end=time(12), timezone=NEW_YORK, weekdays=EVERY_DAY)
    # 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00 UTC; 02:30 never shows.
    short = s.window_at(utc(2026, 3, 8, 12))
    assert short == window(utc(2026, 3, 8, 7), utc(2026, 3, 8, 16))  # 03:00 EDT to 12:00 EDT
    assert s.window_at(utc(2026, 3, 8, 6, 59, 59)) is None
    usual = s.window_at(utc(2026, 3, 7, 12))
    assert usual == window(utc(2026, 3, 7, 7, 30), utc(2026, 3, 7, 17))
    assert short.closes - short.opens == timedelta(hours=9)  # 9.5 on other days


def test_new_york_spring_forward_a_skipped_end_closes_when_the_clocks_jump() -> None:
    s = Schedule(start=time(20), end=time(2, 30), timezone=NEW_YORK, weekdays=EVERY_DAY)
    saturday = s.window_at(utc(2026, 3, 8, 6))
    assert saturday == window(utc(2026, 3, 8, 1), utc(2026, 3, 8, 7))  # 20:00 EST to 03:00 EDT
    assert s.window_at(utc(2026, 3, 8, 7)) is None


def test_new_york_24_hour_windows_last_23_and_25_hours_on_the_change_days() -> None:
    s = Schedule(start=time(0), end=time(0), timezone=NEW_YORK, weekdays=EVERY_DAY)
    spring = s.window_at(utc(2026, 3, 8, 12))
    assert spring == window(utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    autumn = s.window_at(utc(2026, 11, 1, 12))
    assert autumn == window(utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert spring is not None and autumn is not None
    assert spring.closes - spring.opens == timedelta(hours=23)
    assert autumn.closes - autumn.opens == timedelta(hours=25)


def test_new_york_fall_back_a_repeated_time_is_its_first_occurrence() -> None:
    # 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC; 01:30 shows at 05:30 and 06:30 UTC.
    opening = Schedule(start=time(1, 30), end=time(12), timezone=NEW_YORK, weekdays=EVERY_DAY)
    long = opening.window_at(utc(2026, 11, 1, 12))
    assert long == window(utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 17))
    assert long.closes - long.opens == timedelta(hours=11, minutes=30)  # 10.5 on other days
    closing = Schedule(start=time(17), end=time(1, 30), timezone=NEW_YORK, weekdays=EVERY_DAY)
    assert closing.window_at(utc(2026, 11, 1, 5)) == window(utc(2026, 10, 31, 21),
                                                            utc(2026, 11, 1, 5, 30))
    assert closing.window_at(utc(2026, 11, 1, 6, 15)) is None  # 01:15 EST, the second pass


def test_london_spring_forward_opens_when_the_clocks_jump() -> None:
    s = Schedule(start=time(1, 30), end=time(9), timezone=LONDON, weekdays=EVERY_DAY)
    # 2026-03-29: 01:00 GMT becomes 02:00 BST at 01:00 UTC.
    short = s.window_at(utc(2026, 3, 29, 5))
    assert short == window(utc(2026, 3, 29, 1), utc(2026, 3, 29, 8))
    assert short.closes - short.opens == timedelta(hours=7)  # 7.5 on other days
    assert s.next_window(utc(2026, 3, 29, 0, 30)).opens == utc(2026, 3, 29, 1)


def test_london_fall_back_gives_a_25_hour_day_and_the_first_of_a_repeated_time() -> None:
    # 2026-10-25: 02:00 BST becomes 01:00 GMT at 01:00 UTC.
    whole_day = Schedule(start=time(0), end=time(0), timezone=LONDON, weekdays=EVERY_DAY)
    long = whole_day.window_at(utc(2026, 10, 25, 12))
    assert long == window(utc(2026, 10, 24, 23), utc(2026, 10, 26, 0))
    assert long.closes - long.opens == timedelta(hours=25)
    repeated = Schedule(start=time(1, 30), end=time(9), timezone=LONDON, weekdays=EVERY_DAY)
    assert repeated.next_window(utc(2026, 10, 25)).opens == utc(2026, 10, 25, 0, 30)  # in BST


# -- open_until: runs of touching windows ---------------------------------------------------------


def test_24_hour_weekday_windows_merge_into_one_run_to_saturday() -> None:
    s = Schedule(start=time(17), end=time(17), timezone=CHICAGO)  # CDT is UTC-5
    saturday_close = utc(2026, 5, 16, 22)
    assert s.open_until(utc(2026, 5, 11, 22)) == saturday_close  # at Monday's open
    assert s.open_until(utc(2026, 5, 13, 3)) == saturday_close
    assert s.open_until(utc(2026, 5, 16, 21, 59)) == saturday_close
    assert s.window_at(utc(2026, 5, 13, 3)) == window(utc(2026, 5, 12, 22), utc(2026, 5, 13, 22))


def test_open_until_does_not_merge_windows_with_a_gap_between() -> None:
    s = Schedule(start=time(17), end=time(16), timezone=CHICAGO)
    assert s.open_until(utc(2026, 5, 12, 3)) == utc(2026, 5, 12, 21)


def test_open_until_runs_through_a_clock_change_to_a_holiday() -> None:
    s = Schedule(start=time(0), end=time(0), timezone=NEW_YORK, weekdays=EVERY_DAY,
                 holidays=frozenset({date(2026, 11, 3)}))
    assert s.open_until(utc(2026, 10, 30, 12)) == utc(2026, 11, 3, 5)  # 00:00 EST


def test_open_until_is_none_for_a_schedule_that_never_closes() -> None:
    s = Schedule(start=time(9), end=time(9), timezone=LONDON, weekdays=EVERY_DAY)
    assert s.open_until(utc(2026, 5, 11, 12)) is None
    far = date(2027, 8, 1)  # a holiday past the 400 days the search looks ahead
    assert Schedule(start=time(9), end=time(9), weekdays=EVERY_DAY,
                    holidays=frozenset({far})).open_until(utc(2026, 5, 11, 12)) is None
    near = date(2027, 4, 1)
    assert Schedule(start=time(9), end=time(9), weekdays=EVERY_DAY,
                    holidays=frozenset({near})).open_until(utc(2026, 5, 11, 12)) == utc(2027, 4,
                                                                                       1, 9)


def test_open_until_refuses_an_instant_outside_every_window() -> None:
    s = Schedule(start=time(8), end=time(17))
    with pytest.raises(ValueError, match="outside every window"):
        s.open_until(utc(2026, 5, 11, 17))


# -- problems, describe, as_dict ------------------------------------------------------------------


def test_a_usable_schedule_has_no_problems() -> None:
    assert Schedule(start=time(8), end=time(17), timezone=CHICAGO).problems() == []


def test_problems_name_each_field_at_fault() -> None:
    s = Schedule(start=time(8, tzinfo=UTC), end=time(17, 0, 0, 500), timezone="Mars/Base",
                 weekdays=frozenset({1, 7}), holidays=frozenset({datetime(2026, 12, 25)}))
    assert s.problems() == [
        "start 08:00:00+00:00 carries a time zone; it must be a wall time, read in the"
        " schedule's timezone",
        "end 17:00:00.000500 has a fraction of a second",
        "timezone 'Mars/Base' is not a known time zone",
        "weekdays 7 is not a day number (0 = mon ... 6 = sun)",
        "holidays datetime.datetime(2026, 12, 25, 0, 0) is not a date",
    ]
    with pytest.raises(ValueError, match="unusable schedule: start 08:00:00"):
        s.is_open(utc(2026, 5, 11, 9))


def test_no_weekdays_is_a_problem() -> None:
    s = Schedule(start=time(8), end=time(17), weekdays=frozenset())
    assert s.problems() == ["weekdays is empty: no window would ever open"]


@pytest.mark.parametrize(("weekdays", "text"), [
    ({0, 1, 2, 3, 4}, "mon-fri"), ({0, 2, 4}, "mon,wed,fri"), ({5, 6}, "sat-sun"),
    ({4, 5, 6, 0}, "fri-mon"), (set(range(7)), "every day"), ({0, 1, 3}, "mon-tue,thu"),
])
def test_describe_writes_the_weekdays_as_ranges(weekdays: set[int], text: str) -> None:
    s = Schedule(start=time(8), end=time(17), weekdays=frozenset(weekdays))
    assert s.describe() == f"08:00-17:00 UTC, {text}"


def test_describe_counts_holidays_and_marks_overnight_windows() -> None:
    holidays = frozenset({date(2026, 12, 25), date(2026, 12, 31), date(2027, 1, 1)})
    assert Schedule(start=time(8), end=time(17), timezone=CHICAGO,
                    holidays=holidays).describe() == \
        "08:00-17:00 America/Chicago, mon-fri, 3 holidays"
    assert Schedule(start=time(17), end=time(16), timezone=CHICAGO,
                    holidays=frozenset({date(2026, 12, 25)})).describe() == \
        "17:00-16:00 (+1 day) America/Chicago, mon-fri, 1 holiday"
    assert Schedule(start=time(8, 0, 30), end=time(8, 0, 30)).describe() == \
        "08:00:30-08:00:30 (+1 day) UTC, mon-fri"


def test_as_dict_is_json_and_reads_back_to_the_same_schedule() -> None:
    s = Schedule(start=time(8), end=time(17, 30, 15), timezone=CHICAGO,
                 weekdays=frozenset({4, 0, 2}),
                 holidays=frozenset({date(2026, 12, 25), date(2026, 7, 3)}))
    expected = {"start": "08:00", "end": "17:30:15", "timezone": CHICAGO,
                "weekdays": ["mon", "wed", "fri"], "holidays": ["2026-07-03", "2026-12-25"]}
    assert s.as_dict() == expected
    assert json.loads(json.dumps(s.as_dict())) == expected
    assert schedule_from_mapping(s.as_dict()) == s


# -- the configuration file's form ----------------------------------------------------------------


def test_a_toml_table_reads_as_a_schedule() -> None:
    table = tomllib.loads("""
        start = 17:00:00
        end = 16:00:00
        timezone = "America/Chicago"
        weekdays = ["SUN-wed", "thu"]
        holidays = [2026-12-25, "2027-01-01"]
    """)
    assert schedule_from_mapping(table) == Schedule(
        start=time(17), end=time(16), timezone=CHICAGO, weekdays=frozenset({6, 0, 1, 2, 3}),
        holidays=frozenset({date(2026, 12, 25), date(2027, 1, 1)}))


def test_the_defaults_are_utc_weekdays_without_holidays() -> None:
    assert schedule_from_mapping({"start": "08:00", "end": "17:00:30"}) == Schedule(
        start=time(8), end=time(17, 0, 30), timezone="UTC", weekdays=frozenset(range(5)))


@pytest.mark.parametrize(("weekdays", "days"), [
    ("mon-fri", {0, 1, 2, 3, 4}), ("fri-mon", {4, 5, 6, 0}), (" Tue ", {1}),
    ("mon-wed,fri", {0, 1, 2, 4}), (["sat", "mon-tue"], {5, 0, 1}), (["wed-wed"], {2}),
])
def test_weekdays_read_from_names_and_ranges(weekdays: object, days: set[int]) -> None:
    s = schedule_from_mapping({"start": "08:00", "end": "17:00", "weekdays": weekdays})
    assert s.weekdays == frozenset(days)


@pytest.mark.parametrize(("values", "field", "message"), [
    ({"start": "08:00", "end": "17:00", "days": ["mon"]}, "days",
     "is not a schedule setting (start, end, timezone, weekdays, holidays)"),
    ({"end": "17:00"}, "start", "is missing (a wall time such as '08:00')"),
    ({"start": "08:00"}, "end", "is missing (a wall time such as '08:00')"),
    ({"start": "8am", "end": "17:00"}, "start", "'8am' is not a time (HH:MM or HH:MM:SS)"),
    ({"start": "08:00", "end": "24:00"}, "end", "'24:00' is not a time (HH:MM or HH:MM:SS)"),
    ({"start": 8, "end": "17:00"}, "start", "8 is not a time (HH:MM or HH:MM:SS)"),
    ({"start": "08:00", "end": "17:00", "timezone": 5}, "timezone",
     "5 is not a time zone name"),
    ({"start": "08:00", "end": "17:00", "timezone": "Mars/Base"}, "timezone",
     "'Mars/Base' is not a known time zone"),
    ({"start": "08:00", "end": "17:00", "weekdays": ["mon", "mnday"]}, "weekdays",
     "'mnday' is not a day (mon, tue, ...)"),
    ({"start": "08:00", "end": "17:00", "weekdays": "mon-fry"}, "weekdays",
     "'fry' is not a day (mon, tue, ...)"),
    ({"start": "08:00", "end": "17:00", "weekdays": [0, 1]}, "weekdays",
     "0 is not a day (mon, tue, ...)"),
    ({"start": "08:00", "end": "17:00", "weekdays": 5}, "weekdays",
     "5 is not a list of days or a range of them"),
    ({"start": "08:00", "end": "17:00", "weekdays": []}, "weekdays",
     "is empty: no window would ever open"),
    ({"start": "08:00", "end": "17:00", "holidays": "2026-12-25"}, "holidays",
     "'2026-12-25' is not a list of dates"),
    ({"start": "08:00", "end": "17:00", "holidays": ["2026-02-30"]}, "holidays",
     "'2026-02-30' is not a date (YYYY-MM-DD)"),
    ({"start": "08:00", "end": "17:00", "holidays": ["20261225"]}, "holidays",
     "'20261225' is not a date (YYYY-MM-DD)"),
    ({"start": "08:00", "end": "17:00", "holidays": [datetime(2026, 12, 25, 9)]}, "holidays",
     "datetime.datetime(2026, 12, 25, 9, 0) is not a date (YYYY-MM-DD)"),
    ({"start": time(8, tzinfo=UTC), "end": "17:00"}, "start",
     "08:00:00+00:00 carries a time zone; it must be a wall time, read in the schedule's"
     " timezone"),
])
def test_the_parser_names_the_setting_and_the_bad_value(
        values: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_from_mapping(values)
    assert caught.value.field == field
    assert caught.value.message == message
    assert str(caught.value) == f"{field}: {message}"
    assert isinstance(caught.value, ValueError)


def test_the_schedule_types_are_exported() -> None:
    assert brokergate.Schedule is Schedule
    assert WEEKDAYS[0] == "mon" and WEEKDAYS[6] == "sun"


# -- against a definition written out the slow way ------------------------------------------------

ZONES = [NEW_YORK, LONDON, CHICAGO, "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata",
         "UTC"]
#: The clock changes of 2026 in those zones, each at the local wall time the clocks skip or
#: repeat from (Lord Howe moves by half an hour; Santiago's clocks change at midnight).
CHANGES = [(NEW_YORK, datetime(2026, 3, 8, 2)), (NEW_YORK, datetime(2026, 11, 1, 1)),
           (LONDON, datetime(2026, 3, 29, 1)), (LONDON, datetime(2026, 10, 25, 1)),
           ("Australia/Lord_Howe", datetime(2026, 4, 5, 1, 30)),
           ("Australia/Lord_Howe", datetime(2026, 10, 4, 2)),
           ("America/Santiago", datetime(2026, 4, 4, 23)),
           ("America/Santiago", datetime(2026, 9, 6, 0))]
CHANGE_DAYS = [wall.date() for _, wall in CHANGES]
QUARTER = timedelta(minutes=15)


def slow_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant whose local wall time is ``wall`` on ``day`` or later, by stepping a
    quarter hour at a time (every zone above changes its clocks on the quarter hour)."""
    target = datetime.combine(day, wall)
    at = target.replace(tzinfo=UTC) - timedelta(hours=15)  # earlier than any offset reaches
    while at.astimezone(zone).replace(tzinfo=None) < target:
        at += QUARTER
    return at


def slow_window_at(s: Schedule, at: datetime) -> Window | None:
    zone = ZoneInfo(s.timezone)
    local_day = at.astimezone(zone).date()
    for offset in range(-3, 2):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in s.weekdays or day in s.holidays:
            continue
        opens = slow_instant(day, s.start, zone)
        closes = slow_instant(day + timedelta(days=1 if s.end <= s.start else 0), s.end, zone)
        if opens <= at < closes:
            return Window(opens, closes)
    return None


def make_case(*, start: int, end: int, zone: int, weekdays: int, holidays: int, day: int,
              minutes: int, on_the_quarter: bool) -> tuple[Schedule, datetime]:
    """A schedule and an instant from plain numbers (quicker for hypothesis to draw than a
    composite): times on the quarter hour, weekdays and holidays (from two days before the
    instant's date to a day after) as bit masks, and a day near a clock change when negative."""
    around = (CHANGE_DAYS[day % len(CHANGE_DAYS)] if day < 0
              else date(2026, 1, 1) + timedelta(days=day))
    at = datetime.combine(around, time(), UTC) + timedelta(
        minutes=minutes - minutes % 15 if on_the_quarter else minutes)
    schedule = Schedule(
        start=time(start // 4, start % 4 * 15), end=time(end // 4, end % 4 * 15),
        timezone=ZONES[zone], weekdays=frozenset(d for d in range(7) if weekdays >> d & 1),
        holidays=frozenset(around + timedelta(days=k - 2) for k in range(4) if holidays >> k & 1))
    return schedule, at


CASES = st.builds(make_case, start=st.integers(0, 95), end=st.integers(0, 95),
                  zone=st.integers(0, len(ZONES) - 1), weekdays=st.integers(1, 127),
                  holidays=st.integers(0, 15), day=st.integers(-200, 729),
                  minutes=st.integers(-3 * 1440, 3 * 1440), on_the_quarter=st.booleans())


def make_change_case(*, change: int, start: int, end: int, aim_at_end: bool, minutes: int,
                     on_the_quarter: bool) -> tuple[Schedule, datetime]:
    """A schedule open every day whose start (and end, when ``end < 12``) is within two hours of
    a clock change, and an instant within two hours of its open or close on the day."""
    zone, wall = CHANGES[change]
    opening = wall + (start - 4) * QUARTER
    closing = (wall + (end - 4) * QUARTER if end < 12
               else datetime.combine(wall.date(), time((end - 12) // 4, (end - 12) % 4 * 15)))
    aim = (closing if aim_at_end else opening).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    at = aim + timedelta(minutes=minutes - minutes % 15 if on_the_quarter else minutes)
    return Schedule(start=opening.time(), end=closing.time(), timezone=zone,
                    weekdays=EVERY_DAY), at


AROUND_CHANGES = st.builds(make_change_case, change=st.integers(0, len(CHANGES) - 1),
                           start=st.integers(0, 11), end=st.integers(0, 107),
                           aim_at_end=st.booleans(), minutes=st.integers(-120, 120),
                           on_the_quarter=st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.one_of(CASES, AROUND_CHANGES))
def test_window_at_agrees_with_the_slow_definition(case: tuple[Schedule, datetime]) -> None:
    s, at = case
    assert s.window_at(at) == slow_window_at(s, at)


@settings(max_examples=60, deadline=None)
@given(st.one_of(CASES, AROUND_CHANGES))
def test_next_window_and_open_until_agree_with_window_at(
        case: tuple[Schedule, datetime]) -> None:
    s, at = case
    upcoming = s.next_window(at)
    assert at < upcoming.closes
    assert s.window_at(upcoming.opens) == upcoming
    if not s.is_open(at):
        assert at < upcoming.opens
        return
    until = s.open_until(at)
    assert until is None or (s.window_at(until) is None and s.is_open(until - QUARTER))
