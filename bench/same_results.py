"""Validate one business date on a bench warehouse and dump its results, to prove a change of
the rules' SQL changes no result: every dq.rule_result and dq.record_issue row of the run, row
for row, without what differs between runs (run_id, computed_at) and the rule's SQL text
(query_or_expectation, which a rewrite changes by design).

    HQLAKE_HOME=<copy of a bench home> HQLAKE_ORG_REGISTRY=<inbox>/_registry.csv \
      .venv/bin/python -m bench.same_results 2026-11-16 before.json
    ... after the change, on another copy of the same home:
      .venv/bin/python -m bench.same_results 2026-11-16 after.json --compare before.json

Exit 1 (and the first differing rows on stderr) when the two dumps differ.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

_RESULT = (
    "org_code, dataset, business_date, batch_version, rule_id, rule_type, dimension, severity,"
    " weight, threshold, checked, failed, failed_pct, status, sample_keys, sample_details, notes,"
    " rules_fingerprint"
)
_ISSUE = (
    "org_code, dataset, business_date, batch_version, record_key, detail, rule_id, dimension,"
    " severity"
)


def dump(day: dt.date) -> dict:
    from infra import pipeline

    with pipeline.session() as rt:
        summary = pipeline.validate_stage(day, datadocs=False)
        run = rt.ch.query(
            "SELECT run_id FROM dq.run WHERE business_date = {d:Date} AND status = 'complete'"
            " ORDER BY finished_at DESC LIMIT 1",
            parameters={"d": day},
        ).result_rows[0][0]
        return {"seconds": summary["seconds"], **run_results(rt.ch, run)}


def run_results(ch, run_id: str) -> dict[str, list]:
    """Every rule result and record issue of one validation run, in a stable order, as JSON
    values (what two runs are compared by)."""
    out = {}
    for name, table, columns in (
        ("rule_result", "dq.rule_result", _RESULT),
        ("record_issue", "dq.record_issue", _ISSUE),
    ):
        rows = ch.query(
            f"SELECT {columns} FROM {table} WHERE run_id = {{r:String}}"  # noqa: S608 (constants)
            f" ORDER BY {columns}",
            parameters={"r": run_id},
        ).result_rows
        out[name] = [json.loads(json.dumps(list(r), default=str)) for r in rows]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("date", type=dt.date.fromisoformat)
    ap.add_argument("out", type=Path)
    ap.add_argument("--compare", type=Path, help="a dump to compare with")
    args = ap.parse_args(argv)
    found = dump(args.date)
    args.out.write_text(json.dumps(found, ensure_ascii=False))
    print(
        f"{args.date}: {len(found['rule_result'])} rule results,"
        f" {len(found['record_issue'])} record issues, validation {found['seconds']}"
    )
    if not args.compare:
        return 0
    before = json.loads(args.compare.read_text())
    same = True
    for name in ("rule_result", "record_issue"):
        old, new = before[name], found[name]
        if old == new:
            print(f"{name}: {len(new)} rows identical")
            continue
        same = False
        gone = [r for r in old if r not in new][:5]
        added = [r for r in new if r not in old][:5]
        print(f"{name}: DIFFERENT ({len(old)} before, {len(new)} after)", file=sys.stderr)
        for r in gone:
            print(f"  - {r}", file=sys.stderr)
        for r in added:
            print(f"  + {r}", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
