"""Fire times of cron schedules in a time zone, across daylight saving changes (fixed instants)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from tidemark_orchestrator.schedule import Schedule, ScheduleError, cron_problem

pytestmark = pytest.mark.unit


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def after(schedule: Schedule, start: datetime, n: int) -> list[datetime]:
    return list(islice(schedule.after(start), n))


def until(schedule: Schedule, end: datetime, n: int) -> list[datetime]:
    return list(islice(schedule.until(end), n))


# Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST (01:00 UTC); 2026-10-25 03:00 CEST → 02:00 CET (01:00 UTC).
# America/New_York: 2026-03-08 02:00 EST → 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT → 01:00 EST (06:00 UTC).


def test_berlin_spring_skipped_time_fires_once_at_the_end_of_the_gap() -> None:
    daily = Schedule("30 2 * * *", "Europe/Berlin")
    assert after(daily, utc(2026, 3, 27, 12), 3) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),   # 02:30 does not exist: 03:00 CEST, the first valid instant
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_berlin_spring_several_skipped_ticks_and_the_gap_end_are_one_fire_time() -> None:
    half_hourly = Schedule("*/30 * * * *", "Europe/Berlin")
    # 02:00, 02:30 (skipped) and 03:00 all land on 01:00 UTC: one fire time, not three.
    assert after(half_hourly, utc(2026, 3, 29, 0, 0), 3) == [
        utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)]


def test_berlin_autumn_repeated_time_fires_once_at_its_first_occurrence() -> None:
    daily = Schedule("30 2 * * *", "Europe/Berlin")
    assert after(daily, utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first 02:30; the second (01:30 UTC) does not fire
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]
    half_hourly = Schedule("*/30 * * * *", "Europe/Berlin")
    # The repeated hour 02:00-03:00 fires in its first pass only.
    assert after(half_hourly, utc(2026, 10, 24, 23, 45), 4) == [
        utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 2, 30)]


def test_new_york_spring_and_autumn() -> None:
    daily = Schedule("30 2 * * *", "America/New_York")
    assert after(daily, utc(2026, 3, 7, 12), 2) == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]
    early = Schedule("30 1 * * *", "America/New_York")
    assert after(early, utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; the repeat at 01:30 EST (06:30 UTC) does not fire
        utc(2026, 11, 2, 6, 30),  # 01:30 EST
    ]


def test_walking_back_from_inside_the_repeated_hour_finds_its_first_pass() -> None:
    half_hourly = Schedule("*/30 * * * *", "Europe/Berlin")
    # 01:15 UTC is 02:15 CET, the second pass; 02:30 CEST (00:30 UTC) already fired before it.
    assert until(half_hourly, utc(2026, 10, 25, 1, 15), 3) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 0, 0), utc(2026, 10, 24, 23, 30)]
    new_york = Schedule("30 2 * * *", "America/New_York")
    assert until(new_york, utc(2026, 3, 9, 0), 2) == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 7, 7, 30)]


def test_until_includes_its_end_and_after_excludes_its_start() -> None:
    hourly = Schedule("0 * * * *")
    assert until(hourly, utc(2026, 1, 1, 5), 1) == [utc(2026, 1, 1, 5)]
    assert after(hourly, utc(2026, 1, 1, 5), 1) == [utc(2026, 1, 1, 6)]


def test_month_and_day_names_are_not_random_fields() -> None:
    assert cron_problem("0 2 * MAR-APR FRI") is None


def test_a_sixth_field_is_seconds() -> None:
    every_two = Schedule("* * * * * */2")
    assert after(every_two, utc(2026, 1, 1, 0, 0, 0), 3) == [
        utc(2026, 1, 1, 0, 0, 2), utc(2026, 1, 1, 0, 0, 4), utc(2026, 1, 1, 0, 0, 6)]


@pytest.mark.parametrize(("cron", "problem"), [
    ("0 2 * *", "5 fields"),
    ("0 0 1 1 * * 2027", "5 fields"),
    ("61 * * * *", "not a valid cron expression"),
    ("0 0 30 2 *", "never fires"),
    ("R 2 * * *", "random fields"),
    ("0 R(1-3) * * *", "random fields"),
])
def test_unusable_expressions_say_why(cron: str, problem: str) -> None:
    found = cron_problem(cron)
    assert found is not None
    assert problem in found
    with pytest.raises(ScheduleError) as raised:
        Schedule(cron)
    assert raised.value.field == "cron"


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "europe/berlin"])
def test_only_iana_zone_names_are_zones(name: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        Schedule("0 2 * * *", name)
    assert raised.value.field == "timezone"
