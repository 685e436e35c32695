"""`make demo`: generate a week of the sample city and run the pipeline over it, embedded.

Each business date is ingested in turn; then the corrections the sample city staged arrive
late (as real re-uploads do) and their dates are ingested again, which makes new batch
versions. Prints a per-organisation summary and where everything landed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from collections import Counter
from pathlib import Path

from contracts.registry import load_registry
from expectations.rulebase import rulebase
from expectations.scoring import acceptance, read_scores, score_date
from expectations.validate import validate_date
from infra.cli import league_table, summary_table
from infra.runtime import runtime
from infra.settings import settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from ingest.pipeline import ingest_date

    try:
        from expectations.report import write_reports
    except ImportError:  # pragma: no cover - until the reports land
        write_reports = None
    from ingest.samplecity import apply_corrections, generate

    config = settings()
    if not (config.embedded_storage and config.embedded_warehouse):
        raise SystemExit(
            "the demo runs on the embedded runtime only: unset HQLAKE_S3_ENDPOINT "
            "and HQLAKE_CLICKHOUSE_URL"
        )
    started = time.monotonic()
    for path in (args.inbox, config.chdb_path, config.seaweed_dir):  # start from nothing
        if path.exists():
            shutil.rmtree(path)
    summary = generate(
        args.inbox, args.start, args.days, scale=args.scale, faults="default", seed=args.seed
    )
    generated = time.monotonic() - started
    print(
        f"generated {args.days} days of the sample city in {args.inbox} "
        f"({generated:.1f}s): {summary.get('rows_total', summary)} rows"
    )

    registry = load_registry(args.inbox / "_registry.csv")
    dates = [args.start + dt.timedelta(days=i) for i in range(args.days)]
    all_results = []
    with runtime(config) as rt:
        for day in dates:
            t0 = time.monotonic()
            results = ingest_date(rt, str(args.inbox), day, registry)
            all_results += results
            status = Counter(r.status for r in results)
            rows = sum(r.rows_loaded for r in results)
            print(
                f"{day}: {len(results)} files ({dict(status)}), {rows:,} rows loaded "
                f"in {time.monotonic() - t0:.1f}s"
            )
        corrected = apply_corrections(args.inbox)
        redo = sorted({dt.date.fromisoformat(p.parts[-2]) for p in corrected})
        print(
            f"\n{len(corrected)} corrected files arrived late; "
            f"re-ingesting {[str(d) for d in redo]}"
        )
        for day in redo:
            for r in ingest_date(rt, str(args.inbox), day, registry):
                if r.status == "loaded" and r.batch_version > 1:
                    print(f"  {r.file}: version {r.batch_version} ({r.reason})")
                    all_results.append(r)
        rerun = ingest_date(rt, str(args.inbox), dates[0], registry)
        print(
            f"\nre-run of {dates[0]}: {len(rerun)} files, "
            f"{dict(Counter(r.status for r in rerun))}, "
            f"{sum(r.rows_loaded for r in rerun)} rows loaded (nothing changed, nothing doubled)"
        )
        print("\nvalidating and scoring every date (rules, Great Expectations, ranks):")
        validated = []
        for day in dates:
            t0 = time.monotonic()
            run = validate_date(
                rt.ch,
                registry,
                day,
                gx_dir=config.home / "gx" / day.isoformat(),
                datadocs_dir=config.home / "reports" / day.isoformat() / "datadocs",
            )
            t1 = time.monotonic()
            day_scores = score_date(rt.ch, registry, day)
            validated.append((day, run, t1 - t0, time.monotonic() - t1))
            print(
                f"  {day}: {run.rule_results:,} rule results on {run.batches} batches "
                f"({run.rows:,} rows): {run.failed} failed, {run.errors} errors, "
                f"{run.record_issues:,} failing records; validated in {t1 - t0:.1f}s, "
                f"{len(day_scores)} organisations scored in {time.monotonic() - t1:.1f}s"
            )
        # The league table of the day with the most failed rules shows the most; the reports
        # are written for every day.
        last = max(dates, key=lambda d: (sum(r["rules_failed"] for r in read_scores(rt.ch, d)), d))
        league = read_scores(rt.ch, last)
        reports = None
        if write_reports:
            for day in dates:
                written = write_reports(rt.ch, registry, day)
                reports = written if day == last else reports
        month = acceptance(rt.ch, registry, last.replace(day=1))
        counts = rt.ch.query(
            "SELECT dataset, sum(rows_loaded), sum(rows_quarantined) FROM dq.batch FINAL"
            " WHERE (org_code, dataset, business_date, batch_version) IN"
            " (SELECT org_code, dataset, business_date, batch_version FROM raw.current_batch)"
            " GROUP BY dataset ORDER BY dataset"
        ).result_rows

    print("\nper organisation, whole week:")
    print(summary_table(all_results, registry))
    print("\ncurrent batch versions, rows per dataset (loaded / quarantined):")
    for dataset, loaded, quarantined in counts:
        print(f"  {dataset:<22} {loaded:>10,} {quarantined:>8,}")
    print(
        f"\nlake (SeaweedFS data): {config.seaweed_dir}  bucket {config.lake_bucket}: "
        "raw/original, raw/typed, quarantine, drift, rejected"
    )
    print(
        f"warehouse (chDB): {config.chdb_path}  databases raw (one table per dataset), "
        "dq (batch, ingest_file, quarantine, rule_result, record_issue, run, score_*, acceptance)"
    )
    print(f"ground truth of injected defects: {args.inbox / '_ground_truth.jsonl'}")
    rule_count = len(rulebase().rules)
    print(
        f"\nrule base: {rule_count} rules of {len(rulebase().types)} types; validation of the "
        f"week took {sum(v[2] for v in validated):.1f}s, "
        f"scoring {sum(v[3] for v in validated):.1f}s"
    )
    print(
        f"\nleague table of {last} (composite = 30% completeness, 20% timeliness, "
        "30% correctness, 20% logic):"
    )
    print(league_table(league))
    passed = sum(1 for a in month if a["passed"])
    print(f"\nacceptance {last:%Y-%m} so far: {passed} of {len(month)} organisations pass")
    if reports:
        print(f"\nreports: city page {reports['city']}")
        for org, path in list(sorted(reports["orgs"].items()))[:3]:
            print(f"  {org}: {path}")
        print(f"  ... {len(reports['orgs'])} organisation pages in {reports['city'].parent}")
    print(f"GX Data Docs: {config.home / 'reports' / last.isoformat() / 'datadocs' / 'index.html'}")
    print(f"demo finished in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
