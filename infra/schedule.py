"""When the daily run runs, one owner: 09:00 of D+1 in the standard's time zone runs business
date D, an hour after the hospitals' deadline (D+1 08:00, contracts/timeliness.yaml).

The DAG's timetable, the logical date of a manual run and the business date of a data
interval all come from here. The DAG file imports this module at parse time, so it imports
the standard library and `contracts.timezone` only.
"""

from __future__ import annotations

import datetime as dt

from contracts.timezone import TZ

RUN_HOUR = 9
CRON = f"0 {RUN_HOUR} * * *"  # the data interval [D 09:00, D+1 09:00) ends at D+1 09:00


def logical_date(day: dt.date) -> dt.datetime:
    """The logical date of a manual run of business date `day`: D+1 09:00, so that its
    inferred data interval is [D 09:00, D+1 09:00), the interval of the scheduled run."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(RUN_HOUR), TZ)


def interval_date(interval_start: dt.datetime) -> dt.date:
    """The business date of a data interval: the date its start falls on, D."""
    return interval_start.astimezone(TZ).date()
