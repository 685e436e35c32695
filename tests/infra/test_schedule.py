"""The daily run's hour and time zone: one owner (infra.schedule, contracts.timezone)."""

from __future__ import annotations

import datetime as dt

from contracts.loader import contracts
from contracts.timezone import TZ, TZ_NAME
from infra.schedule import RUN_HOUR, interval_date, logical_date


def test_the_time_zone_is_the_timeliness_contract_s():
    assert TZ_NAME == contracts().timeliness.timezone == str(TZ)


def test_a_manual_run_has_the_scheduled_run_s_interval():
    day = dt.date(2026, 11, 9)
    run_at = logical_date(day)
    assert run_at == dt.datetime(2026, 11, 10, RUN_HOUR, tzinfo=TZ)
    # the interval [D 09:00, D+1 09:00) starts a day before the run and is business date D
    assert interval_date(run_at - dt.timedelta(days=1)) == day
    assert interval_date((run_at - dt.timedelta(days=1)).astimezone(dt.UTC)) == day
