import datetime as dt
import json

import pytest

from contracts.registry import load_registry
from expectations.engines.monitoring import modified_z, monitor_date, volume_check
from expectations.rules.rulebase import rulebase
from infra.pipeline import ingestor
from samplecity import generate

START = dt.date(2026, 11, 9)
# Ground-truth defects that monitoring must catch, and the rule type that catches each.
BATCH_DEFECTS = {
    "missing_batch": "batch_received",
    "late_file": "batch_on_time",
    "manifest_row_count_mismatch": "manifest_row_count",
    "volume_collapse": "volume_not_collapsed",
    "volume_spike": "volume_not_spiked",
    "corrupt_gzip": "file_readable",
    "extra_column": "no_schema_drift",
    "missing_required_column": "columns_present",
    "untypeable_value": "values_typed",
    "wrong_field_count": "values_typed",
}
# Uploads outside any batch, judged once per organisation-day (result dataset '').
ORG_DAY_DEFECTS = {"unknown_dataset": "uploads_recognised", "wrong_org_kind": "uploads_recognised"}


def test_modified_z_and_volume_rule():
    assert modified_z(10, [100, 110, 90, 105, 95]) < -3.5
    assert modified_z(100, [100, 100, 100, 100]) == 0
    assert modified_z(10, [100, 100, 100, 100]) == float("-inf")
    params = {"window_days": 28, "min_history": 4, "z_threshold": -3.5, "min_drop_pct": 50}
    friday = dt.date(2026, 11, 13)
    weekdays = {friday - dt.timedelta(days=i): 100 + i for i in range(1, 5)}
    assert volume_check(12, friday, weekdays, params)[:2] == (1, 1)
    assert volume_check(98, friday, weekdays, params)[:2] == (1, 0)
    steady = {friday - dt.timedelta(days=i): 100 for i in range(1, 5)}
    assert volume_check(90, friday, steady, params)[:2] == (1, 0)  # z is -inf, but only -10%
    sunday = dt.date(2026, 11, 15)  # only one rest day of history: not judged
    checked, failed, note = volume_check(5, sunday, {**weekdays, dt.date(2026, 11, 14): 40}, params)
    assert (checked, failed) == (0, 0) and "1 comparable rest days" in note


@pytest.mark.integration
def test_monitoring_catches_every_batch_level_defect(rt, tmp_path):
    generate(tmp_path, START, 7, hospitals=8, counties=2, scale=0.02, faults="default", seed=11)
    registry = load_registry(tmp_path / "_registry.csv")
    truth = [
        json.loads(line) for line in (tmp_path / "_ground_truth.jsonl").read_text().splitlines()
    ]
    results = []
    for i in range(7):
        day = START + dt.timedelta(days=i)
        ingestor(rt, registry).ingest(str(tmp_path), day)
        results += monitor_date(rt.ch, registry, rulebase(), day, run_id="t")
    failed = {
        (r.org_code, r.dataset, r.business_date.isoformat(), r.rule_type)
        for r in results
        if r.status == "failed"
    }
    dims = {r.rule_type: r.dimension for r in results}
    expected = set()
    for t in truth:
        if t["defect"] in ORG_DAY_DEFECTS:
            rule_type = ORG_DAY_DEFECTS[t["defect"]]
            expected.add((t["org_code"], "", t["business_date"], rule_type))
            assert dims[rule_type] == t["dimension"], t
        if t["defect"] in BATCH_DEFECTS and t["org_code"] in registry.organisations:
            rule_type = BATCH_DEFECTS[t["defect"]]
            expected.add((t["org_code"], t["dataset"], t["business_date"], rule_type))
            if t["defect"] == "missing_batch":  # a batch never received is also not on time
                expected.add((t["org_code"], t["dataset"], t["business_date"], "batch_on_time"))
            assert dims[rule_type] == t["dimension"], t
    every_kind = set(BATCH_DEFECTS.values()) | set(ORG_DAY_DEFECTS.values())
    assert {e[3] for e in expected} == every_kind  # every kind was injected
    notes = {
        (r.org_code, r.dataset, r.business_date.isoformat(), r.rule_type): r.notes for r in results
    }
    assert expected <= failed, [(m, notes.get(m)) for m in expected - failed]
    assert failed <= expected, [(m, notes.get(m)) for m in failed - expected]  # no false alarm
    assert {r.status for r in results} <= {"passed", "failed", "not_applicable"}


@pytest.mark.integration
def test_clean_city_has_no_failed_batch_rule(rt, tmp_path):
    generate(tmp_path, START, 3, hospitals=5, counties=2, scale=0.003, faults="none", seed=5)
    registry = load_registry(tmp_path / "_registry.csv")
    for i in range(3):
        day = START + dt.timedelta(days=i)
        ingestor(rt, registry).ingest(str(tmp_path), day)
        results = monitor_date(rt.ch, registry, rulebase(), day, run_id="t")
        assert len(results) == (5 + 2) * (5 * 9 + 1)  # org x (dataset x batch rule + org-day)
        assert [r for r in results if r.status not in ("passed", "not_applicable")] == []


@pytest.mark.integration
def test_results_round_trip_through_the_history_table(rt):
    from expectations.rules.results import RuleResult, write_results

    rule = next(r for r in rulebase().rules if r.id == "patient.batch_on_time")
    where = {
        "run_id": "r1",
        "org_code": "411502",
        "dataset": "patient",
        "business_date": START,
        "batch_version": 1,
    }
    results = [
        RuleResult.of(rule, checked=10, failed=2, sample_keys=["k1", "k2"], **where),
        RuleResult.error(rule, "query failed: timeout", **where),
    ]
    write_results(rt.ch, results)
    rows = rt.ch.query(
        "SELECT status, checked, failed, failed_pct, sample_keys, notes, dimension"
        " FROM dq.rule_result ORDER BY status"
    ).result_rows
    assert rows == [
        ("error", 0, 0, 0.0, [], "query failed: timeout", "timeliness"),
        ("failed", 10, 2, 20.0, ["k1", "k2"], "", "timeliness"),
    ]
