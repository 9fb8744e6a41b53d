"""Session schedules, as FIX engines have them: outside its window a session is not logged in.

Pure: no clock is read here. Every question takes "now" as an aware datetime, and every answer
is an aware datetime in UTC.

How a schedule is read:

- A window belongs to the local date (in the schedule's ``timezone``) it opens on, and
  ``weekdays`` and ``holidays`` filter by that date alone. A window opens at ``start`` on that
  date and closes at ``end`` the same day, or the next day when ``end <= start`` (an overnight
  window; ``end == start`` is a 24-hour one). So an overnight window opening Friday 17:00 closes
  Saturday 16:00 even when Saturday is no weekday, and a holiday on Saturday does not cut short
  Friday's window that runs into it.
- Times are wall times. A time that the clocks skip on a date (the spring-forward gap) means the
  first instant after the gap: 02:30 on 2026-03-08 in America/New_York is 03:00 EDT. A time the
  clocks show twice (fall back) means its first occurrence. Both are one rule: a wall time means
  the first instant whose local wall time is at or past it. Hence a window on a day the clocks
  change can be an hour shorter or longer than usual (a 24-hour window: 23 or 25 hours). A
  same-day window whose start and end both fall in one gap is empty, and there is no window
  that day.
- A window holds the instants ``opens <= t < closes``: a query at ``opens`` is inside, one at
  ``closes`` outside. Windows never overlap; one may close exactly when the next opens (24-hour
  windows on consecutive days). ``open_until`` treats such touching windows as one run, so a
  session is not logged out and straight back in at the boundary.
- Searches look 400 days ahead: ``next_window`` gives up (ValueError) when no window opens within
  400 days, and ``open_until`` answers None when the run goes on for more than 400 days past the
  time asked about (a schedule that is always open).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WEEKDAYS", "Schedule", "ScheduleError", "Window", "schedule_from_mapping"]

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: How far ahead the searches look before giving up.
HORIZON = timedelta(days=400)
_DAY = timedelta(days=1)
_WORKDAYS = frozenset({0, 1, 2, 3, 4})
_FIELDS = ("start", "end", "timezone", "weekdays", "holidays")
_TIME = re.compile(r"(\d\d):(\d\d)(?::(\d\d))?")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


class ScheduleError(ValueError):
    """A schedule setting that cannot be used; ``field`` names it (``"weekdays"``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Window:
    """The instants ``opens <= t < closes`` (both aware, in UTC) a session is logged in."""

    opens: datetime
    closes: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When a session is logged in: from ``start`` to ``end``, local wall times in ``timezone``,
    on windows opening on ``weekdays`` (Mon=0) that are not ``holidays``. The module's docstring
    says how days, overnight windows and clock changes are read."""

    start: time
    end: time
    timezone: str = "UTC"
    weekdays: frozenset[int] = _WORKDAYS
    holidays: frozenset[date] = frozenset()

    def problems(self) -> list[str]:
        """Everything wrong with this schedule; empty when it can be used."""
        return [f"{field} {message}" for field, message in self._problems()]

    def window_at(self, at: datetime) -> Window | None:
        """The window holding ``at`` (aware), or None."""
        found = self._locate(self._zone(), _instant(at))
        return found[1] if found else None

    def is_open(self, at: datetime) -> bool:
        return self.window_at(at) is not None

    def next_window(self, at: datetime) -> Window:
        """The window holding ``at``, else the next to open after it."""
        zone, now = self._zone(), _instant(at)
        today = now.astimezone(zone).date()
        # Windows open and close in the order of their dates, so the first one still open at
        # `now` either holds it or is the next to open.
        for offset in range(-1, HORIZON.days + 1):
            window = self._window_on(today + offset * _DAY, zone)
            if window is not None and now < window.closes:
                return window
        raise ValueError(f"no window opens within {HORIZON.days} days of {now.isoformat()}"
                         f" ({self.describe()})")

    def open_until(self, at: datetime) -> datetime | None:
        """When a session logged in at ``at`` must log out: the close of the run of touching
        windows holding ``at``; None when that run lasts more than 400 days past ``at``.
        ValueError when ``at`` is in no window."""
        zone, now = self._zone(), _instant(at)
        found = self._locate(zone, now)
        if found is None:
            raise ValueError(f"{now.isoformat()} is outside every window ({self.describe()})")
        day, window = found
        closes = window.closes
        while closes - now <= HORIZON:
            day += _DAY
            following = self._window_on(day, zone)
            if following is None or following.opens > closes:
                return closes
            closes = max(closes, following.closes)
        return None

    def describe(self) -> str:
        """One line for people: ``08:00-17:00 America/Chicago, mon-fri, 3 holidays``."""
        span = f"{_hhmm(self.start)}-{_hhmm(self.end)}"
        if self.end <= self.start:
            span += " (+1 day)"
        line = f"{span} {self.timezone}, {_day_ranges(self.weekdays)}"
        count = len(self.holidays)
        if count:
            line += f", {count} holiday{'s' if count > 1 else ''}"
        return line

    def as_dict(self) -> dict[str, object]:
        """The schedule as JSON values, in the form ``schedule_from_mapping`` reads."""
        return {
            "start": _hhmm(self.start),
            "end": _hhmm(self.end),
            "timezone": self.timezone,
            "weekdays": [WEEKDAYS[day] for day in sorted(self.weekdays)],
            "holidays": [day.isoformat() for day in sorted(self.holidays)],
        }

    # -- internals -------------------------------------------------------------------------

    def _problems(self) -> list[tuple[str, str]]:
        found = []
        for field in ("start", "end"):
            value = getattr(self, field)
            if not isinstance(value, time):
                found.append((field, f"must be a datetime.time, not {type(value).__name__}"))
            elif value.tzinfo is not None:
                found.append((field, f"{value.isoformat()} carries a time zone; it must be a wall"
                                     " time, read in the schedule's timezone"))
            elif value.microsecond:
                found.append((field, f"{value.isoformat()} has a fraction of a second"))
        if not isinstance(self.timezone, str):
            found.append(("timezone", f"must be a string, not {type(self.timezone).__name__}"))
        elif _zone_or_none(self.timezone) is None:
            found.append(("timezone", f"{self.timezone!r} is not a known time zone"))
        if not self.weekdays:
            found.append(("weekdays", "is empty: no window would ever open"))
        for day in sorted(self.weekdays, key=repr):
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                found.append(("weekdays", f"{day!r} is not a day number (0 = mon ... 6 = sun)"))
        for holiday in sorted(self.holidays, key=repr):
            if isinstance(holiday, datetime) or not isinstance(holiday, date):
                found.append(("holidays", f"{holiday!r} is not a date"))
        return found

    def _zone(self) -> ZoneInfo:
        problems = self.problems()
        if problems:
            raise ValueError("unusable schedule: " + "; ".join(problems))
        zone = _zone_or_none(self.timezone)
        assert zone is not None  # problems() said so
        return zone

    def _window_on(self, day: date, zone: ZoneInfo) -> Window | None:
        if day.weekday() not in self.weekdays or day in self.holidays:
            return None
        opens = _wall_instant(day, self.start, zone)
        closes = _wall_instant(day + _DAY if self.end <= self.start else day, self.end, zone)
        return Window(opens, closes) if closes > opens else None

    def _locate(self, zone: ZoneInfo, now: datetime) -> tuple[date, Window] | None:
        today = now.astimezone(zone).date()
        # Every instant before a window closes shows an earlier wall time than the close, which
        # is at most a day after the window's date: so a window dated before yesterday closed
        # before today began. (Tomorrow's can hold `now` only where the clocks fall back across
        # midnight.)
        for day in (today - _DAY, today, today + _DAY):
            window = self._window_on(day, zone)
            if window is not None and window.opens <= now < window.closes:
                return day, window
        return None


def _instant(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; schedules need an aware datetime")
    return at.astimezone(UTC)


def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, a folder
        return None


def _wall_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant (in UTC) at which the local clock shows ``wall`` on ``day`` or later."""
    local = datetime.combine(day, wall.replace(fold=0))
    first = local.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first of a repeated time
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    # Skipped by the clocks. Read with the offsets before and after the jump, the wall time
    # gives two instants on either side of the jump; find the jump between them, to the second.
    other = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((int(first.timestamp()), int(other.timestamp())))
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= local:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def _day_ranges(days: Iterable[int]) -> str:
    """``mon-fri``, ``mon,wed,fri``, ``sun-thu`` (a run across the week's end), ``every day``."""
    wanted = set(days) & set(range(7))
    if len(wanted) == 7:
        return "every day"
    if not wanted:
        return "no days"
    first = next(day for day in range(7) if (day - 1) % 7 not in wanted and day in wanted)
    runs: list[list[int]] = []
    for step in range(7):
        day = (first + step) % 7
        if day in wanted:
            if runs and (runs[-1][-1] + 1) % 7 == day:
                runs[-1].append(day)
            else:
                runs.append([day])
    return ",".join(WEEKDAYS[run[0]] + (f"-{WEEKDAYS[run[-1]]}" if len(run) > 1 else "")
                    for run in runs)


# -- the configuration file's form ---------------------------------------------------------------


def schedule_from_mapping(values: Mapping[str, object]) -> Schedule:
    """A schedule from a configuration file's table (TOML values as tomllib gives them).

    ``start`` and ``end`` are ``"HH:MM"``/``"HH:MM:SS"`` strings or ``datetime.time``;
    ``timezone`` an IANA name; ``weekdays`` day names, ranges (``"mon-fri"``, ``"sun-thu"``) or
    a list of both, any case; ``holidays`` a list of dates or ``"YYYY-MM-DD"`` strings.
    Raises ScheduleError, naming the setting, for anything it cannot use."""
    for key in values:
        if key not in _FIELDS:
            raise ScheduleError(str(key), "is not a schedule setting (" + ", ".join(_FIELDS) + ")")
    for key in ("start", "end"):
        if key not in values:
            raise ScheduleError(key, "is missing (a wall time such as '08:00')")
    zone = values.get("timezone", "UTC")
    if not isinstance(zone, str):
        raise ScheduleError("timezone", f"{zone!r} is not a time zone name")
    schedule = Schedule(
        start=_read_time("start", values["start"]),
        end=_read_time("end", values["end"]),
        timezone=zone,
        weekdays=_read_weekdays(values["weekdays"]) if "weekdays" in values else _WORKDAYS,
        holidays=_read_holidays(values["holidays"]) if "holidays" in values else frozenset(),
    )
    problems = schedule._problems()
    if problems:
        raise ScheduleError(*problems[0])
    return schedule


def _read_time(field: str, value: object) -> time:
    if isinstance(value, time):
        return value
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        hour, minute, second = (int(part or 0) for part in match.groups())
        if hour < 24 and minute < 60 and second < 60:
            return time(hour, minute, second)
    raise ScheduleError(field, f"{value!r} is not a time (HH:MM or HH:MM:SS)")


def _read_weekdays(value: object) -> frozenset[int]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise ScheduleError("weekdays", f"{value!r} is not a list of days or a range of them")
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise ScheduleError("weekdays", f"{item!r} is not a day (mon, tue, ...)")
        first, dash, last = item.partition("-")
        low, high = _day_number(first), _day_number(last if dash else first)
        days.update((low + step) % 7 for step in range((high - low) % 7 + 1))
    return frozenset(days)


def _day_number(name: str) -> int:
    try:
        return WEEKDAYS.index(name.strip().lower())
    except ValueError:
        raise ScheduleError("weekdays", f"{name.strip()!r} is not a day (mon, tue, ...)") from None


def _read_holidays(value: object) -> frozenset[date]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ScheduleError("holidays", f"{value!r} is not a list of dates")
    days: set[date] = set()
    for item in value:
        if isinstance(item, date) and not isinstance(item, datetime):
            days.add(item)
            continue
        if isinstance(item, str) and _DATE.fullmatch(item):
            try:
                days.add(date.fromisoformat(item))
                continue
            except ValueError:
                pass
        raise ScheduleError("holidays", f"{item!r} is not a date (YYYY-MM-DD)")
    return frozenset(days)
