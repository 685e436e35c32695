"""`hqlake rules suggest` on a generated sample city: three days ingested and validated once
for the module; counts checked against the ground truth, the answer's shape, the command's
three formats, and that it changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.loader import CONTRACTS_DIR
from contracts.registry import load_registry
from expectations.rules.rulebase import rulebase
from expectations.tuning.config import load_suggestion_config
from expectations.tuning.suggest import suggest
from expectations.validate import validate_date
from infra.dbtrun import indicator_sources
from infra.pipeline import ingestor
from infra.runtime import Runtime, warehouse
from samplecity import generate
from tests.conftest import reset_warehouse

pytestmark = pytest.mark.integration

START, DAYS = dt.date(2026, 11, 9), 3
END = START + dt.timedelta(days=DAYS - 1)
BLOCKING_RULE, BLOCKING_DEFECT = "patient.id_no.resident_id", ("patient", "bad_check_digit")
WARNING_RULE, WARNING_DEFECT = (
    "inpatient_discharge.drug_le_total_fee",
    (
        "inpatient_discharge",
        "drug_fee_gt_total",
    ),
)
RULE_KEYS = {
    "rule_id",
    "rule_type",
    "section",
    "dimension",
    "level",
    "severity",
    "current_weight",
    "threshold",
    "overrides",
    "weights_in_results",
    "description",
    "fields",
    "organisations_judged",
    "organisations_failed",
    "org_days_judged",
    "org_days_failed",
    "failed_results",
    "error_results",
    "failed_in_results",
    "rows",
    "datasets",
    "indicators",
    "suggestion",
}


@pytest.fixture(scope="module")
def city(config, seaweed, tmp_path_factory):
    """The sample city's default faults over three days, ingested and validated."""
    from minio.deleteobjects import DeleteObject

    ch = warehouse(config)
    reset_warehouse(ch)
    s3 = seaweed.client()
    for bucket in (config.lake_bucket, config.inbox_bucket):
        objects = [DeleteObject(o.object_name) for o in s3.list_objects(bucket, recursive=True)]
        assert not list(s3.remove_objects(bucket, objects))
    rt = Runtime(config, s3, ch)
    inbox = tmp_path_factory.mktemp("suggest") / "inbox"
    generate(inbox, START, DAYS, hospitals=6, counties=2, scale=0.003, faults="default", seed=11)
    truth = [json.loads(x) for x in (inbox / "_ground_truth.jsonl").read_text().splitlines()]
    registry = load_registry(inbox / "_registry.csv")
    loader = ingestor(rt, registry)
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        loader.ingest(str(inbox), day)
        assert validate_date(ch, registry, day).errors == 0
    return ch, truth


def _answer(ch, first=START, last=END):
    return suggest(
        ch,
        first,
        last,
        rule_base=rulebase(),
        config=load_suggestion_config(),
        indicators=indicator_sources(),
    )


def _defects(truth, dataset, defect, first=START, last=END):
    items = [
        t
        for t in truth
        if (t["dataset"], t["defect"]) == (dataset, defect)
        and first <= dt.date.fromisoformat(t["business_date"]) <= last
    ]
    return (
        {t["org_code"] for t in items},
        {(t["org_code"], t["business_date"]) for t in items},
        {(t["org_code"], t["business_date"], t["record_key"]) for t in items},
    )


def test_counts_agree_with_the_ground_truth(city):
    ch, truth = city
    answer = _answer(ch)
    by_id = {r["rule_id"]: r for r in answer["rules"]}
    assert answer["dates_validated"] == [
        (START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)
    ]
    assert answer["summary"]["rules"] == len(rulebase().rules) == len(by_id)

    orgs, org_days, keys = _defects(truth, *BLOCKING_DEFECT)
    assert keys, "the default faults inject bad check digits"
    blocking = by_id[BLOCKING_RULE]
    assert (blocking["organisations_failed"], blocking["org_days_failed"]) == (
        len(orgs),
        len(org_days),
    )
    assert blocking["failed_in_results"] == len(keys)
    assert blocking["rows"] == {
        "failed": len(keys),
        "kept_out": len(keys),
        "kept_out_by_this_rule_alone": len(keys),
    }
    (patient,) = blocking["datasets"]
    loaded = ch.query(
        "SELECT sum(rows_loaded) FROM dq.batch FINAL WHERE dataset = 'patient'"
        " AND (org_code, dataset, business_date, batch_version) IN"
        " (SELECT org_code, dataset, business_date, batch_version FROM raw.current_batch)"
    ).result_rows[0][0]
    assert patient["rows_in_period"] == loaded > 0
    assert patient["failed_pct"] == round(100 * len(keys) / loaded, 4)
    # a blocking patient row is missing wherever the patient table is read: no indicator
    # reads it directly
    assert blocking["indicators"] == {"reach": "rows", "columns": []}

    orgs, org_days, keys = _defects(truth, *WARNING_DEFECT)
    assert keys
    warning = by_id[WARNING_RULE]
    assert (warning["organisations_failed"], warning["org_days_failed"]) == (
        len(orgs),
        len(org_days),
    )
    assert warning["rows"] == {
        "failed": len(keys),
        "kept_out": 0,
        "kept_out_by_this_rule_alone": 0,
    }
    assert warning["fields"] == ["inpatient_discharge.drug_fee", "inpatient_discharge.total_fee"]
    assert warning["indicators"]["reach"] == "fields"
    columns = {c["column"]: c for c in warning["indicators"]["columns"]}
    assert "ind_hospital_monthly.outpatient_fee" not in columns
    (stays,) = warning["datasets"]
    # the share of the indicator's input rows (the period's discharges) that the rule failed
    assert columns["ind_hospital_monthly.inpatient_drug_fee_share_pct"] == {
        "column": "ind_hospital_monthly.inpatient_drug_fee_share_pct",
        "through": ["inpatient_discharge"],
        "input_rows": stays["rows_in_period"],
        "rows_failed": len(keys),
        "failed_pct": round(100 * len(keys) / stays["rows_in_period"], 4),
    }
    # an indicator of two datasets counts the input rows of the one the rule reaches it by
    assert columns["ind_hospital_monthly.drug_fee_share_pct"]["through"] == ["inpatient_discharge"]

    # each day alone counts only its own defects; a day without one never failed the rule
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        alone = {r["rule_id"]: r for r in _answer(ch, day, day)["rules"]}[BLOCKING_RULE]
        orgs, org_days, keys = _defects(truth, *BLOCKING_DEFECT, day, day)
        assert (alone["organisations_failed"], alone["org_days_failed"]) == (
            len(orgs),
            len(org_days),
        )
        assert alone["rows"]["kept_out"] == len(keys)
        if not keys:
            assert alone["suggestion"]["heuristic"] == "never_failed"


def test_the_answer_has_a_fixed_shape_and_is_the_same_when_asked_again(city):
    ch, _ = city
    answer = _answer(ch)
    assert set(answer) == {
        "period",
        "dates_validated",
        "organisations",
        "rules_fingerprints",
        "summary",
        "heuristics",
        "meaning",
        "rules",
        "rules_not_in_rule_base",
    }
    assert answer["period"] == {"from": START.isoformat(), "to": END.isoformat()}
    assert answer["organisations"] == 8 and len(answer["rules_fingerprints"]) >= 1
    assert answer["rules_not_in_rule_base"] == []
    actions = {"raise", "lower", "keep"}
    assert sum(answer["summary"][a] for a in actions) == answer["summary"]["rules"]
    for rule in answer["rules"]:
        assert set(rule) == RULE_KEYS, rule["rule_id"]
        s = rule["suggestion"]
        assert set(s) == {"heuristic", "action", "weight", "threshold", "reason"}
        assert s["action"] in actions and set(s["reason"]) == {"zh", "en"}
        assert isinstance(s["weight"], float) and s["reason"]["en"] and s["reason"]["zh"]
        assert rule["organisations_failed"] <= rule["organisations_judged"] <= 8
        assert rule["org_days_failed"] <= rule["org_days_judged"]
        if rule["organisations_failed"] == 0:
            assert s["action"] == "keep" and s["weight"] == rule["current_weight"]
    assert json.loads(json.dumps(answer)) == answer
    assert _answer(ch) == answer


def _fingerprint_dq(ch) -> dict[str, tuple]:
    tables = [
        r[0]
        for r in ch.query(
            "SELECT name FROM system.tables WHERE database = 'dq' AND engine NOT LIKE '%View'"
            " ORDER BY name"
        ).result_rows
    ]
    return {
        t: tuple(ch.query(f"SELECT count(), groupBitXor(cityHash64(*)) FROM dq.`{t}`").first_row)
        for t in tables
    }


def _contract_bytes() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(CONTRACTS_DIR.glob("*.yaml"))
    }


def test_the_command_in_three_formats_changes_nothing(city, tmp_path):
    from infra.cli import app

    ch, _ = city
    before_dq, before_files = _fingerprint_dq(ch), _contract_bytes()
    runner = CliRunner()
    period = ["rules", "suggest", "--from", START.isoformat(), "--to", END.isoformat()]
    as_json = runner.invoke(app, [*period, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == _answer(ch)

    table = runner.invoke(app, period)
    assert table.exit_code == 0, table.output
    line = next(x for x in table.stdout.splitlines() if f" {BLOCKING_RULE} " in x)
    assert line.split()[:3] == [
        _answer(ch)["rules"][[r["rule_id"] for r in _answer(ch)["rules"]].index(BLOCKING_RULE)][
            "suggestion"
        ]["action"],
        BLOCKING_RULE,
        "blocking",
    ]
    assert "never failed or were not judged" in table.stdout

    page = tmp_path / "suggest.html"
    html = runner.invoke(app, [*period, "--format", "html", "--out", str(page)])
    assert html.exit_code == 0, html.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and BLOCKING_RULE in text
    assert "<script" not in text and "http" not in text.replace('"http-equiv"', "")

    assert _fingerprint_dq(ch) == before_dq
    assert _contract_bytes() == before_files
    assert Path(CONTRACTS_DIR / "rules.yaml").exists()
