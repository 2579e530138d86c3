"""When a cron schedule fires: its ticks as UTC instants, computed in the schedule's time zone.

A tick is a wall-clock time in the pipeline's zone that the cron expression matches. Daylight
saving moves the wall clock, so two rules make every tick one instant:

* **Spring forward** (a local time that does not exist, e.g. 02:30 in Europe/Berlin on the last
  Sunday of March): the tick fires once, at the first valid instant after the gap (03:00 local).
  Several skipped ticks, and a tick at the gap's end itself, are one fire time.
* **Fall back** (a local time that happens twice, e.g. 02:30 on the last Sunday of October): the
  tick fires once, at the first occurrence (02:30 summer time). The repeated hour adds no ticks.

croniter is the cron parser. Given zone-aware datetimes it fires a repeated local time twice (once
per offset), so it is not handed any: it walks naive wall-clock times, where a day is always 24
hours, and :func:`instant` turns each into a UTC instant by the two rules above.

Expressions have five fields (minute hour day month weekday) or six, the sixth being seconds
(croniter's order), or an alias such as ``@daily``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter

FIELD_COUNTS = (5, 6)


class ScheduleError(ValueError):
    """An expression or zone that cannot make a schedule; ``field`` is ``cron`` or ``timezone``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@functools.lru_cache(maxsize=4096)  # a scheduler pass checks every due pipeline's expression
def cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not a usable expression, or None."""
    text = cron.strip()
    if not text.startswith("@") and len(text.split()) not in FIELD_COUNTS:
        return ("a cron expression has 5 fields (minute hour day month weekday) or 6 (the sixth is "
                "seconds), or is an alias such as @daily")
    if not croniter.is_valid(text):
        return f"{cron!r} is not a valid cron expression"
    if any(_random(field) for field in text.split()):
        # croniter draws R anew for every parse: each pass would compute other ticks.
        return "random fields (R) are not supported: a schedule must give the same ticks every time"
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"{cron!r} never fires (no date matches it)"
    return None


def _random(field: str) -> bool:
    tokens = (part.split("/")[0].strip().upper() for part in field.split(","))
    return any(t == "R" or t.startswith("R(") for t in tokens)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`ScheduleError` for an unknown one."""
    # ZoneInfo also opens file paths; only names from the tz database are zones here.
    if name not in _zone_names():
        raise ScheduleError("timezone", f"{name!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError("timezone", f"{name!r} is not an IANA time zone") from exc


@functools.cache  # reading the tz database's list of names is slow: once per process
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant a naive wall-clock time ``wall`` in ``tz`` fires at (the module's two rules)."""
    first = wall.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == wall:
        return utc  # exists; fold=0 is its first occurrence when it happens twice
    # In a gap: fold=1 reads it with the offset after the change (an instant before the change),
    # fold=0 with the offset before (an instant after it). The change lies between; find it.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = utc
    if low > high:
        low, high = high, low
    after = high.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high


@functools.lru_cache(maxsize=4096)
def _parsed(cron: str) -> croniter:
    return croniter(cron, datetime(2000, 1, 1))


def _walker(cron: str, wall: datetime) -> croniter:
    """A croniter at ``wall``. Parsing an expression costs more than walking it, and a scheduler
    pass walks thousands of pipelines' schedules: each expression is parsed once, then copied (the
    parsed fields are only read)."""
    walker = copy.copy(_parsed(cron.strip()))
    walker.set_current(wall, force=True)
    return walker


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        problem = cron_problem(self.cron)
        if problem is not None:
            raise ScheduleError("cron", problem)
        zone(self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def after(self, start: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``start``, ascending, as UTC instants (endless: bound it)."""
        tz = self.tz
        wall = start.astimezone(tz).replace(tzinfo=None)
        walker = _walker(self.cron, wall)
        last: datetime | None = None
        while True:
            fire = instant(walker.get_next(datetime), tz)
            if fire > start and fire != last:
                last = fire
                yield fire

    def until(self, end: datetime) -> Iterator[datetime]:
        """Fire times at or before ``end``, descending, as UTC instants (endless: bound it)."""
        tz = self.tz
        local = end.astimezone(tz)
        wall = local.replace(tzinfo=None)
        if local.fold == 1:
            # In the repeated hour's second pass, the first pass's later wall times fired before
            # ``end`` too: start walking back from the end of the repeat.
            repeat = local.replace(fold=0).utcoffset() - local.utcoffset()  # type: ignore[operator]
            wall += repeat
        # croniter's get_prev is strict; one second later makes ``end`` itself a candidate.
        walker = _walker(self.cron, wall + timedelta(seconds=1))
        last: datetime | None = None
        while True:
            fire = instant(walker.get_prev(datetime), tz)
            if fire <= end and fire != last:
                last = fire
                yield fire

    def next_after(self, start: datetime) -> datetime:
        return next(self.after(start))
