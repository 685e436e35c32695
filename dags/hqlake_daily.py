"""hqlake daily run: ingest, validate, score, build the marts, report and send feedback.

Business date. A run covers the data interval [D 09:00, D+1 09:00) Asia/Shanghai and runs at
its end, D+1 09:00, an hour after the hospitals' deadline (D+1 08:00): its logical date is
D 09:00 and its business date D. A manual run processes its `date` parameter (conf date),
else its logical date's day, else (neither given) the latest date whose interval has ended,
as the scheduled run would; `infra/schedule.py` has the table for every kind of run. A manual
run's data interval comes from the trigger time and never decides the date.

Start date. The schedule processes dates from HQLAKE_START_DATE, the first business date the
inbox is live: a scheduled run of an earlier date (unpausing makes one for the latest
interval) skips at `business_date`, so nothing is processed and no reminder is e-mailed.
Unset, every scheduled run skips. Manual runs and backfills always run.

Tasks (each calls one function of `infra.pipeline`, the same ones the CLI calls):

    business_date -> plan -> ingest[organisation] -> late_arrivals -> validate[date]
        -> score[date] -> build (dbt, the marts)
                       -> report[date] -> feedback[organisation]

- ingest: one mapped task per organisation with files for D, so one organisation's trouble
  or size does not hold the others; its bad files are refused and recorded, not raised.
  The tasks map over groups of organisations (HQLAKE_ORGS_PER_TASK): one each on a
  ClickHouse server, all in one on chDB, where the one-slot pool runs tasks one at a time
  and a task instance costs more than an organisation's work (under a scheduler, a process
  opening chDB; `make airflow` runs one SeaweedFS for all tasks).
- late_arrivals: re-ingests the HQLAKE_LATE_DAYS (7) business dates before D; dates where a
  late or corrected file made a new batch version are validated, scored, reported and fed
  back again in this run, next to D.
- validate, score, report: one mapped task per business date (D and the late ones).
  Validation is one run per date (`dq.current_run` is per date); inside it the work is per
  batch and pushed down into ClickHouse.
- feedback: one mapped task per active organisation (grouped like ingest); an e-mail goes
  out only when its content changed since the last one for that organisation-day (ledger
  dq.feedback_sent). In a group, one organisation's failure stops no other's e-mail: the
  task sends the rest, then fails naming it.

Failures. Quality failures are data: they never fail a task, feedback still goes out.
Infrastructure errors fail the task, which is retried with exponential backoff
(HQLAKE_TASK_RETRIES, HQLAKE_TASK_RETRY_DELAY seconds). A failed ingest of one
organisation does not stop validation, scores and e-mails of the others; the feedback task
of that organisation fails instead of telling it nothing was received. Re-running a DAG run
is safe: every stage is idempotent (batch fingerprints, validation runs, ledger).

Embedded runtime: chDB opens its data path in one process, so every task uses the pool
HQLAKE_WAREHOUSE_POOL with one slot (`make airflow` creates it; `hqlake run` runs the DAG
in-process with `dag.test()`). A task that finds another holding the embedded home fails at
once, without retries, saying the pool must have one slot. With a ClickHouse server and
MinIO, give the pool more slots.

Runs never overlap. A run's late-arrivals pass re-ingests the dates before it, so two runs
within HQLAKE_LATE_DAYS of each other would race: `max_active_runs=1` holds scheduled and
manual runs, and `business_date` waits (rescheduled every 30 s, holding no slot) while another
run is past its business_date and not finished (a backfill of older dates started while the
daily run goes waits for it; backfill runs do not count towards max_active_runs), or while a
run of one of the HQLAKE_LATE_DAYS dates before its own is queued or running (earlier dates
first: a backfill's runs one at a time, oldest first, even with Airflow's default of 10
active backfill runs). Two `business_date` tasks deciding in the same instant could both go
on; the embedded pool's one slot runs them one after the other.

Backfill (one run per business date, oldest first): `airflow backfill create --dag-id
hqlake_daily --from-date 2026-11-09T09:00:00+08:00 --to-date 2026-11-11T09:00:00+08:00
--max-active-runs 1 --reprocess-behavior completed` (the bounds are logical dates, D 09:00;
infra/README.md has every operator command), or embedded `hqlake backfill --start
2026-11-09 --end 2026-11-11`.

This file only wires tasks: at parse time it imports Airflow, the standard library and light
modules (`contracts.timezone`; `infra.schedule`, the 09:00 run; `infra.settings`, the task
policy from the environment), nothing heavy (Great Expectations takes seconds to import).
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import (
    CronDataIntervalTimetable,
    Param,
    TriggerRule,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
)

from contracts.timezone import TZ_NAME
from infra.schedule import CRON, logical_date
from infra.settings import task_policy

POLICY = task_policy()
# Not HQLAKE_START_DATE: Airflow creates no task of a manual run whose logical date is before
# the DAG's start date (the run "succeeds" doing nothing); business_date skips scheduled runs
# before HQLAKE_START_DATE instead.
START = logical_date(dt.date(2026, 1, 1))
WAIT_FOR_OTHER_RUNS = dt.timedelta(seconds=30)

DEFAULT_ARGS = {
    "owner": "hqlake",
    "retries": POLICY.retries,
    "retry_delay": dt.timedelta(seconds=POLICY.retry_delay),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
    "execution_timeout": dt.timedelta(hours=3),
    "pool": POLICY.pool,
}


def _day(value: str | None) -> dt.date:
    """A business date passed on by `business_date`; None when that task failed or skipped
    (a trigger rule that runs anyway must not turn it into a TypeError)."""
    if not isinstance(value, str):
        raise AirflowSkipException(
            "no business date: the business_date task failed or skipped this run (see its log)"
        )
    return dt.date.fromisoformat(value)


def _stage(name: str, *args, **kwargs):
    """`infra.pipeline.<name>(...)`; the embedded home held by another task (a pool of more
    than one slot) fails the task at once with what to fix, never retried."""
    from infra import pipeline
    from infra.airflow_run import EmbeddedPoolError, claim_home

    try:
        claim_home()
    except EmbeddedPoolError as exc:
        raise AirflowFailException(str(exc)) from exc
    return getattr(pipeline, name)(*args, **kwargs)


# a run whose business_date is in one of these states has not passed its gate yet ("null": not
# scheduled yet, e.g. a queued run's)
_AT_THE_GATE = [
    "null",
    "scheduled",
    "queued",
    "running",
    "up_for_reschedule",
    "up_for_retry",
    "restarting",
    "deferred",
]


def _wait_for_other_runs(context, day: dt.date) -> None:
    """Reschedule while another run would race this one (a run's late-arrivals pass
    re-ingests the HQLAKE_LATE_DAYS dates before its own): while another run is past its
    business_date and not finished (one run processes at a time, whatever its kind or date:
    a backfill of older dates waits for the daily run going on), or a run of one of the
    HQLAKE_LATE_DAYS dates before `day` is queued or running (earlier dates go first)."""
    from infra.settings import settings

    ti = context["ti"]
    runs = ti.get_dr_count(dag_id=ti.dag_id, states=["queued", "running"])
    # this run is one of both counts; a run past its gate is active and not at the gate
    at_gate = ti.get_ti_count(dag_id=ti.dag_id, task_ids=["business_date"], states=_AT_THE_GATE)
    earlier = [logical_date(day - dt.timedelta(days=n)) for n in range(1, settings().late_days + 1)]
    if runs > at_gate or ti.get_dr_count(
        dag_id=ti.dag_id, logical_dates=earlier, states=["queued", "running"]
    ):
        raise AirflowRescheduleException(
            reschedule_date=dt.datetime.now(dt.UTC) + WAIT_FOR_OTHER_RUNS
        )


@dag(
    dag_id="hqlake_daily",
    schedule=CronDataIntervalTimetable(CRON, timezone=TZ_NAME),
    start_date=pendulum.instance(START),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["hqlake", "daily", "quality"],
    params={
        "date": Param(None, type=["null", "string"], description="business date YYYY-MM-DD"),
        "inbox": Param(
            None, type=["null", "string"], description="directory or s3://bucket/prefix"
        ),
    },
    doc_md=__doc__,
)
def hqlake_daily():
    @task(multiple_outputs=True)
    def business_date() -> dict:
        """The run's business date (infra.schedule) and inbox; waits while another run would
        race it."""
        from infra import pipeline
        from infra.schedule import BusinessDateError, before_start, run_business_date

        context = get_current_context()
        dag_run = context["dag_run"]
        try:
            day = run_business_date(
                context["params"]["date"], dag_run.logical_date, dag_run.run_after
            )
        except BusinessDateError as exc:
            raise AirflowFailException(str(exc)) from exc
        if dag_run.run_type == "scheduled" and (why := before_start(day, POLICY.start_date)):
            raise AirflowSkipException(why)
        _wait_for_other_runs(context, day)
        return {"day": day.isoformat(), "inbox": pipeline.inbox_url(context["params"]["inbox"])}

    @task
    def plan(day: str, inbox: str) -> list[list[str]]:
        """The organisations with files in the inbox for the day, in their ingest groups."""
        return _stage("plan_stage", _day(day), inbox)["groups"]

    @task
    def feedback_targets(day: str, uploaded: list[list[str]]) -> list[dict]:
        return _stage("feedback_targets", _day(day), [c for group in uploaded for c in group])

    @task
    def ingest(org_codes: list[str], day: str, inbox: str) -> dict:
        return _stage("ingest_stage", _day(day), inbox, org_codes)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def late_arrivals(day: str, inbox: str) -> list[str]:
        """Business dates to (re)process in this run: the late ones that changed, then D."""
        late = _stage("late_stage", _day(day), inbox)
        return [*late["changed"], day]

    @task
    def validate(day: str) -> dict:
        return _stage("validate_stage", _day(day))

    @task
    def score(day: str) -> dict:
        return _stage("score_stage", _day(day))

    @task
    def build(dates: list[str]) -> dict:
        return _stage("build_stage", [_day(d) for d in dates])

    @task
    def report(day: str) -> dict:
        return _stage("report_stage", _day(day))

    @task
    def feedback(
        org_codes: list[str], expect_upload: list[str], dates: list[str], day: str
    ) -> list[dict]:
        return _stage(
            "feedback_group_stage", [_day(d) for d in dates], _day(day), org_codes, expect_upload
        )

    when = business_date()
    day, inbox = when["day"], when["inbox"]
    uploaded = plan(day, inbox)
    ingested = ingest.partial(day=day, inbox=inbox).expand(org_codes=uploaded)
    dates = late_arrivals(day, inbox)
    ingested >> dates
    validated = validate.expand(day=dates)
    scored = score.expand(day=dates)
    validated >> scored
    scored >> build(dates)
    reported = report.expand(day=dates)
    scored >> reported
    targets = feedback_targets(day, uploaded)
    reported >> feedback.partial(dates=dates, day=day).expand_kwargs(targets)


hqlake_daily()
