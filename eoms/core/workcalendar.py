"""Working-hours calendar for SLA timers (approval deadlines, nudges).

A working day is one the official PRC holiday schedule says people work, including the swapped
weekend working days (调休) and excluding the statutory holidays; the schedule comes from the
`chinesecalendar` package (import name `chinese_calendar`). Its data covers a fixed range of years
(`holiday_calendar_years()`; 2004–2026 in version 1.11.0). Outside that range — before the State
Council publishes next year's schedule, or before the package is upgraded — this module falls back
to Monday–Friday with no holidays, so an SLA timer keeps running instead of crashing; upgrade the
package each year when the new schedule is out.

Inside a working day, the working periods come from the setting EOMS_WORKING_HOURS (default
``"09:00-12:00,13:00-18:00"``), in the timezone EOMS_WORK_TIMEZONE (default ``"Asia/Shanghai"``).
Both are read on every call, so an override in tests takes effect at once; a bad value raises
`ImproperlyConfigured`.

All functions take timezone-aware datetimes in any zone and return aware datetimes in UTC. Periods
are half-open: 12:00 is not inside 09:00-12:00. Durations are real elapsed time, which only matters
for a work timezone with daylight saving time (Asia/Shanghai has none).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "DEFAULT_WORKING_HOURS",
    "DEFAULT_WORK_TIMEZONE",
    "MAX_HOURS",
    "add_working_hours",
    "holiday_calendar_years",
    "is_working_day",
    "parse_working_hours",
    "work_timezone",
    "working_hours_between",
    "working_periods",
]

DEFAULT_WORKING_HOURS = "09:00-12:00,13:00-18:00"
DEFAULT_WORK_TIMEZONE = "Asia/Shanghai"
# An upper bound keeps a typo (1e9 hours) from spinning through centuries of days; 100,000 working
# hours is about 50 years of 8-hour days, far beyond any SLA.
MAX_HOURS = 100_000

_ONE_DAY = timedelta(days=1)
_MINUTES_PER_DAY = 24 * 60
_PERIOD_RE = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class _Config:
    periods: tuple[tuple[int, int], ...]  # (start, end) in minutes after local midnight; end may be 1440
    zone: ZoneInfo


def parse_working_hours(value: object) -> tuple[tuple[int, int], ...]:
    """Parse an EOMS_WORKING_HOURS value such as ``"09:00-12:00,13:00-18:00"``.

    Returns the periods as (start, end) minutes after midnight. The value must be a non-empty,
    comma-separated list of ``HH:MM-HH:MM`` items (two digits each, spaces around items allowed),
    each ending after it starts (``24:00`` is allowed as an end, meaning midnight), listed in order
    and not overlapping (one may start where the previous ends). Anything else raises
    ImproperlyConfigured naming the offending item.
    """
    if not isinstance(value, str) or not value.strip():
        raise ImproperlyConfigured(
            f"EOMS_WORKING_HOURS must be a list of HH:MM-HH:MM periods such as {DEFAULT_WORKING_HOURS!r}, "
            f"got {value!r}."
        )
    periods: list[tuple[int, int]] = []
    previous = ""
    for raw in value.split(","):
        item = raw.strip()
        match = _PERIOD_RE.fullmatch(item)
        if match is None:
            raise ImproperlyConfigured(
                f"EOMS_WORKING_HOURS: {item!r} is not a period HH:MM-HH:MM (two-digit hours and minutes, "
                f"periods separated by commas, e.g. {DEFAULT_WORKING_HOURS!r})."
            )
        start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
        if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m != 0):
            raise ImproperlyConfigured(
                f"EOMS_WORKING_HOURS: {item!r} is not a time of day (00:00 to 23:59; 24:00 only as an end)."
            )
        start, end = start_h * 60 + start_m, end_h * 60 + end_m
        if end <= start:
            raise ImproperlyConfigured(f"EOMS_WORKING_HOURS: {item!r} must end after it starts.")
        if periods and start < periods[-1][1]:
            raise ImproperlyConfigured(
                f"EOMS_WORKING_HOURS: {item!r} starts before {previous!r} ends; list the periods in order "
                "of time without overlap."
            )
        periods.append((start, end))
        previous = item
    return tuple(periods)


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ImproperlyConfigured(
            f"EOMS_WORK_TIMEZONE must be an IANA timezone name such as 'Asia/Shanghai', got {name!r}."
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"EOMS_WORK_TIMEZONE: {name!r} is not a known IANA timezone name (e.g. 'Asia/Shanghai')."
        )


@functools.lru_cache(maxsize=16)
def _cached_periods(value: str) -> tuple[tuple[int, int], ...]:
    return parse_working_hours(value)


def _config() -> _Config:
    value = getattr(settings, "EOMS_WORKING_HOURS", DEFAULT_WORKING_HOURS)
    # Only strings are cached: an unhashable bad value must still reach the clear error message.
    periods = _cached_periods(value) if isinstance(value, str) else parse_working_hours(value)
    return _Config(periods=periods, zone=_zone(getattr(settings, "EOMS_WORK_TIMEZONE", DEFAULT_WORK_TIMEZONE)))


def work_timezone() -> ZoneInfo:
    """The timezone working days and periods are reckoned in (EOMS_WORK_TIMEZONE).

    Raises ImproperlyConfigured if the setting names no known timezone.
    """
    return _config().zone


def holiday_calendar_years() -> tuple[int, int]:
    """First and last year (inclusive) the installed chinesecalendar has official schedules for.

    Outside these years `is_working_day` falls back to Monday–Friday.
    """
    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


def _aware_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive datetime {value.isoformat()}")
    return value.astimezone(UTC)


def _local_date(d: date, zone: ZoneInfo) -> date:
    # A datetime is a date too; reckoning it by its own wall clock would give the UTC date for a
    # UTC instant, which is the wrong day for eight hours of every Shanghai day.
    if isinstance(d, datetime):
        return _aware_utc(d, "d").astimezone(zone).date()
    if not isinstance(d, date):
        raise TypeError(f"d must be a date, got {type(d).__name__}")
    return d


# chinese_calendar.is_workday scans its whole table for the year range on every call; an SLA walks
# hundreds of days, so answers are remembered (a few years of dates, a few hundred kB).
@functools.lru_cache(maxsize=4096)
def _is_working_day(d: date) -> bool:
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:
        # The package has no official schedule for this year: Monday–Friday, no holidays.
        return d.weekday() < 5


def is_working_day(d: date) -> bool:
    """Whether `d` is a working day by the official schedule (调休 weekends work, holidays do not).

    A plain date is taken as a day in the work timezone; an aware datetime is first converted to
    it. Years the installed chinesecalendar does not cover fall back to Monday–Friday. Raises
    ValueError for a naive datetime.
    """
    return _is_working_day(_local_date(d, work_timezone()))


def _at(d: date, minutes: int, zone: ZoneInfo) -> datetime:
    day, minute = divmod(minutes, _MINUTES_PER_DAY)
    local = datetime.combine(d + timedelta(days=day), time(minute // 60, minute % 60), tzinfo=zone)
    return local.astimezone(UTC)


def _periods(d: date, config: _Config) -> list[tuple[datetime, datetime]]:
    if not _is_working_day(d):
        return []
    result: list[tuple[datetime, datetime]] = []
    for start_min, end_min in config.periods:
        start, end = _at(d, start_min, config.zone), _at(d, end_min, config.zone)
        # On a daylight-saving change a wall time can map to an instant before the previous
        # period's end; clamping keeps the periods sorted, disjoint and non-empty in UTC, which
        # both walkers below rely on.
        if result:
            start = max(start, result[-1][1])
        if end > start:
            result.append((start, end))
    return result


def working_periods(d: date) -> list[tuple[datetime, datetime]]:
    """The working periods of day `d` in the work timezone, as (start, end) UTC datetimes.

    Sorted, disjoint, half-open; empty on a day off. A datetime is converted to its date in the work
    timezone first. Raises ImproperlyConfigured for bad settings, ValueError for a naive datetime.
    """
    config = _config()
    return _periods(_local_date(d, config.zone), config)


def _to_seconds(hours: Decimal | float | int) -> timedelta:
    if isinstance(hours, bool) or not isinstance(hours, Decimal | float | int):
        raise TypeError(f"hours must be a Decimal, float or int, got {type(hours).__name__}")
    try:
        # repr of a float is its shortest round-tripping decimal, so 0.1 means 0.1, not 0.1000000000000000055.
        amount = hours if isinstance(hours, Decimal) else Decimal(repr(hours) if isinstance(hours, float) else hours)
    except InvalidOperation:
        raise ValueError(f"hours must be a number, got {hours!r}")
    if not amount.is_finite() or amount < 0 or amount > MAX_HOURS:
        raise ValueError(f"hours must be between 0 and {MAX_HOURS}, got {hours!r}")
    return timedelta(seconds=int((amount * 3600).quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def add_working_hours(start: datetime, hours: Decimal | float | int) -> datetime:
    """The UTC instant at which `hours` working hours have elapsed after `start`.

    Counting begins at `start` if it is inside a working period, else at the next period's start;
    so 0 hours gives `start` itself inside working time and the next period's start outside it. A
    count that uses up a period exactly ends at that period's end (Friday 17:00 + 1 h is Friday
    18:00, not Monday 09:00). Hours are rounded half-up to the second. Walks period by period, so
    1000 hours cost about 180 days of work. Raises ValueError for a naive `start` or for hours that
    are negative, not finite or above MAX_HOURS; TypeError for other types; ImproperlyConfigured
    for bad settings.
    """
    start_utc = _aware_utc(start, "start")
    remaining = _to_seconds(hours)
    config = _config()
    day = start_utc.astimezone(config.zone).date()
    while True:
        for period_start, period_end in _periods(day, config):
            if period_end <= start_utc:
                continue
            begin = max(period_start, start_utc)
            available = period_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        day += _ONE_DAY


def working_hours_between(start: datetime, end: datetime) -> Decimal:
    """Working hours from `start` to `end`, rounded half-up to 2 places; Decimal("0.00") if end <= start.

    Only the parts of the interval inside working periods count. Inverse of `add_working_hours`:
    ``working_hours_between(s, add_working_hours(s, h)) == h`` for any `h` given to 2 places.
    Raises ValueError for naive datetimes and ImproperlyConfigured for bad settings.
    """
    start_utc, end_utc = _aware_utc(start, "start"), _aware_utc(end, "end")
    if end_utc <= start_utc:
        return Decimal("0.00")
    config = _config()
    total = timedelta(0)
    day = start_utc.astimezone(config.zone).date()
    last = end_utc.astimezone(config.zone).date()
    while day <= last:
        for period_start, period_end in _periods(day, config):
            overlap = min(period_end, end_utc) - max(period_start, start_utc)
            if overlap > timedelta(0):
                total += overlap
        day += _ONE_DAY
    hours = Decimal(total // timedelta(microseconds=1)) / _MICROSECONDS_PER_HOUR
    return hours.quantize(_CENT, rounding=ROUND_HALF_UP)
