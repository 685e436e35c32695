"""Calendar and clock of the sample city: working days, deadlines, receive times.

Working days and deadlines are the standard's (contracts.calendar, contracts/timeliness.yaml).
Local (Asia/Shanghai) wall-clock times are turned into epoch seconds explicitly with
zoneinfo, never through the machine's local zone. Inside data frames, datetimes are kept as
"naive local seconds" (seconds since 1970-01-01 00:00 local wall clock), which format to the
local text the standard asks for.
"""

from __future__ import annotations

import datetime as dt

from contracts import calendar
from contracts.loader import contracts
from contracts.timezone import TZ

EPOCH = dt.date(1970, 1, 1)
DAY = 86_400


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01."""
    return (day - EPOCH).days


def naive_seconds(day: dt.date, seconds: int = 0) -> int:
    """Naive local seconds of `seconds` after midnight of `day`."""
    return day_number(day) * DAY + seconds


def epoch(local: dt.datetime) -> int:
    """Epoch seconds of a naive Asia/Shanghai wall-clock time."""
    return int(local.replace(tzinfo=TZ).timestamp())


def is_workday(day: dt.date) -> bool:
    """A Chinese working day, as the standard's deadlines count them (contracts.calendar)."""
    return calendar.is_workday(day)[0]


def is_holiday(day: dt.date) -> bool:
    """A public holiday that falls on a weekday (weekends are handled separately)."""
    return day.weekday() < 5 and not is_workday(day)


def deadline(kind: str, business_date: dt.date) -> dt.datetime:
    """Naive local time by which a batch of `kind` for `business_date` must be received."""
    return calendar.deadline(kind, business_date).at.replace(tzinfo=None)


def late_after_days() -> int:
    return contracts().timeliness.record_lag.late_after_days
