"""hqlake daily run: ingest, validate, score, build the marts, report and send feedback.

Business date. A run covers the data interval [D 09:00, D+1 09:00) Asia/Shanghai and runs at
its end, D+1 09:00, an hour after the hospitals' deadline (D+1 08:00): its business date is
the data interval start, D. The `date` parameter overrides it for manual runs.

Tasks (each calls one function of `infra.pipeline`, the same ones the CLI calls):

    business_date -> plan -> ingest[organisation] -> late_arrivals -> validate[date]
        -> score[date] -> build (dbt, the marts)
                       -> report[date] -> feedback[organisation]

- ingest: one mapped task per organisation with files for D, so one organisation's trouble
  or size does not hold the others; its bad files are refused and recorded, not raised.
- late_arrivals: re-ingests the HQLAKE_LATE_DAYS (7) business dates before D; dates where a
  late or corrected file made a new batch version are validated, scored, reported and fed
  back again in this run, next to D.
- validate, score, report: one mapped task per business date (D and the late ones).
  Validation is one run per date (`dq.current_run` is per date); inside it the work is per
  batch and pushed down into ClickHouse.
- feedback: one mapped task per active organisation; an e-mail goes out only when its
  content changed since the last one for that organisation-day (ledger dq.feedback_sent).

Failures. Quality failures are data: they never fail a task, feedback still goes out.
Infrastructure errors fail the task, which is retried with exponential backoff
(HQLAKE_TASK_RETRIES, HQLAKE_TASK_RETRY_DELAY seconds). A failed ingest of one
organisation does not stop validation, scores and e-mails of the others; the feedback task
of that organisation fails instead of telling it nothing was received. Re-running a DAG run
is safe: every stage is idempotent (batch fingerprints, validation runs, ledger).

Embedded runtime: chDB opens its data path in one process, so every task uses the pool
HQLAKE_WAREHOUSE_POOL (create it with one slot there; `hqlake run` does, and runs the DAG
in-process with `dag.test()`). With a ClickHouse server, give the pool more slots.

Backfill (one run per business date, oldest first): `airflow backfill create --dag-id
hqlake_daily --from-date 2026-11-09T09:00+08:00 --to-date 2026-11-11T09:00+08:00` (the
bounds are logical dates, D 09:00), or embedded `hqlake backfill --start 2026-11-09
--end 2026-11-11`.

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

from contracts.timezone import TZ_NAME
from infra.schedule import CRON
from infra.settings import task_policy

POLICY = task_policy()

DEFAULT_ARGS = {
    "owner": "hqlake",
    "retries": POLICY.retries,
    "retry_delay": dt.timedelta(seconds=POLICY.retry_delay),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
    "execution_timeout": dt.timedelta(hours=3),
    "pool": POLICY.pool,
}


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


@dag(
    dag_id="hqlake_daily",
    schedule=CronDataIntervalTimetable(CRON, timezone=TZ_NAME),
    start_date=pendulum.datetime(2026, 1, 1, tz=TZ_NAME),
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
        from infra import pipeline

        context = get_current_context()
        day = pipeline.business_date(context["params"]["date"], context["data_interval_start"])
        return {"day": day.isoformat(), "inbox": pipeline.inbox_url(context["params"]["inbox"])}

    @task
    def plan(day: str, inbox: str) -> list[str]:
        """The organisations with files in the inbox for the day."""
        from infra import pipeline

        return pipeline.plan_stage(_day(day), inbox)["uploaded"]

    @task
    def feedback_targets(day: str, uploaded: list[str]) -> list[dict]:
        from infra import pipeline

        return pipeline.feedback_targets(_day(day), uploaded)

    @task
    def ingest(org_code: str, day: str, inbox: str) -> dict:
        from infra import pipeline

        return pipeline.ingest_stage(_day(day), inbox, org_code)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def late_arrivals(day: str, inbox: str) -> list[str]:
        """Business dates to (re)process in this run: the late ones that changed, then D."""
        from infra import pipeline

        late = pipeline.late_stage(_day(day), inbox)
        return [*late["changed"], day]

    @task
    def validate(day: str) -> dict:
        from infra import pipeline

        return pipeline.validate_stage(_day(day))

    @task
    def score(day: str) -> dict:
        from infra import pipeline

        return pipeline.score_stage(_day(day))

    @task
    def build(dates: list[str]) -> dict:
        from infra import pipeline

        return pipeline.build_stage([_day(d) for d in dates])

    @task
    def report(day: str) -> dict:
        from infra import pipeline

        return pipeline.report_stage(_day(day))

    @task
    def feedback(org_code: str, expect_upload: bool, dates: list[str], day: str) -> list[dict]:
        from infra import pipeline

        return [
            pipeline.feedback_stage(_day(d), org_code, expect_upload=expect_upload and d == day)
            for d in dates
        ]

    when = business_date()
    day, inbox = when["day"], when["inbox"]
    uploaded = plan(day, inbox)
    ingested = ingest.partial(day=day, inbox=inbox).expand(org_code=uploaded)
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
