"""The whole validation of a business date against the sample city's ground truth.

Every injected defect must be caught under the dimension the generator says (recall 100%),
a clean city must fail no rule (no false positive), and a re-run must give the same numbers.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict

import pytest

from contracts.registry import load_registry
from expectations.rules.rulebase import rulebase
from expectations.validate import current_results, organisation_groups, validate_date
from infra.pipeline import ingestor
from tests.conftest import CITY_START, CLEAN_CITY, FAULTY_WEEK, ground_truth

pytestmark = pytest.mark.integration

START, DAYS = CITY_START, FAULTY_WEEK["days"]
# Defects with no organisation to score: ingestion refuses them and lists them for the
# quality officer (tests/ingest/test_ground_truth.py checks that).
NOT_SCORED = {"unregistered_org"}
# Rule results whose numbers do not depend on when they were computed.
STABLE = (
    "org_code",
    "dataset",
    "business_date",
    "batch_version",
    "rule_id",
    "dimension",
    "severity",
    "weight",
    "threshold",
    "checked",
    "failed",
    "failed_pct",
    "status",
    "sample_keys",
    "notes",
    "rules_fingerprint",
)


def _stable(rows):
    return sorted(tuple(str(r[k]) for k in STABLE) for r in rows)


def test_validation_catches_every_injected_defect_and_reruns_identically(rt, faulty_week):
    inbox = faulty_week  # the session's (tests/conftest.py), generated once
    truth = ground_truth(inbox)
    registry = load_registry(inbox / "_registry.csv")
    loader = ingestor(rt, registry)
    failed = defaultdict(set)  # (org, dataset, date) -> dimensions of failed rules
    issue_keys = defaultdict(set)  # (org, dataset, date, dimension) -> failing record keys
    overlaps = set()  # (org, date, key) failing a stay-overlap rule (section 7.2)
    seconds, results = [], {}
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        loader.ingest(str(inbox), day)
        started = time.perf_counter()
        summary = validate_date(rt.ch, registry, day, temporary_tables=True)  # the pipeline's
        seconds.append(time.perf_counter() - started)
        assert summary.errors == 0
        results[day] = current_results(rt.ch, day)
        assert len(results[day]) == summary.rule_results
        for r in results[day]:
            assert r["status"] in ("passed", "failed", "not_applicable"), r
            assert r["failed"] <= r["checked"]
            if r["status"] == "failed":
                failed[(r["org_code"], r["dataset"], r["business_date"])].add(r["dimension"])
        for org, ds, key, dim, rule_id in rt.ch.query(
            "SELECT org_code, dataset, record_key, dimension, rule_id FROM dq.record_issue"
            " WHERE run_id = {r:String}",
            parameters={"r": summary.run_id},
        ).result_rows:
            issue_keys[(org, ds, day.isoformat(), dim)].add(key)
            if "stay_overlap" in rule_id:
                overlaps.add((org, day.isoformat(), key))

    hits, totals, missed = Counter(), Counter(), []
    for t in truth:
        if t["dimension"] is None or t["defect"] in NOT_SCORED:
            continue  # format variations and corrections are not defects
        dim, where = t["dimension"], (t["org_code"], t["dataset"], t["business_date"])
        totals[dim] += 1
        if t["record_key"] and t["expected_ingest"] is None:
            caught = t["record_key"] in issue_keys[(*where, dim)]
        else:  # a batch-level rule, or the organisation-day rule (dataset '') for refused files
            org_day = (t["org_code"], "", t["business_date"])
            caught = dim in failed[where] or dim in failed[org_day]
        if caught:
            hits[dim] += 1
        else:
            missed.append(t)
    for dim in sorted(totals):
        print(f"recall {dim}: {hits[dim]}/{totals[dim]} = {hits[dim] / totals[dim]:.0%}")
    print("validation seconds per day:", [round(s, 2) for s in seconds])
    assert set(totals) == {"completeness", "timeliness", "correctness", "logic"}
    assert not missed, [
        (t["defect"], t["dimension"], t["expected_ingest"], t["detail"]) for t in missed
    ]
    # precision of the overlap rules: across hospitals both are told, and nothing else is
    injected = {
        (t["org_code"], t["business_date"], t["record_key"])
        for t in truth
        if t["defect"].startswith("stay_overlap")
    }
    assert overlaps == injected, overlaps ^ injected
    told = {(t["org_code"], t["business_date"]) for t in truth if t["defect"].endswith("other_org")}
    assert len(told) >= 2, told  # the later hospital and the earlier one, on the same date

    # a re-run of a day writes a new run with identical numbers, and becomes the current one;
    # it runs the row rules one organisation per SQL pass (rows_per_pass=1) where the first
    # run made one pass per dataset, and the cross-dataset rules as one query per group (a
    # server's form) where the first run built their shared steps as temporary tables (the
    # embedded pipeline's): the same results and the same record issues
    day = START + dt.timedelta(days=3)
    first_run = results[day][0]["run_id"]
    assert len(organisation_groups(rt.ch, day, "patient")) == 1
    assert len(organisation_groups(rt.ch, day, "patient", rows_per_pass=1)) > 1
    again = validate_date(rt.ch, registry, day, rows_per_pass=1)
    rerun = current_results(rt.ch, day)
    assert {r["run_id"] for r in rerun} == {again.run_id}
    assert _stable(rerun) == _stable(results[day])
    assert _issues(rt.ch, again.run_id) == _issues(rt.ch, first_run)
    assert _issues(rt.ch, first_run)


def _issues(ch, run_id):
    return sorted(
        ch.query(
            "SELECT org_code, dataset, batch_version, rule_id, record_key, detail"
            " FROM dq.record_issue WHERE run_id = {r:String}",
            parameters={"r": run_id},
        ).result_rows
    )


def test_clean_city_fails_no_rule(rt, clean_city):
    inbox = clean_city
    days = CLEAN_CITY["days"]
    registry = load_registry(inbox / "_registry.csv")
    statuses = Counter()
    for i in range(days):
        day = START + dt.timedelta(days=i)
        ingestor(rt, registry).ingest(str(inbox), day)
        summary = validate_date(rt.ch, registry, day, temporary_tables=True)
        rows = current_results(rt.ch, day)
        bad = [r for r in rows if r["status"] in ("failed", "error")]
        assert bad == [], bad[:5]
        statuses.update(r["status"] for r in rows)
        assert summary.record_issues == 0
    assert statuses["passed"] > 1000
    levels = {r.level for r in rulebase().rules}
    assert levels >= {"batch", "field", "record", "cross_dataset", "organisation_day"}
