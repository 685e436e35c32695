"""business_date's gate (`_wait_for_other_runs`): which other runs make a run wait.

The gate asks Airflow's execution API for counts (`get_dr_count`, `get_ti_count`); here a
small table of runs answers them with the API's filters (a "null" state is a task instance
without a state, e.g. a queued run's). The real scheduler runs the same gate in
tests/infra/test_airflow_scheduler.py.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.schedule import logical_date

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "hqlake_daily.py"
D = dt.date(2026, 11, 16)


@pytest.fixture(scope="module")
def gate():
    spec = importlib.util.spec_from_file_location("hqlake_daily_gate", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._wait_for_other_runs


@dataclass
class Run:
    state: str  # the DAG run's
    gate: str | None  # its business_date task's state
    day: dt.date | None = None  # its logical date's business date; None: a conf-only trigger


class Runs:
    """The task instance interface the gate uses, answered from `runs`."""

    dag_id = "hqlake_daily"

    def __init__(self, *runs: Run) -> None:
        self.runs = runs

    def get_dr_count(self, dag_id, logical_dates=None, states=None) -> int:
        return sum(
            1
            for r in self.runs
            if (logical_dates is None or (r.day and logical_date(r.day) in logical_dates))
            and (states is None or r.state in states)
        )

    def get_ti_count(self, dag_id, task_ids=None, states=None) -> int:
        assert task_ids == ["business_date"]
        return sum(1 for r in self.runs if states is None or (r.gate or "null") in states)


def _waits(gate, day: dt.date, *others: Run) -> bool:
    from airflow.sdk.exceptions import AirflowRescheduleException  # not at collection: ~4 s

    this = Run("running", "running", day)
    try:
        gate({"ti": Runs(this, *others)}, day)
    except AirflowRescheduleException:
        return True
    return False


def test_a_run_alone_or_after_finished_runs_goes_on(gate):
    assert not _waits(gate, D)
    history = [Run("success", "success", D - dt.timedelta(days=n)) for n in range(1, 30)]
    assert not _waits(gate, D, *history, Run("failed", "failed"), Run("success", "skipped", D))


def test_a_backfill_of_an_older_date_waits_for_the_run_going_on(gate):
    assert _waits(gate, D - dt.timedelta(days=1), Run("running", "success", D))
    # a conf-only run (no logical date) past its gate, and one of a date weeks away
    assert _waits(gate, D - dt.timedelta(days=1), Run("running", "success", None))
    assert _waits(gate, D - dt.timedelta(days=40), Run("queued", "success", D))


def test_a_later_run_waiting_at_its_gate_does_not_hold_an_earlier_one(gate):
    later = Run("running", "up_for_reschedule", D + dt.timedelta(days=1))
    assert not _waits(gate, D, later, Run("queued", None, D + dt.timedelta(days=2)))


def test_a_run_waits_for_a_run_of_the_late_days_before_it(gate):
    for state, at_gate in (("queued", None), ("running", "up_for_reschedule")):
        assert _waits(gate, D, Run(state, at_gate, D - dt.timedelta(days=1)))
        assert _waits(gate, D, Run(state, at_gate, D - dt.timedelta(days=7)))
        # beyond HQLAKE_LATE_DAYS (7) the earlier run does not race this one's dates
        assert not _waits(gate, D, Run(state, at_gate, D - dt.timedelta(days=8)))
