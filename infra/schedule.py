"""When the daily run runs and which business date a DAG run processes, one owner: 09:00 of
D+1 in the standard's time zone runs business date D, an hour after the hospitals' deadline
(D+1 08:00, contracts/timeliness.yaml).

The DAG's timetable, its start date, the logical date of a run and the business date of any
DAG run come from here. The DAG file imports this module at parse time, so it imports the
standard library and `contracts.timezone` only.

Which business date a run processes (`run_business_date`), for every way a run is made:

| run | what Airflow gives it | business date |
|---|---|---|
| scheduled (09:00 of D+1) | logical date D 09:00 (its data interval's start) | D |
| backfill (`airflow backfill create`) | logical date D 09:00, one run per date | D |
| `airflow dags trigger --logical-date D` (or D 09:00 +08:00) | that logical date | D |
| `airflow dags trigger --conf '{"date": "D"}'` (the UI's trigger form too) | conf `date` | D |
| a trigger with neither | only the time it was triggered | the latest date ended by then |
| a cleared re-run | the run's own logical date or conf | the same date as the first time |

"The latest date ended by then" is the latest date whose interval had ended at the trigger
time, the one the scheduled run before it processed. The data interval of a manual run is
inferred from the trigger time, whatever logical date is given, so it never decides the
date: the conf date does, else the logical date's day in the standard's time zone.
"""

from __future__ import annotations

import datetime as dt

from contracts.timezone import TZ

RUN_HOUR = 9
CRON = f"0 {RUN_HOUR} * * *"  # the data interval [D 09:00, D+1 09:00) ends at D+1 09:00


class BusinessDateError(ValueError):
    """A DAG run whose business date cannot be told: the message says what to give."""


def logical_date(day: dt.date) -> dt.datetime:
    """The logical date of the scheduled run of business date `day`: D 09:00, the start of
    its data interval [D 09:00, D+1 09:00) (a backfill's runs have it too)."""
    return dt.datetime.combine(day, dt.time(RUN_HOUR), TZ)


def interval_date(interval_start: dt.datetime) -> dt.date:
    """The business date of a data interval (or a logical date): the day it falls on in the
    standard's time zone."""
    return interval_start.astimezone(TZ).date()


def latest_complete_date(at: dt.datetime) -> dt.date:
    """The latest business date whose data interval has ended by `at`: the date the
    scheduled run at or before `at` processed."""
    return interval_date(at - dt.timedelta(hours=RUN_HOUR)) - dt.timedelta(days=1)


def run_business_date(
    conf_date: str | None,
    logical: dt.datetime | None,
    run_after: dt.datetime | None = None,
) -> dt.date:
    """The business date of a DAG run: its conf `date`, else its logical date's day, else
    the latest complete date at `run_after` (a trigger with neither), see the table above."""
    if conf_date:
        try:
            return dt.date.fromisoformat(str(conf_date))
        except ValueError:
            raise BusinessDateError(
                f"conf date {conf_date!r} is not a date: trigger with"
                ' --conf \'{"date": "YYYY-MM-DD"}\''
            ) from None
    if logical is not None:
        return interval_date(logical)
    if run_after is not None:
        return latest_complete_date(run_after)
    raise BusinessDateError(
        "this run has no business date: give conf date (YYYY-MM-DD) or a logical date"
    )


def before_start(day: dt.date, start: dt.date | None) -> str | None:
    """Why a scheduled run of `day` must not process it (no e-mails either), or None: the
    inbox goes live on HQLAKE_START_DATE; with none configured, no scheduled run processes
    anything (manual runs and backfills are the operator's own choice and always run)."""
    if start is None:
        return (
            f"scheduled run of {day} skipped: HQLAKE_START_DATE is not set (the first business"
            " date the inbox is live); set it to let the schedule run"
        )
    if day < start:
        return (
            f"scheduled run of {day} skipped: it is before HQLAKE_START_DATE={start}, the first"
            " business date the inbox is live (no data, and no reminders for it)"
        )
    return None
