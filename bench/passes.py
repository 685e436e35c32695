"""Validation of one city-day in SQL passes per group of organisations against one pass per
dataset (issue 16, item 6): peak memory, time, CPU, and that the results are the same.

    HQLAKE_HOME=<fresh dir> .venv/bin/python -m bench.passes --inbox INBOX --day 2026-11-16 \
        --json out.json [--history 0]

In one fresh process: ingest the day (and `--history` days before it, validated), then
validate the day twice without Data Docs, first in passes of at most
`expectations.validate.ROWS_PER_PASS` rows (what the daily run does), then in one pass per
dataset (`rows_per_pass` unbounded: what it did before); Great Expectations is imported and
set up once before either. The grouped run goes first so that
memory the allocator keeps from the other cannot inflate its peak (neither glibc nor
ClickHouse hands memory back at once); each stage's peak and its RSS at the start are
reported. Both runs' dq.rule_result and dq.record_issue rows (as `bench.same_results`
compares them) must be equal: exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from bench.measure import MIB, Meter, loadavg, machine, process_peak
from bench.same_results import run_results

ONE_PASS = 10**15


def run(inbox: Path, day: dt.date, history: int) -> dict:
    from contracts.registry import load_registry
    from expectations.engines.gxrun import GxValidator
    from expectations.validate import ROWS_PER_PASS, organisation_groups, validate_date
    from infra import pipeline
    from infra.runtime import runtime

    os.environ["HQLAKE_ORG_REGISTRY"] = str(inbox / "_registry.csv")
    registry = load_registry(inbox / "_registry.csv")
    out: dict = {"business_date": day.isoformat(), "history_days": history, "inbox": str(inbox)}
    with Meter() as meter, runtime() as rt, pipeline.session(rt):
        for i in range(history, 0, -1):
            past = day - dt.timedelta(days=i)
            pipeline.ingest_stage(past, str(inbox))
            validate_date(rt.ch, registry, past)
        with meter.stage("ingest") as stage:
            loaded = pipeline.ingest_stage(day, str(inbox))
        stage.rows = loaded["rows_loaded"] + loaded["rows_quarantined"]
        datasets = dict(
            rt.ch.query(
                "SELECT dataset, sum(rows_read) FROM dq.batch FINAL WHERE business_date = {d:Date}"
                " GROUP BY dataset ORDER BY dataset",
                parameters={"d": day},
            ).result_rows
        )
        out["dataset_day_rows"] = {k: int(v) for k, v in datasets.items()}
        out["largest_batch_rows"] = int(
            rt.ch.query(
                "SELECT max(rows_read) FROM dq.batch FINAL WHERE business_date = {d:Date}",
                parameters={"d": day},
            ).result_rows[0][0]
        )
        out["passes"] = {ds: len(organisation_groups(rt.ch, day, ds)) for ds in datasets}
        # Great Expectations' import and first context (seconds and a few hundred MiB, once
        # per process) outside both measured runs.
        GxValidator(day, None)
        dumps = {}
        for name, rows_per_pass in (("grouped", ROWS_PER_PASS), ("one_pass", ONE_PASS)):
            with meter.stage(f"validate_{name}") as stage:
                summary = validate_date(rt.ch, registry, day, rows_per_pass=rows_per_pass)
            stage.rows = summary.rows
            stage.detail = {"seconds": summary.seconds, "rule_results": summary.rule_results}
            dumps[name] = run_results(rt.ch, summary.run_id)
            print(
                f"{name}: {stage.seconds:.1f} s, {stage.cpu_seconds:.1f} s CPU, peak"
                f" {stage.peak_rss / MIB:,.0f} MiB (from {stage.rss_before / MIB:,.0f})",
                flush=True,
            )
        out["rows_per_pass"] = ROWS_PER_PASS
        out["same_results"] = dumps["grouped"] == dumps["one_pass"]
        out["rule_results"] = len(dumps["grouped"]["rule_result"])
        out["record_issues"] = len(dumps["grouped"]["record_issue"])
    out["stages"] = [s.public() for s in meter.stages]
    out["process_peak_rss_mib"] = round(process_peak() / MIB, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--day", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    if not os.environ.get("HQLAKE_HOME"):
        raise SystemExit("set HQLAKE_HOME to a fresh directory")
    before = loadavg()
    result = run(args.inbox, args.day, args.history)
    result["loadavg_before"], result["loadavg_after"] = before, loadavg()
    result["machine"] = machine()
    args.json.write_text(json.dumps(result, indent=1, default=str, ensure_ascii=False))
    print(
        f"same results: {result['same_results']} ({result['rule_results']} rule results,"
        f" {result['record_issues']} record issues)"
    )
    return 0 if result["same_results"] else 1


if __name__ == "__main__":
    sys.exit(main())
