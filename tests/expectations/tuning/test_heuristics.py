"""The suggestion heuristics on constructed numbers at their boundaries, and the period's
numbers read from hand-made dq rows (current runs and current batches only)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from contracts.errors import OperatorError
from expectations.rules.results import RuleResult, write_results
from expectations.rules.rulebase import rulebase
from expectations.tuning.config import load_suggestion_config
from expectations.tuning.suggest import (
    NothingValidated,
    fields_read,
    percentile_threshold,
    suggest,
    suggestion,
)
from infra.dbtrun import indicator_sources
from tests.conftest import record_run

CONFIG = load_suggestion_config()
_TZ = ZoneInfo("Asia/Shanghai")


def stats(
    judged=6,
    failed=0,
    days_judged=18,
    days_failed=0,
    *,
    weight=2.0,
    threshold=0.0,
    severity="warning",
    level="field",
    kept_out=0,
    rows_in_period=1000,
    columns=("ind_hospital_monthly.outpatient_fee",),
    failed_pcts=(),
):
    return {
        "current_weight": weight,
        "threshold": threshold,
        "severity": severity,
        "level": level,
        "organisations_judged": judged,
        "organisations_failed": failed,
        "org_days_judged": days_judged,
        "org_days_failed": days_failed,
        "rows": {"failed": kept_out, "kept_out": kept_out, "kept_out_by_this_rule_alone": 0},
        "datasets": [{"dataset": "outpatient_visit", "rows_in_period": rows_in_period}],
        "indicators": {"reach": "rows", "columns": [{"column": c} for c in columns]},
        "failed_pcts": list(failed_pcts),
    }


def test_not_judged_and_never_failed_keep_the_weight():
    s = suggestion(stats(judged=0, days_judged=0), CONFIG)
    assert (s["heuristic"], s["action"], s["weight"]) == ("not_judged", "keep", 2.0)
    assert s["reason"]["en"] == (
        "Nothing to judge in the period (only not applicable or error results); keep weight 2"
    )
    s = suggestion(stats(judged=4, days_judged=12), CONFIG)
    assert (s["heuristic"], s["action"], s["weight"]) == ("never_failed", "keep", 2.0)
    assert s["reason"]["en"] == (
        "Judged 4 organisations on 12 organisation-days and never failed; keep weight 2"
    )
    assert s["reason"]["zh"] == "本期判定 4 家机构共 12 个机构日，从未失败，保持权重 2"


def test_widespread_at_its_boundaries_lowers_the_weight_and_offers_a_threshold():
    # 2 of 3 organisations (the minimum judged), exactly 50 % of the organisation-days
    s = suggestion(stats(3, 2, 6, 3, failed_pcts=(40.0, 1.0, 2.5)), CONFIG)
    assert (s["heuristic"], s["action"], s["weight"], s["threshold"]) == (
        "widespread",
        "lower",
        1.0,
        2.5,
    )
    assert s["reason"]["en"] == (
        "Failed by 2 of 3 organisations on 3 of 6 organisation-days: it measures the standard,"
        " not the organisation; lower weight 2 → 1; or raise its threshold 0% → 2.5% (at least"
        " 50% of its failed results would have passed)"
    )
    assert s["reason"]["zh"].startswith("3 家机构中 2 家、6 个机构日中 3 个未通过")
    # one organisation-day fewer, or one organisation short of the minimum: it separates
    assert suggestion(stats(3, 2, 6, 2), CONFIG)["heuristic"] == "separates"
    assert suggestion(stats(2, 2, 6, 6), CONFIG)["heuristic"] == "separates"
    assert suggestion(stats(4, 1, 12, 12), CONFIG)["heuristic"] == "separates"
    # a batch-level rule gets no threshold; the weight stays within the configured minimum
    batch = suggestion(stats(3, 3, 6, 6, weight=0.4, threshold=5.0, level="batch"), CONFIG)
    assert (batch["weight"], batch["threshold"]) == (0.25, 5.0)
    assert "threshold" not in batch["reason"]["en"]
    # lowering never raises: a weight already under the minimum stays
    low = suggestion(stats(3, 3, 6, 6, weight=0.1, level="batch"), CONFIG)
    assert (low["heuristic"], low["action"], low["weight"]) == ("widespread", "keep", 0.1)


def test_percentile_threshold():
    assert percentile_threshold([], 50) is None
    assert percentile_threshold([3.0], 50) == 3.0
    assert percentile_threshold([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile_threshold([1.0, 2.0, 3.0, 4.0], 75) == 3.0
    assert percentile_threshold([0.12341], 50) == 0.13  # rounded up: that result passes
    assert percentile_threshold([50.0, 100.0], 100) is None


def test_keeps_rows_out_raises_a_blocking_rule_at_its_boundaries():
    # 20 rows (the minimum) of 2000: exactly 1 %
    s = suggestion(
        stats(6, 1, 18, 1, weight=3.0, severity="blocking", kept_out=20, rows_in_period=2000),
        CONFIG,
    )
    assert (s["heuristic"], s["action"], s["weight"]) == ("keeps_rows_out", "raise", 6.0)
    assert s["reason"]["en"] == (
        "Its blocking failures kept 20 rows (1% of its datasets' rows in the period) out of the"
        " marts, reaching 1 indicator columns; raise weight 3 → 6"
    )
    blocking = {"weight": 3.0, "severity": "blocking"}
    for case in (
        {"kept_out": 19, "rows_in_period": 1900},  # 1 % but under the minimum rows
        {"kept_out": 20, "rows_in_period": 2001},  # 20 rows but under 1 %
        {"kept_out": 500, "rows_in_period": 1000, "columns": ()},  # feeds no indicator
    ):
        assert suggestion(stats(6, 1, 18, 1, **blocking, **case), CONFIG)["action"] == "keep"
    # a warning rule keeps no row out however many it fails
    warning = stats(6, 1, 18, 1, kept_out=0, rows_in_period=10)
    warning["rows"]["failed"] = 500
    assert suggestion(warning, CONFIG)["heuristic"] == "separates"
    # raising stops at the maximum; widespread comes first
    capped = stats(6, 1, 18, 1, weight=8.0, severity="blocking", kept_out=900)
    assert suggestion(capped, CONFIG)["weight"] == 10.0
    at_max = suggestion(stats(6, 1, 18, 1, weight=10.0, severity="blocking", kept_out=900), CONFIG)
    assert (at_max["heuristic"], at_max["action"], at_max["weight"]) == (
        "keeps_rows_out",
        "keep",
        10.0,
    )
    both = stats(6, 6, 18, 18, weight=3.0, severity="blocking", kept_out=900)
    assert suggestion(both, CONFIG)["heuristic"] == "widespread"


def test_fields_read_follow_the_parameters():
    rules = {r.id: r for r in rulebase().rules}
    assert fields_read(rules["inpatient_discharge.drug_le_total_fee"]) == (
        "inpatient_discharge.drug_fee",
        "inpatient_discharge.total_fee",
    )
    assert fields_read(rules["outpatient_visit.visit_id.unique_key"]) == (
        "outpatient_visit.visit_id",
    )
    assert "patient.birth_date" in fields_read(
        rules["inpatient_discharge.newborn_weight_only_infants"]
    )
    cross = fields_read(rules["cross.no_activity_after_death"])
    assert {"outpatient_visit.visit_time", "death_registration.death_date"} <= set(cross)
    assert fields_read(rules["outpatient_visit.batch_received"]) == ()


# ---- hand-made dq rows ---------------------------------------------------------------------

D1, D2 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)
RULE, OTHER = "outpatient_visit.visit_id.unique_key", "cross.no_activity_after_death"


def _result(run, org, day, rule_id, status, failed=0, checked=10, **kw):
    return RuleResult(
        run_id=run,
        org_code=org,
        dataset=kw.pop("dataset", "outpatient_visit"),
        business_date=day,
        batch_version=kw.pop("version", 2 if (org, day) == ("A", D1) else 1),
        rule_id=rule_id,
        rule_type=rule_id.rsplit(".", 1)[-1],
        dimension="correctness",
        severity="blocking",
        weight=3.0,
        threshold=0.0,
        checked=checked,
        failed=failed,
        failed_pct=100.0 * failed / checked if checked else 0.0,
        status=status,
        rules_fingerprint="fp1",
        **kw,
    )


def _hand_made(ch):
    at = dt.datetime(2026, 3, 4, 9, tzinfo=_TZ)
    record_run(ch, "old", D1, at)
    record_run(ch, "r1", D1, at + dt.timedelta(minutes=1))
    record_run(ch, "broken", D1, at + dt.timedelta(minutes=2), status="failed")
    record_run(ch, "r2", D2, at)
    write_results(
        ch,
        [
            _result("old", "A", D1, RULE, "failed", 9),
            _result("old", "B", D1, RULE, "failed", 9),
            _result("r1", "A", D1, RULE, "failed", 2),
            _result("r1", "B", D1, RULE, "passed"),
            _result("r1", "C", D1, RULE, "not_applicable", checked=0),
            _result("r2", "A", D2, RULE, "passed"),
            _result("r2", "B", D2, RULE, "failed", 1),
            _result("r2", "B", D2, "gone.rule", "failed", 1),
        ],
    )
    batches = [
        ("A", D1, 1, 100),
        ("A", D1, 2, 50),  # the current version of A's D1 batch
        ("B", D1, 1, 40),
        ("A", D2, 1, 30),
        ("B", D2, 1, 20),
    ]
    ch.insert(
        "dq.batch",
        [[org, "outpatient_visit", day, v, n] for org, day, v, n in batches],
        column_names=["org_code", "dataset", "business_date", "batch_version", "rows_loaded"],
    )

    def issue(run, org, day, version, key, rule):
        return [run, org, "outpatient_visit", day, version, key, "", rule, "logic", "blocking"]

    ch.insert(
        "dq.record_issue",
        [
            issue("r1", "A", D1, 2, "k1", RULE),
            issue("r1", "A", D1, 2, "k2", RULE),
            issue("r1", "A", D1, 2, "k2", OTHER),  # k2 is also kept out by another rule
            issue("r1", "A", D1, 1, "k9", RULE),  # a superseded batch version
            issue("old", "A", D1, 2, "k8", RULE),  # a run that is no longer current
            issue("broken", "A", D1, 2, "k7", RULE),  # a run that never completed
            issue("r2", "B", D2, 1, "k3", RULE),
        ],
        column_names=[
            "run_id",
            "org_code",
            "dataset",
            "business_date",
            "batch_version",
            "record_key",
            "detail",
            "rule_id",
            "dimension",
            "severity",
        ],
    )


def _suggest(ch, first, last):
    return suggest(
        ch,
        first,
        last,
        rule_base=rulebase(),
        config=CONFIG,
        indicators=indicator_sources(),
    )


@pytest.mark.integration
def test_the_period_reads_current_runs_and_current_batches_only(rt):
    _hand_made(rt.ch)
    answer = _suggest(rt.ch, D1, D2)
    by_id = {r["rule_id"]: r for r in answer["rules"]}
    rule = by_id[RULE]
    assert answer["dates_validated"] == [D1.isoformat(), D2.isoformat()]
    assert answer["rules_fingerprints"] == ["fp1"] and answer["organisations"] == 3
    assert answer["rules_not_in_rule_base"] == ["gone.rule"]
    assert (rule["organisations_judged"], rule["organisations_failed"]) == (2, 2)
    assert (rule["org_days_judged"], rule["org_days_failed"]) == (4, 2)
    assert (rule["failed_results"], rule["failed_in_results"]) == (2, 3)
    assert rule["rows"] == {"failed": 3, "kept_out": 3, "kept_out_by_this_rule_alone": 2}
    assert rule["datasets"] == [
        {
            "dataset": "outpatient_visit",
            "rows_in_period": 50 + 40 + 30 + 20,
            "rows_failed": 3,
            "rows_kept_out": 3,
            "failed_pct": round(100 * 3 / 140, 4),
        }
    ]
    assert rule["indicators"]["reach"] == "rows"
    columns = {c["column"]: c for c in rule["indicators"]["columns"]}
    assert columns["ind_hospital_monthly.outpatient_visits"] == {
        "column": "ind_hospital_monthly.outpatient_visits",
        "through": ["outpatient_visit"],
        "input_rows": 140,
        "rows_failed": 3,
        "failed_pct": round(100 * 3 / 140, 4),
    }
    assert {"ind_hospital_monthly.outpatient_visits", "ind_hospital_monthly.outpatient_fee"} <= set(
        columns
    )
    assert not any(c.startswith("ind_public_health_monthly.") for c in columns)
    # 2 of 2 organisations judged is under the minimum for "widespread"; 3 rows < min_rows
    assert rule["suggestion"]["heuristic"] == "separates"
    assert by_id[OTHER]["rows"]["kept_out"] == 1

    day_one = {r["rule_id"]: r for r in _suggest(rt.ch, D1, D1)["rules"]}[RULE]
    assert (day_one["org_days_failed"], day_one["rows"]["kept_out"]) == (1, 2)
    assert day_one["datasets"][0]["rows_in_period"] == 90


@pytest.mark.integration
def test_a_period_without_validation_is_an_operator_error(rt):
    _hand_made(rt.ch)
    with pytest.raises(NothingValidated, match="nothing validated from 2026-03-05 to 2026-03-09"):
        _suggest(rt.ch, dt.date(2026, 3, 5), dt.date(2026, 3, 9))
    with pytest.raises(OperatorError, match="starts 2026-03-03 after it ends 2026-03-02"):
        _suggest(rt.ch, D2, D1)


def test_the_terminal_table_shows_control_characters_escaped():
    from infra.cli import suggestion_table

    entry = {
        "rule_id": "outpatient_visit.\x1b]0;PWNED\x07rule",
        "severity": "warning",
        "current_weight": 2.0,
        "organisations_failed": 1,
        "organisations_judged": 4,
        "org_days_failed": 1,
        "org_days_judged": 12,
        "rows": None,
        "indicators": {"reach": None, "columns": []},
        "suggestion": {
            "action": "keep",
            "weight": 2.0,
            "reason": {"zh": "保持\x1b[31m", "en": "keep\r\nweight"},
        },
    }
    answer = {
        "period": {"from": "2026-03-02", "to": "2026-03-03"},
        "dates_validated": ["2026-03-02"],
        "organisations": 4,
        "rules_fingerprints": ["fp\x1b[2J"],
        "rules": [entry, entry | {"organisations_failed": 0}],
        "rules_not_in_rule_base": ["gone\x07"],
    }
    table = suggestion_table(answer)
    assert "\x1b" not in table and "\x07" not in table and "\r" not in table
    assert "outpatient_visit.\\x1b]0;PWNED\\x07rule" in table
    assert "keep\\x0d weight" in table and "gone\\x07" in table and "fp\\x1b[2J" in table
    assert "1 rules never failed or were not judged" in table


def test_a_broken_configuration_names_the_file_and_the_field(tmp_path):
    from contracts.loader import ContractError
    from expectations.tuning.config import SUGGESTIONS_CONFIG

    text = SUGGESTIONS_CONFIG.read_text(encoding="utf-8")
    path = tmp_path / "weight_suggestions.yaml"
    for old, new, message in (
        ("weight: {min: 0.25, max: 10", "weight: {min: 20, max: 10", "min must not be greater"),
        ("weight_factor: 0.5", "weight_factor: 1.5", "widespread.weight_factor"),
        ("keep weight {weight}", "keep weight {wieght}", "unknown placeholders ['wieght']"),
    ):
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        with pytest.raises(ContractError) as err:
            load_suggestion_config(path)
        assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
