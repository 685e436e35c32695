"""`python -m bench.overlap`: the overlap rules on one person's 20,000 stays (issue 13).

A hostile hospital can send thousands of stays of one identity number on one day. Two
hospitals each hold N stays of one person over the same days (N on D, N earlier): a join of
every pair is N² pairs per rule; the sorted pass of crossrules._sweep is n log n. In a fresh
throwaway chDB warehouse (no object storage), run_cross of stay_overlap_same_org and
stay_overlap_other_org (one query, they share the stays) is timed `--repeats` times; the
counts are checked (every stay fails both rules, every earlier stay is told once) and
written with the timings to bench/results/<date>-overlap.json.

    python -m bench.overlap [--stays 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.measure import loadavg, machine

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 12, 9)
TZ = ZoneInfo("Asia/Shanghai")
HOSPITALS = ("12411500MB0000001X", "12411500MB0000002X")
RULES = ("stay_overlap_same_org", "stay_overlap_other_org")


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


def _load(ch, dataset: str, rows: list[dict], org: str, day: dt.date) -> None:
    """One committed batch (version 1) of `rows`, lineage filled in."""
    from contracts.loader import contracts

    ds = contracts().dataset(dataset)
    names = [*ds.field_names, "org_code", "business_date", "batch_version"]
    names += ["source_file", "source_line", "received_at"]
    data = [
        [r.get(n) for n in ds.field_names] + [org, day, 1, "bench.csv", i + 2, _at(day, 23)]
        for i, r in enumerate(rows)
    ]
    ch.insert(f"raw.`{dataset}`", data, column_names=names)
    ch.insert(
        "dq.batch",
        [[org, dataset, day, 1]],
        column_names=["org_code", "dataset", "business_date", "batch_version"],
    )


def measure(n: int, repeats: int) -> dict:
    from contracts.codesystems import make_resident_id
    from expectations.engines.crossrules import run_cross
    from expectations.rules.rulebase import rulebase
    from infra.runtime import warehouse

    ch = warehouse()
    id_no = make_resident_id("411502", dt.date(1950, 3, 1), 11, "1")
    rows = {"patient_id": "P1", "id_type": "01", "id_no": id_no, "name": "甲", "sex_code": "1"}
    week_before = DAY - dt.timedelta(days=9)
    for org in HOSPITALS:
        _load(ch, "patient", [rows], org, week_before)
    earlier = [
        {
            "admission_id": f"Y{i:05d}",
            "patient_id": "P1",
            "admit_time": _at(DAY - dt.timedelta(days=6)),
            "discharge_time": _at(DAY - dt.timedelta(days=2)),
        }
        for i in range(n)
    ]
    _load(ch, "inpatient_discharge", earlier, HOSPITALS[1], DAY - dt.timedelta(days=1))
    today = [
        {
            "admission_id": f"Z{i:05d}",
            "patient_id": "P1",
            "admit_time": _at(DAY - dt.timedelta(days=4)),
            "discharge_time": _at(DAY),
        }
        for i in range(n)
    ]
    _load(ch, "inpatient_discharge", today, HOSPITALS[0], DAY)
    rules = [r for r in rulebase().rules_for("cross_sql") if r.type in RULES]
    tries = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = run_cross(ch, DAY, rules)
        tries.append(round(time.perf_counter() - started, 3))
    failed = {(r["rule_id"], r["org_code"]): r["failed"] for r in out}
    expected = {
        ("cross.stay_overlap_same_org", HOSPITALS[0]): n,
        ("cross.stay_overlap_other_org", HOSPITALS[0]): n,
        ("cross.stay_overlap_other_org", HOSPITALS[1]): n,
    }
    wrong = {k: (failed.get(k), v) for k, v in expected.items() if failed.get(k) != v}
    if wrong:
        raise SystemExit(f"overlap bench: wrong counts (got, expected) {wrong}")
    return {"stays_per_hospital": n, "seconds": min(tries), "tries": tries, "failed": n}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    a = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="hqlake-bench-overlap-"))
    os.environ["HQLAKE_HOME"] = str(home)
    for var in ("HQLAKE_S3_ENDPOINT", "HQLAKE_CLICKHOUSE_URL", "HQLAKE_ORG_REGISTRY"):
        os.environ.pop(var, None)
    try:
        before = loadavg()
        result = measure(a.stays, a.repeats)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result.update(loadavg_before=before, loadavg_after=loadavg(), machine=machine())
    a.results.mkdir(parents=True, exist_ok=True)
    path = a.results / f"{dt.date.today().isoformat()}-overlap.json"
    path.write_text(json.dumps(result, indent=1, default=str, ensure_ascii=False))
    print(
        f"overlap rules, {a.stays:,} stays of one person at each of two hospitals:"
        f" {result['seconds']} s (tries {result['tries']}); {path}"
    )


if __name__ == "__main__":
    main()
