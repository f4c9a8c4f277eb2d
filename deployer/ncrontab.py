"""NCRONTAB, the six-field cron of Azure Functions timers: ``sec min hour day month day-of-week``.

Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b``, and names
for months (JAN-DEC) and days (SUN-SAT). As in the host, a day matches when both the day-of-month
and the day-of-week fields match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}),
    ("day", 1, 31, {}), ("month", 1, 12, _MONTHS), ("day of week", 0, 6, _DAYS))
#: no schedule waits longer than this for its next match (a leap day is at most 8 years away)
SEARCH_DAYS = 366 * 8


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def next_after(self, after: datetime) -> datetime:
        """The first matching time strictly after ``after`` (same time zone)."""
        start = after.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        for _ in range(SEARCH_DAYS):
            weekday = (day.weekday() + 1) % 7  # cron counts from Sunday
            if day.month in self.months and day.day in self.days and weekday in self.weekdays:
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        for second in sorted(self.seconds):
                            candidate = day.replace(hour=hour, minute=minute, second=second)
                            if candidate >= start:
                                return candidate
            day += timedelta(days=1)
        raise ValueError(f"schedule {self.expression!r} never fires")


def parse(expression: str) -> Schedule:
    parts = expression.split()
    if len(parts) != 6:
        raise ValueError(f"NCRONTAB {expression!r} needs 6 fields (sec min hour day month "
                         f"day-of-week), found {len(parts)}")
    sets = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(7 % 7 if d == 7 else d for d in sets[5])
    seconds, minutes, hours, days, months, _ = sets
    return Schedule(expression, seconds, minutes, hours, days, months, weekdays)


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = _number(step_text, name, names) if step_text else 1
        if step <= 0:
            raise ValueError(f"{name} step must be positive in {text!r}")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _number(a, name, names), _number(b, name, names)
        else:
            start = _number(base, name, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high + (1 if name == "day of week" else 0)) \
                or start > end:
            raise ValueError(f"{name} {item!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, name: str, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ValueError(f"{name} {text!r} is not a number")
    return int(text)
