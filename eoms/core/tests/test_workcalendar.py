"""Working-hours calendar: official PRC holidays and 调休 from chinesecalendar, working periods from
EOMS_WORKING_HOURS, every instant in UTC. Expected holiday dates are those of the State Council
notice on the 2026 holidays (国办发明电〔2025〕7号), which the package reproduces."""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from eoms.core.workcalendar import (
    add_working_hours,
    holiday_calendar_years,
    is_working_day,
    parse_working_hours,
    work_timezone,
    working_hours_between,
    working_periods,
)

SH = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the package's range -------------------------------------------------------------------------


def test_holiday_data_covers_2004_to_2026():
    assert chinese_calendar.__version__ == "1.11.0"
    assert holiday_calendar_years() == (2004, 2026)


# --- ordinary weeks ------------------------------------------------------------------------------


def test_friday_late_afternoon_plus_two_hours_is_monday_ten():
    # Friday 2026-11-20, 17:00-18:00 counts one hour, Monday 09:00-10:00 the other.
    result = add_working_hours(sh(2026, 11, 20, 17, 0), 2)
    assert result == utc(2026, 11, 23, 2, 0)  # Monday 10:00 in Shanghai
    assert result.tzinfo is UTC


def test_an_hour_that_ends_a_period_ends_there_not_at_the_next_start():
    assert add_working_hours(sh(2026, 11, 20, 17, 0), 1) == sh(2026, 11, 20, 18, 0)
    assert add_working_hours(sh(2026, 11, 23, 11, 30), Decimal("0.5")) == sh(2026, 11, 23, 12, 0)


def test_crossing_the_lunch_break():
    assert add_working_hours(sh(2026, 11, 23, 11, 0), 2) == sh(2026, 11, 23, 14, 0)
    assert working_hours_between(sh(2026, 11, 23, 11, 0), sh(2026, 11, 23, 14, 0)) == Decimal("2.00")


def test_start_during_lunch_counts_from_one_pm():
    assert add_working_hours(sh(2026, 11, 23, 12, 30), 1) == sh(2026, 11, 23, 14, 0)
    assert add_working_hours(sh(2026, 11, 23, 12, 30), 0) == sh(2026, 11, 23, 13, 0)
    assert working_hours_between(sh(2026, 11, 23, 12, 0), sh(2026, 11, 23, 13, 0)) == Decimal("0.00")


def test_start_at_night():
    # Tuesday 22:00 -> Wednesday 09:00 + 1.5 h; early morning counts from 09:00 the same day.
    assert add_working_hours(sh(2026, 11, 24, 22, 0), 1.5) == sh(2026, 11, 25, 10, 30)
    assert add_working_hours(sh(2026, 11, 25, 3, 0), 1) == sh(2026, 11, 25, 10, 0)
    # Friday 18:00 is outside working time, so zero hours is Monday's first period start.
    assert add_working_hours(sh(2026, 11, 20, 18, 0), 0) == sh(2026, 11, 23, 9, 0)
    assert working_hours_between(sh(2026, 11, 20, 18, 0), sh(2026, 11, 23, 9, 0)) == Decimal("0.00")


def test_zero_hours_inside_working_time_is_start_itself_to_the_microsecond():
    start = sh(2026, 11, 23, 10, 15, 7, 123456)
    assert add_working_hours(start, 0) == start


def test_fractional_hours_round_to_the_second():
    start = sh(2026, 11, 23, 9, 0)
    assert add_working_hours(start, Decimal("1.25")) == sh(2026, 11, 23, 10, 15)
    assert add_working_hours(start, Decimal("0.01")) == sh(2026, 11, 23, 9, 0, 36)
    assert add_working_hours(start, 0.1) == sh(2026, 11, 23, 9, 6)
    # A float means its shortest decimal: 0.00375 h is 13.5 s, rounded up, though the binary
    # double just below 0.00375 would round down.
    assert add_working_hours(start, 0.00375) == sh(2026, 11, 23, 9, 0, 14)
    assert add_working_hours(start, Decimal("0.0001")) == start  # 0.36 s rounds to 0 s
    assert add_working_hours(start, Decimal("0.00015")) == sh(2026, 11, 23, 9, 0, 1)  # 0.54 s rounds up


def test_between_rounds_half_up_to_two_places():
    start = sh(2026, 11, 23, 9, 0)
    assert working_hours_between(start, start + timedelta(seconds=18)) == Decimal("0.01")  # 0.005 h
    assert working_hours_between(start, start + timedelta(seconds=17)) == Decimal("0.00")
    assert working_hours_between(start, sh(2026, 11, 23, 18, 0)) == Decimal("8.00")
    assert working_hours_between(sh(2026, 11, 20, 9, 0), sh(2026, 11, 27, 9, 0)) == Decimal("40.00")


def test_between_is_zero_when_end_is_not_after_start():
    start = sh(2026, 11, 23, 10, 0)
    assert working_hours_between(start, start) == Decimal("0.00")
    assert working_hours_between(start, start - timedelta(hours=5)) == Decimal("0.00")


def test_working_periods_of_a_working_day_and_a_day_off():
    assert working_periods(date(2026, 11, 23)) == [
        (utc(2026, 11, 23, 1, 0), utc(2026, 11, 23, 4, 0)),
        (utc(2026, 11, 23, 5, 0), utc(2026, 11, 23, 10, 0)),
    ]
    assert working_periods(date(2026, 11, 22)) == []  # Sunday


# --- 2026 National Day and its swapped working days -------------------------------------------

NATIONAL_DAY_2026 = {
    date(2026, 9, 19): False,  # Saturday
    date(2026, 9, 20): True,  # Sunday worked (调休)
    date(2026, 9, 30): True,
    date(2026, 10, 1): False,
    date(2026, 10, 2): False,
    date(2026, 10, 3): False,
    date(2026, 10, 4): False,
    date(2026, 10, 5): False,  # Monday off
    date(2026, 10, 6): False,
    date(2026, 10, 7): False,
    date(2026, 10, 8): True,  # Thursday back at work: the 2026 holiday is Oct 1-7, not Oct 1-8
    date(2026, 10, 9): True,
    date(2026, 10, 10): True,  # Saturday worked (调休)
    date(2026, 10, 11): False,
}


@pytest.mark.parametrize(("day", "working"), sorted(NATIONAL_DAY_2026.items()))
def test_national_day_2026(day, working):
    assert is_working_day(day) is working


def test_sla_over_national_day_2026_resumes_on_october_8():
    assert add_working_hours(sh(2026, 9, 30, 17, 0), 2) == sh(2026, 10, 8, 10, 0)
    assert working_hours_between(sh(2026, 9, 30, 9, 0), sh(2026, 10, 9, 9, 0)) == Decimal("16.00")


def test_swapped_working_weekend_days_count():
    # Saturday 2026-09-19 is off, Sunday 2026-09-20 is worked.
    assert add_working_hours(sh(2026, 9, 19, 17, 0), 1) == sh(2026, 9, 20, 10, 0)
    assert working_periods(date(2026, 9, 20)) == [
        (sh(2026, 9, 20, 9, 0), sh(2026, 9, 20, 12, 0)),
        (sh(2026, 9, 20, 13, 0), sh(2026, 9, 20, 18, 0)),
    ]
    # Friday 2026-10-09 17:00 + 2 h lands on Saturday 2026-10-10, a working day.
    assert add_working_hours(sh(2026, 10, 9, 17, 0), 2) == sh(2026, 10, 10, 10, 0)


# --- 2026 Spring Festival: Feb 15-23 off, Saturdays Feb 14 and Feb 28 worked ------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 2, 13), True),
        (date(2026, 2, 14), True),  # Saturday worked
        (date(2026, 2, 15), False),
        (date(2026, 2, 17), False),  # Chinese New Year's Day, a Tuesday
        (date(2026, 2, 23), False),  # Monday, last day off
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # Saturday worked
        (date(2026, 3, 1), False),
    ],
)
def test_spring_festival_2026(day, working):
    assert is_working_day(day) is working


def test_sla_over_spring_festival_2026():
    assert add_working_hours(sh(2026, 2, 13, 17, 0), 2) == sh(2026, 2, 14, 10, 0)
    assert add_working_hours(sh(2026, 2, 14, 17, 0), 2) == sh(2026, 2, 24, 10, 0)
    assert working_hours_between(sh(2026, 2, 13, 9, 0), sh(2026, 2, 25, 9, 0)) == Decimal("24.00")


# --- outside the package's years: Monday to Friday --------------------------------------------


def test_years_outside_the_package_fall_back_to_monday_to_friday():
    first, last = holiday_calendar_years()
    for year in (first - 1, last + 1, 2099):
        with pytest.raises(NotImplementedError):
            chinese_calendar.is_workday(date(year, 6, 1))
        monday = date(year, 6, 1) - timedelta(days=date(year, 6, 1).weekday())
        week = [is_working_day(monday + timedelta(days=i)) for i in range(7)]
        assert week == [True, True, True, True, True, False, False]
        # New Year's Day is a statutory holiday every year, but without the schedule it is not known.
        assert is_working_day(date(year, 1, 1)) is (date(year, 1, 1).weekday() < 5)


def test_sla_runs_on_across_the_end_of_the_package_range():
    # Friday 2099-01-02 17:00 + 2 h -> Monday 2099-01-05 10:00.
    assert add_working_hours(sh(2099, 1, 2, 17, 0), 2) == sh(2099, 1, 5, 10, 0)
    assert working_hours_between(sh(2003, 12, 1, 9, 0), sh(2003, 12, 8, 9, 0)) == Decimal("40.00")


# --- long SLAs --------------------------------------------------------------------------------


def test_one_thousand_hours_is_125_working_days():
    start = sh(2025, 1, 6, 9, 0)  # a Monday
    result = add_working_hours(start, 1000)
    assert result == sh(2025, 7, 9, 18, 0)
    # Cross-check against the package: 2025-07-09 is the 125th working day from 2025-01-06.
    assert chinese_calendar.get_workdays(date(2025, 1, 6), date(2025, 7, 9))[124] == date(2025, 7, 9)
    assert working_hours_between(start, result) == Decimal("1000.00")


# --- timezones --------------------------------------------------------------------------------


def test_same_instant_in_any_zone_gives_the_same_utc_result():
    in_shanghai = sh(2026, 11, 20, 17, 0)
    in_utc = utc(2026, 11, 20, 9, 0)
    in_new_york = in_utc.astimezone(NEW_YORK)  # Thursday 04:00 EST
    assert in_new_york.day == 20 and in_new_york.hour == 4
    results = {add_working_hours(t, 2) for t in (in_shanghai, in_utc, in_new_york)}
    assert results == {utc(2026, 11, 23, 2, 0)}
    assert working_hours_between(in_new_york, utc(2026, 11, 23, 2, 0)) == Decimal("2.00")


def test_an_aware_datetime_is_reckoned_on_its_shanghai_date():
    # 2026-09-30 20:00 UTC is already 2026-10-01 04:00 in Shanghai, National Day.
    assert is_working_day(utc(2026, 9, 30, 20, 0)) is False
    assert is_working_day(utc(2026, 9, 30, 12, 0)) is True
    assert working_periods(utc(2026, 9, 19, 20, 0)) == working_periods(date(2026, 9, 20))


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_hours(datetime(2026, 11, 23, 9, 0), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        working_hours_between(sh(2026, 11, 23, 9, 0), datetime(2026, 11, 24, 9, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        is_working_day(datetime(2026, 11, 23, 9, 0))


@pytest.mark.parametrize("hours", [-1, Decimal("-0.01"), float("nan"), float("inf"), Decimal("NaN"), 100_001])
def test_bad_hours_are_refused(hours):
    with pytest.raises(ValueError, match="hours must be between 0 and 100000"):
        add_working_hours(sh(2026, 11, 23, 9, 0), hours)


@pytest.mark.parametrize("hours", [True, "2", None])
def test_hours_of_another_type_are_refused(hours):
    with pytest.raises(TypeError, match="hours must be a Decimal, float or int"):
        add_working_hours(sh(2026, 11, 23, 9, 0), hours)


# --- round trip -------------------------------------------------------------------------------

ZONES = [UTC, SH, NEW_YORK, ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/Berlin")]


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2003, 6, 1), max_value=datetime(2027, 6, 1), timezones=st.sampled_from(ZONES)
    ),
    hours=st.decimals(min_value=0, max_value=1000, places=2),
)
def test_round_trip(start, hours):
    end = add_working_hours(start, hours)
    assert end.tzinfo is UTC
    assert end >= start
    assert working_hours_between(start, end) == hours


@hypothesis_settings(max_examples=100, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(SH)),
    hours=st.integers(min_value=1, max_value=200),
)
def test_result_of_a_positive_count_is_at_most_a_period_end(start, hours):
    # The last second before the result is working time, so the result is never in a break.
    end = add_working_hours(start, hours)
    day_periods = working_periods(end.astimezone(SH).date())
    assert any(period_start < end <= period_end for period_start, period_end in day_periods)


# --- settings ---------------------------------------------------------------------------------


def test_default_settings():
    assert work_timezone() == SH
    assert parse_working_hours("09:00-12:00,13:00-18:00") == ((540, 720), (780, 1080))


def test_custom_working_hours(settings):
    settings.EOMS_WORKING_HOURS = " 08:30-12:00 , 13:30-17:30 "
    assert add_working_hours(sh(2026, 11, 20, 17, 0), 2) == sh(2026, 11, 23, 10, 0)  # 0.5 h Fri + 1.5 h Mon
    assert working_hours_between(sh(2026, 11, 23, 0, 0), sh(2026, 11, 24, 0, 0)) == Decimal("7.50")


def test_round_the_clock_with_midnight_as_end(settings):
    settings.EOMS_WORKING_HOURS = "00:00-24:00"
    assert working_periods(date(2026, 11, 23)) == [(sh(2026, 11, 23, 0, 0), sh(2026, 11, 24, 0, 0))]
    # Friday 23:00 + 2 h -> Saturday is off -> Monday 01:00.
    assert add_working_hours(sh(2026, 11, 20, 23, 0), 2) == sh(2026, 11, 23, 1, 0)


def test_touching_periods_are_accepted(settings):
    settings.EOMS_WORKING_HOURS = "09:00-12:00,12:00-13:00"
    assert add_working_hours(sh(2026, 11, 23, 11, 0), 2) == sh(2026, 11, 23, 13, 0)


def test_another_work_timezone(settings):
    settings.EOMS_WORK_TIMEZONE = "Asia/Tokyo"
    tokyo = ZoneInfo("Asia/Tokyo")
    assert work_timezone() == tokyo
    start = datetime(2026, 11, 20, 17, 0, tzinfo=tokyo)
    assert add_working_hours(start, 2) == utc(2026, 11, 23, 1, 0)  # Monday 10:00 in Tokyo


def test_work_timezone_with_daylight_saving_counts_real_time(settings):
    # Israel moves its clocks on Friday 2026-03-27 at 02:00, a working day in China; the day has 23 hours.
    settings.EOMS_WORK_TIMEZONE = "Asia/Jerusalem"
    jerusalem = ZoneInfo("Asia/Jerusalem")
    settings.EOMS_WORKING_HOURS = "00:00-24:00"
    day_start, next_day = datetime(2026, 3, 27, tzinfo=jerusalem), datetime(2026, 3, 28, tzinfo=jerusalem)
    assert working_hours_between(day_start, next_day) == Decimal("23.00")
    # 02:30 does not exist that night and maps past 03:15; the periods are clamped so that the half
    # hour 03:00-03:30 local (00:00-00:30 UTC) is not counted twice: 01:00 to 04:00 is 2 real hours.
    settings.EOMS_WORKING_HOURS = "01:00-02:30,03:15-04:00"
    assert working_periods(date(2026, 3, 27)) == [
        (utc(2026, 3, 26, 23, 0), utc(2026, 3, 27, 0, 30)),
        (utc(2026, 3, 27, 0, 30), utc(2026, 3, 27, 1, 0)),
    ]
    assert working_hours_between(day_start, next_day) == Decimal("2.00")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must be a list of HH:MM-HH:MM periods"),
        ("   ", "must be a list of HH:MM-HH:MM periods"),
        (None, "must be a list of HH:MM-HH:MM periods"),
        (["09:00-12:00"], "must be a list of HH:MM-HH:MM periods"),
        ("9:00-12:00", "'9:00-12:00' is not a period HH:MM-HH:MM"),
        ("09:00-12:00;13:00-18:00", "'09:00-12:00;13:00-18:00' is not a period HH:MM-HH:MM"),
        ("09:00-12:00,", "'' is not a period HH:MM-HH:MM"),
        ("09:00 - 12:00", "'09:00 - 12:00' is not a period HH:MM-HH:MM"),
        ("25:00-26:00", "'25:00-26:00' is not a time of day"),
        ("09:60-10:00", "'09:60-10:00' is not a time of day"),
        ("24:00-24:00", "'24:00-24:00' is not a time of day"),
        ("23:00-24:30", "'23:00-24:30' is not a time of day"),
        ("12:00-09:00", "'12:00-09:00' must end after it starts"),
        ("09:00-09:00", "'09:00-09:00' must end after it starts"),
        ("13:00-18:00,09:00-12:00", "'09:00-12:00' starts before '13:00-18:00' ends"),
        ("09:00-13:00,12:00-18:00", "'12:00-18:00' starts before '09:00-13:00' ends"),
    ],
)
def test_bad_working_hours_are_refused(settings, value, message):
    settings.EOMS_WORKING_HOURS = value
    with pytest.raises(ImproperlyConfigured, match=rf"^EOMS_WORKING_HOURS.*{re.escape(message)}"):
        add_working_hours(sh(2026, 11, 23, 9, 0), 1)
    with pytest.raises(ImproperlyConfigured):
        working_periods(date(2026, 11, 23))


@pytest.mark.parametrize("value", ["Mars/Olympus", "Asia", "", None, "../etc/passwd"])
def test_bad_work_timezone_is_refused(settings, value):
    settings.EOMS_WORK_TIMEZONE = value
    with pytest.raises(ImproperlyConfigured, match=r"^EOMS_WORK_TIMEZONE"):
        is_working_day(date(2026, 11, 23))
    with pytest.raises(ImproperlyConfigured, match=r"^EOMS_WORK_TIMEZONE"):
        working_hours_between(sh(2026, 11, 23, 9, 0), sh(2026, 11, 23, 10, 0))
