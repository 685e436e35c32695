"""`make demo`: generate a week of the sample city and run the daily DAG for each day, embedded.

Every business date goes through Airflow itself (`dag.test()`, SQLite metadata under
HQLAKE_HOME): ingest, validate, score, dbt build, reports, feedback e-mails. Then the
corrections the sample city staged arrive late (as real re-uploads do) and the next run's
late-arrivals pass picks them up; a repeated run shows that nothing changes and no e-mail is
sent twice. Prints the league table, the report paths, the e-mails sent and the mart row
counts, with the wall time of every stage. Last, the quality loop (infra/demo_loop.py): an
appeal approved, the rank that moves, the month signed and the subsidy sheet written; then
the portal's snapshot is published again. The e-mails link to the portal at
HQLAKE_PORTAL_URL (http://127.0.0.1:8080 here, where `make portal` serves it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path

DEMO_PORTAL_URL = "http://127.0.0.1:8080"  # `make portal` (hqlake serve's default address)

MARTS = (
    "ehr.dim_person",
    "ehr.fct_encounter",
    "ehr.fct_diagnosis",
    "ehr.fct_prescription",
    "ehr.fct_lab_result",
    "ehr.fct_health_record_timeline",
    "indicators.ind_hospital_monthly",
    "performance.perf_hospital_monthly",
    "dq_marts.dq_org_day_score",
)


def _stage_times(summaries: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for s in summaries:
        for task_id, t in s["tasks"].items():
            totals[task_id] += t["seconds"]
    return dict(totals)


def _progress(line: str) -> None:
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("great_expectations", "airflow", "dbt", "py.warnings"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    inbox = args.inbox.resolve()
    # The organisations are the generated city's: written before anything reads the settings
    # (the stages of the DAG run in this process and read them from there).
    os.environ["HQLAKE_ORG_REGISTRY"] = str(inbox / "_registry.csv")
    os.environ.setdefault("HQLAKE_INBOX", str(inbox))
    # the e-mails link to the portal `make portal` serves over this home
    os.environ.setdefault("HQLAKE_PORTAL_URL", DEMO_PORTAL_URL)

    from infra.settings import settings, smtp_config

    config = settings()
    if not (config.embedded_storage and config.embedded_warehouse):
        raise SystemExit(
            "the demo runs on the embedded runtime only: unset HQLAKE_S3_ENDPOINT "
            "and HQLAKE_CLICKHOUSE_URL"
        )
    if smtp_config().host:
        raise SystemExit("the demo sends to its local SMTP sink only: unset HQLAKE_SMTP_HOST")
    started = time.monotonic()
    for path in (inbox, config.home):  # start from nothing
        if path.exists():
            shutil.rmtree(path)
    from infra.home import private_dir

    private_dir(config.home)  # owner-only before the inbox is generated inside it

    from samplecity import apply_corrections, generate

    summary = generate(
        inbox, args.start, args.days, scale=args.scale, faults="default", seed=args.seed
    )
    generated = time.monotonic() - started
    print(
        f"generated {args.days} days of the sample city in {inbox} "
        f"({generated:.1f}s): {summary.get('rows_total', summary)} rows",
        flush=True,
    )

    from infra import airflow_run, pipeline

    # One embedded runtime for the week, the late re-run, the quality loop and the snapshot:
    # SeaweedFS started and stopped once (a stop took seconds), not once per DAG run.
    with pipeline.session():
        from expectations.rules.rulebase import rulebase
        from expectations.scoring.read import read_scores
        from infra.cli import league_table
        from infra.runtime import warehouse

        dates = [args.start + dt.timedelta(days=i) for i in range(args.days)]
        print(
            f"\nrunning the daily DAG through Airflow for {dates[0]} .. {dates[-1]}"
            " (a line per date as its run ends):",
            flush=True,
        )
        t0 = time.monotonic()
        summaries = airflow_run.run(dates, str(inbox), progress=_progress)
        week = time.monotonic() - t0
        for s in summaries:
            print(airflow_run.describe(s))

        corrected = apply_corrections(inbox)
        redo = sorted({dt.date.fromisoformat(p.parts[-2]) for p in corrected})
        print(
            f"\n{len(corrected)} corrected files arrived late for {[str(d) for d in redo]}; "
            f"running {dates[-1]} again: its late-arrivals pass picks them up",
            flush=True,
        )
        t1 = time.monotonic()
        again = airflow_run.run([dates[-1]], str(inbox), progress=_progress)
        rerun = time.monotonic() - t1
        for s in again:
            print(airflow_run.describe(s))

        ch = warehouse()
        outbox = sorted(config.outbox.glob("*.eml"))
        worst = max(dates, key=lambda d: (sum(r["rules_failed"] for r in read_scores(ch, d)), d))
        month = pipeline.acceptance(dates[-1].replace(day=1))
        counts = []
        for table in MARTS:
            try:
                query = f"SELECT count() FROM {table}"  # noqa: S608 - names from MARTS above
                counts.append((table, ch.query(query).result_rows[0][0]))
            except Exception as exc:  # a mart the build did not make is reported, not fatal
                counts.append((table, f"missing ({type(exc).__name__})"))
        stages = _stage_times(summaries + again)

        print(
            f"\nleague table of {worst}, the day with the most failed rules (composite = 30% "
            "completeness, 20% timeliness, 30% correctness, 20% logic):"
        )
        print(league_table(read_scores(ch, worst)))
        passed = sum(1 for a in month if a["passed"])
        print(f"\nacceptance {dates[-1]:%Y-%m} so far: {passed} of {len(month)} organisations pass")
        reports = config.reports_dir
        print(f"\nreports: city pages {reports}/<date>/index.html, e.g.")
        print(f"  {reports / worst.isoformat() / 'index.html'}")
        print(f"  organisation pages {reports / worst.isoformat() / 'org'}/<org_code>.html")
        print(f"  GX Data Docs {reports / worst.isoformat() / 'datadocs' / 'index.html'}")
        print(f"\ne-mails in the local SMTP sink's outbox {config.outbox}: {len(outbox)}")
        for path in outbox[:3]:
            print(f"  {path.name}")
        print("\nmart row counts:")
        for table, n in counts:
            print(f"  {table:<38} {n:>10,}" if isinstance(n, int) else f"  {table:<38} {n}")
        print(f"\nrule base: {len(rulebase().rules)} rules of {len(rulebase().types)} types")
        print("wall time per stage over all runs (Airflow task durations):")
        for task_id, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"  {task_id:<18} {seconds:7.1f}s")
        from infra import demo_loop

        t2 = time.monotonic()
        demo_loop.run(
            [worst, *sorted(set(dates) - {worst})],
            dates[-1].replace(day=1),
            private_dir(config.home / "exports"),
        )
        loop = time.monotonic() - t2
        from infra.actions import publish_snapshot

        t3 = time.monotonic()
        generation = publish_snapshot(config)  # the quality loop changed scores, appeals, sign-off
        print(
            f"\nportal snapshot {generation} published in {config.snapshot_dir}"
            f" ({time.monotonic() - t3:.1f}s, every scored date); the e-mails link to"
            f" {config.portal_url}/org/<org_code>/<date> (make portal serves it)"
        )
    print(
        f"\ngenerate {generated:.1f}s, {len(dates)} daily runs {week:.1f}s, "
        f"late re-run {rerun:.1f}s, quality loop {loop:.1f}s; "
        f"demo finished in {time.monotonic() - started:.1f}s"
    )
    print(f"ground truth of injected defects: {inbox / '_ground_truth.jsonl'}")


if __name__ == "__main__":
    main()
