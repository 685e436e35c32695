"""The daily run's hour and time zone and the business date of every kind of DAG run: one
owner (infra.schedule, contracts.timezone), checked against Airflow's own timetable."""

from __future__ import annotations

import datetime as dt
import functools

import pendulum
import pytest

from contracts.loader import contracts
from contracts.timezone import TZ, TZ_NAME
from infra.schedule import (
    CRON,
    RUN_HOUR,
    BusinessDateError,
    before_start,
    interval_date,
    latest_complete_date,
    logical_date,
    run_business_date,
)

D = dt.date(2026, 11, 16)


@functools.cache
def timetable():
    """Airflow's own timetable of the DAG's cron (imported here: Airflow costs ~4 s at
    collection in every process otherwise)."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    return CronDataIntervalTimetable(CRON, timezone=TZ_NAME)


def test_the_time_zone_is_the_timeliness_contract_s():
    assert TZ_NAME == contracts().timeliness.timezone == str(TZ)


def test_the_scheduled_run_of_d_has_logical_date_d_0900_and_processes_d():
    from airflow.timetables.base import TimeRestriction

    after = pendulum.instance(logical_date(D))  # the last run before: [D-1 09:00, D 09:00)
    last = timetable().infer_manual_data_interval(run_after=after)
    info = timetable().next_dagrun_info(
        last_automated_data_interval=last,
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.logical_date == logical_date(D) == dt.datetime(2026, 11, 16, RUN_HOUR, tzinfo=TZ)
    assert info.run_after == logical_date(D + dt.timedelta(days=1))
    assert run_business_date(None, info.logical_date, info.run_after) == D


def test_a_manual_run_s_interval_comes_from_the_trigger_time_never_its_date():
    triggered = pendulum.datetime(2026, 12, 2, 7, 50, tz="UTC")
    inferred = timetable().infer_manual_data_interval(run_after=triggered)
    assert interval_date(inferred.start) != D  # why the interval must not decide
    # only a logical date (as the README gives it, or a bare day)
    assert run_business_date(None, logical_date(D), triggered) == D
    assert run_business_date(None, dt.datetime(2026, 11, 16, tzinfo=dt.UTC), triggered) == D
    # only conf.date, with or without a logical date
    assert run_business_date("2026-11-16", None, triggered) == D
    assert run_business_date("2026-11-16", logical_date(D + dt.timedelta(days=3))) == D


def test_a_trigger_with_neither_processes_the_latest_complete_date():
    # 2026-12-02 07:50 +08:00: the run of 12-01 09:00 (business date 11-30) is the latest done
    at = dt.datetime(2026, 12, 1, 23, 50, tzinfo=dt.UTC)
    assert run_business_date(None, None, at) == latest_complete_date(at) == dt.date(2026, 11, 30)
    just_run = logical_date(dt.date(2026, 12, 2))  # 12-02 09:00: business date 12-01 is done
    assert latest_complete_date(just_run) == dt.date(2026, 12, 1)
    assert latest_complete_date(just_run - dt.timedelta(seconds=1)) == dt.date(2026, 11, 30)


def test_a_run_without_a_usable_date_says_what_to_give():
    with pytest.raises(BusinessDateError, match="is not a date"):
        run_business_date("2026-13-01", logical_date(D))
    with pytest.raises(BusinessDateError, match="no business date"):
        run_business_date(None, None, None)


def test_scheduled_runs_before_the_start_date_or_without_one_skip():
    assert before_start(D, D) is None
    assert before_start(D + dt.timedelta(days=1), D) is None
    assert "before HQLAKE_START_DATE=2026-11-17" in before_start(D, dt.date(2026, 11, 17))
    assert "HQLAKE_START_DATE is not set" in before_start(D, None)
