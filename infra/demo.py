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
from infra.cli import summary_table
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
        "dq (batch, ingest_file, quarantine)"
    )
    print(f"ground truth of injected defects: {args.inbox / '_ground_truth.jsonl'}")
    print(f"demo finished in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
