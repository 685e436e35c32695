"""Scores, ranks, failure deltas and acceptance on hand-made rule results, checked by hand."""

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from contracts.loader import ContractError
from contracts.registry import Organisation, Registry
from expectations.rules.results import RuleResult, write_results
from expectations.rules.rulebase import Override, rulebase
from expectations.scoring.acceptance import acceptance
from expectations.scoring.config import load_scoring_config
from expectations.scoring.read import (
    failures,
    read_acceptance,
    read_batch_scores,
    read_scores,
    trend,
)
from expectations.scoring.store import score_date
from tests.conftest import record_run

pytestmark = pytest.mark.integration

_TZ = ZoneInfo("Asia/Shanghai")
D = dt.date(2026, 3, 31)


def org(code, level="tertiary", active_from=dt.date(2026, 1, 1)):
    kind = "county" if level == "county" else "hospital"
    return Organisation(code, f"{code} 医院", kind, level, "411502", (), active_from, None)


def registry(*orgs):
    return Registry({o.org_code: o for o in orgs}, "test registry")


def res(o, ds, day, rule, dimension, weight, status, *, run="r1", severity="warning", **kw):
    """One rule result; the rule type is the last part of the rule id."""
    rule_type = kw.pop("rule_type", rule.rsplit(".", 1)[-1])
    return RuleResult(
        run_id=run,
        org_code=o,
        dataset=ds,
        business_date=day,
        batch_version=kw.pop("version", 1),
        rule_id=f"{ds}.{rule}",
        rule_type=rule_type,
        dimension=dimension,
        severity=severity,
        weight=weight,
        threshold=kw.pop("threshold", 0.0),
        checked=kw.pop("checked", 10),
        failed=kw.pop("failed", 5 if status == "failed" else 0),
        failed_pct=kw.pop("failed_pct", 50.0 if status == "failed" else 0.0),
        status=status,
        **kw,
    )


def complete(ch, day, run="r1", minute=0, status="complete"):
    record_run(ch, run, day, dt.datetime(2026, 1, 1, 9, minute, tzinfo=_TZ), status)


def completeness_only(o, day, passed, failed, run="r1", ds="outpatient_visit"):
    """A batch judged on completeness alone: its score is 100 x passed / (passed + failed)."""
    return [
        res(o, ds, day, "a.required", "completeness", passed, "passed", run=run),
        res(o, ds, day, "b.required", "completeness", failed, "failed", run=run),
    ]


def test_config_default_and_errors(tmp_path):
    config = load_scoring_config()
    assert config.dimension_weights.model_dump() == {
        "completeness": 30,
        "timeliness": 20,
        "correctness": 30,
        "logic": 20,
    }
    assert (config.ranking.decimals, config.acceptance.bar, config.acceptance.share_pct) == (
        2,
        90,
        90,
    )
    path = tmp_path / "scoring.yaml"
    cases = {
        "dimension_weights: {completeness: -1, timeliness: 1, correctness: 1, logic: 1}\n"
        "ranking: {decimals: 2}\nacceptance: {bar: 90, share_pct: 90}": (
            "dimension_weights.completeness: Input should be greater than or equal to 0"
        ),
        "dimension_weights: {completeness: 0, timeliness: 0, correctness: 0, logic: 0}\n"
        "ranking: {decimals: 2}\nacceptance: {bar: 90, share_pct: 90}": (
            "dimension_weights: Value error, at least one dimension weight must be greater than 0"
        ),
        "dimension_weights: {completeness: 1, timeliness: 1, correctness: 1, logic: 1}\n"
        "ranking: {decimals: 2, mode: up}\n": "ranking.mode: Extra inputs are not permitted",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ContractError) as err:
            load_scoring_config(path)
        assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "acceptance: Field required" in str(err.value)


def _hand_made_day(ch):
    h = "T1"
    ov, rx, lab = "outpatient_visit", "prescription", "lab_result"
    results = [
        # outpatient_visit: received, on time, some failures
        res(h, ov, D, "batch_received", "completeness", 5, "passed", severity="blocking"),
        res(h, ov, D, "a.required", "completeness", 2, "failed"),
        res(h, ov, D, "b.required", "completeness", 2, "passed"),
        res(h, ov, D, "c.required", "completeness", 1, "not_applicable"),
        res(h, ov, D, "batch_on_time", "timeliness", 5, "passed"),
        res(h, ov, D, "e.record_not_late", "timeliness", 1, "failed"),
        res(h, ov, D, "d.icd10_valid", "correctness", 3, "failed", severity="blocking"),
        res(h, ov, D, "f.max", "correctness", 1, "passed"),
        res(h, ov, D, "g.code_in_system", "correctness", 2, "error", notes="query failed"),
        # prescription: never arrived (monitoring's pattern)
        res(
            h, rx, D, "batch_received", "completeness", 5, "failed", severity="blocking", version=0
        ),
        res(h, rx, D, "batch_on_time", "timeliness", 5, "failed", version=0),
        res(h, rx, D, "file_readable", "correctness", 3, "not_applicable", version=0),
        # lab_result: complete and on time, half its logic weight fails
        res(h, lab, D, "batch_received", "completeness", 5, "passed", severity="blocking"),
        res(h, lab, D, "batch_on_time", "timeliness", 5, "passed"),
        res(h, lab, D, "x.unique_key", "logic", 2, "passed"),
        res(h, lab, D, "y.unique_key", "logic", 2, "failed"),
    ]
    write_results(ch, results)
    complete(ch, D)


def test_batch_and_org_day_scores_by_hand(rt):
    _hand_made_day(rt.ch)
    [row] = score_date(rt.ch, registry(org("T1")), D)
    batches = {b["dataset"]: b for b in read_batch_scores(rt.ch, D)}
    ov, rx, lab = batches["outpatient_visit"], batches["prescription"], batches["lab_result"]
    # outpatient_visit: n/a and error left out
    #   completeness 100 x (5 + 2) / (5 + 2 + 2) = 700/9; timeliness 100 x 5 / (5 + 1) = 500/6
    #   correctness 100 x 1 / (3 + 1) = 25; logic: no rule -> NULL
    #   composite (30 x 700/9 + 20 x 500/6 + 30 x 25) / (30 + 20 + 30) = 4750 / 80 = 59.375
    assert ov["completeness"] == pytest.approx(700 / 9, abs=1e-12)
    assert ov["timeliness"] == pytest.approx(500 / 6, abs=1e-12)
    assert (ov["correctness"], ov["logic"], ov["composite"]) == (25.0, None, 59.375)
    assert (ov["rules_failed"], ov["blocking_failed"], ov["rules_error"], ov["is_missing"]) == (
        3,
        1,
        1,
        0,
    )
    # prescription missing: completeness 0, timeliness 0, the rest NULL; composite 0
    assert [rx[d] for d in ("completeness", "timeliness", "correctness", "logic")] == [
        0.0,
        0.0,
        None,
        None,
    ]
    assert (rx["composite"], rx["is_missing"], rx["batch_version"], rx["blocking_failed"]) == (
        0.0,
        1,
        0,
        1,
    )
    # lab_result: completeness 100, timeliness 100, logic 50, correctness NULL
    #   composite (30 x 100 + 20 x 100 + 20 x 50) / 70 = 6000 / 70
    assert (lab["completeness"], lab["timeliness"], lab["correctness"], lab["logic"]) == (
        100.0,
        100.0,
        None,
        50.0,
    )
    assert lab["composite"] == pytest.approx(6000 / 70, abs=1e-12)
    # organisation-day: means of the batch scores that are not NULL
    #   completeness (700/9 + 0 + 100) / 3 = 1600/27; timeliness (500/6 + 0 + 100) / 3 = 550/9
    #   correctness 25 (one batch); logic 50 (one batch)
    #   composite (30 x 1600/27 + 20 x 550/9 + 30 x 25 + 20 x 50) / 100 = 128250/27/100 = 47.5
    assert row["completeness"] == pytest.approx(1600 / 27, abs=1e-12)
    assert row["timeliness"] == pytest.approx(550 / 9, abs=1e-12)
    assert (row["correctness"], row["logic"], row["composite"]) == (25.0, 50.0, 47.5)
    assert (row["rules_failed"], row["blocking_failed"], row["rules_error"]) == (6, 2, 1)
    assert (row["rank"], row["peer_size"], row["rank_change_day"]) == (1, 1, None)
    assert (row["new_failures"], row["resolved_failures"], row["persisting_failures"]) == (6, 0, 0)
    assert (row["org_name"], row["county_code"], row["run_id"]) == ("T1 医院", "411502", "r1")


def test_dimension_weights_come_from_the_config(rt, tmp_path):
    _hand_made_day(rt.ch)
    path = tmp_path / "scoring.yaml"
    path.write_text(
        "dimension_weights: {completeness: 1, timeliness: 1, correctness: 0, logic: 0}\n"
        "ranking: {decimals: 2}\nacceptance: {bar: 90, share_pct: 90}\n",
        encoding="utf-8",
    )
    [row] = score_date(rt.ch, registry(org("T1")), D, load_scoring_config(path))
    # (1 x 1600/27 + 1 x 550/9 + 0 x 25 + 0 x 50) / 2 = (1600/27 + 1650/27) / 2 = 3250/54
    assert row["composite"] == pytest.approx(3250 / 54, abs=1e-12)
    assert read_scores(rt.ch, D) == [row]  # the latest scoring is the one shown


def test_ties_and_rank_change_day_and_month(rt):
    orgs = registry(*(org(f"T{i}") for i in range(1, 6)), org("S1", "secondary"))
    # completeness-only batches: composite = 100 x passed / (passed + failed)
    today = {"T1": (9, 1), "T2": (19, 1), "T3": (17999, 2001), "T4": (4, 1), "T5": (44997, 5003)}
    yesterday = {"T1": (19, 1), "T2": (9, 1), "T3": (4, 1), "T4": (17, 3)}
    last_month = {"T1": (1, 1)}  # 28 February: the same day of the month, clipped
    feb28, mar28 = dt.date(2026, 2, 28), dt.date(2026, 3, 28)
    results = []
    for day, composites in ((D, today), (D - dt.timedelta(days=1), yesterday), (feb28, last_month)):
        for o, (p, f) in composites.items():
            results += completeness_only(o, day, p, f)
        complete(rt.ch, day)
    results += completeness_only("S1", D, 1, 0)
    results += completeness_only("T5", mar28, 1, 0)  # not a comparison date: must not count
    complete(rt.ch, mar28)
    write_results(rt.ch, results)
    rows = score_date(rt.ch, orgs, D)
    got = {r["org_code"]: (r["composite"], r["rank"], r["peer_size"]) for r in rows}
    # 95 -> 1; 90 and 89.995 (rounds half up to 90.00) share 2; 89.994 -> 89.99 is 4; 80 is 5
    assert got == {
        "T2": (95.0, 1, 5),
        "T1": (90.0, 2, 5),
        "T3": (89.995, 2, 5),
        "T5": (89.994, 4, 5),
        "T4": (80.0, 5, 5),
        "S1": (100.0, 1, 1),
    }
    assert [r["org_code"] for r in rows] == ["T2", "T1", "T3", "T5", "T4", "S1"]
    # yesterday: T1 95 (1), T2 90 (2), T4 85 (3), T3 80 (4); T5 had no results
    change_day = {r["org_code"]: r["rank_change_day"] for r in rows}
    assert change_day == {"T1": -1, "T2": 1, "T3": 2, "T4": -2, "T5": None, "S1": None}
    change_month = {r["org_code"]: r["rank_change_month"] for r in rows}
    assert change_month == {"T1": -1, "T2": None, "T3": None, "T4": None, "T5": None, "S1": None}
    assert read_scores(rt.ch, D) == rows


def test_failure_deltas_against_the_previous_date_with_results(rt):
    orgs = registry(org("T1"), org("T2"))
    p, gap = dt.date(2026, 3, 29), dt.date(2026, 3, 30)
    ds = "outpatient_visit"

    def day_of(day, run, failing):
        return [
            res("T1", ds, day, f"{rule}.required", "completeness", 1, "failed", run=run)
            for rule in failing
        ] + [res("T1", ds, day, "ok.required", "completeness", 1, "passed", run=run)]

    write_results(rt.ch, day_of(p, "old", ["w"]))  # an older run of P: not current
    complete(rt.ch, p, "old", minute=0)
    write_results(rt.ch, day_of(p, "r1", ["x", "y"]))
    complete(rt.ch, p, "r1", minute=5)
    # 30 March has a run, but T1 has no results in it: P is T1's previous date
    write_results(rt.ch, completeness_only("T2", gap, 1, 0))
    complete(rt.ch, gap)
    write_results(rt.ch, day_of(D, "r1", ["y", "z"]))
    complete(rt.ch, D)
    [row] = score_date(rt.ch, orgs, D)
    assert (row["new_failures"], row["resolved_failures"], row["persisting_failures"]) == (1, 1, 1)
    changes = rt.ch.query(
        "SELECT rule_id, change FROM dq.current_failure_change"
        " WHERE org_code = 'T1' ORDER BY rule_id"
    ).result_rows
    assert changes == [
        ("outpatient_visit.x.required", "resolved"),
        ("outpatient_visit.y.required", "persisting"),
        ("outpatient_visit.z.required", "new"),
    ]
    listed = failures(rt.ch, "T1", D)
    assert [(f["rule_id"], f["change"]) for f in listed] == [
        ("outpatient_visit.y.required", "persisting"),
        ("outpatient_visit.z.required", "new"),
    ]
    first = listed[0]
    assert first["description_zh"] == rulebase().types["required"].description.zh
    assert first["fix_hint_en"] == rulebase().types["required"].fix_hint.en
    assert (first["checked"], first["failed"], first["failed_pct"], first["dimension"]) == (
        10,
        5,
        50.0,
        "completeness",
    )


def test_a_weight_override_changes_the_score(rt):
    base = rulebase()
    tuned = dataclasses.replace(
        base,
        overrides=(
            *base.overrides,
            Override(
                rule="outpatient_visit.visit_id.required", org_code="T2", weight=15, notes="t"
            ),
        ),
    )
    results = []
    for code, rb in (("T1", base), ("T2", tuned)):
        rules, fingerprint = rb.effective_rules(code, "tertiary")
        by_id = {r.id: r for r in rules}
        where = dict(run_id="r1", org_code=code, dataset="outpatient_visit", business_date=D)
        results += [
            RuleResult.of(
                by_id["outpatient_visit.batch_received"],
                **where,
                batch_version=1,
                checked=1,
                failed=0,
                fingerprint=fingerprint,
            ),
            RuleResult.of(
                by_id["outpatient_visit.visit_id.required"],
                **where,
                batch_version=1,
                checked=10,
                failed=10,
                fingerprint=fingerprint,
            ),
        ]
    write_results(rt.ch, results)
    complete(rt.ch, D)
    rows = {r["org_code"]: r for r in score_date(rt.ch, registry(org("T1"), org("T2")), D)}
    default = base.types["required"].weight
    # completeness = 100 x 5 / (5 + weight of the failing required rule)
    assert rows["T1"]["completeness"] == pytest.approx(100 * 5 / (5 + default), abs=1e-12)
    assert rows["T2"]["completeness"] == 100 * 5 / 20 == 25.0
    assert rows["T1"]["rank"] == 1 and rows["T2"]["rank"] == 2


def test_rescoring_is_identical_and_readers_never_see_duplicates(rt):
    _hand_made_day(rt.ch)
    write_results(rt.ch, completeness_only("T2", D, 1, 1))
    orgs = registry(org("T1"), org("T2"))
    first = score_date(rt.ch, orgs, D)
    second = score_date(rt.ch, orgs, D)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "computed_at"} for r in rows]

    assert strip(first) == strip(second) and second[0]["computed_at"] > first[0]["computed_at"]
    assert read_scores(rt.ch, D) == second
    count = "SELECT count() FROM dq.{} WHERE business_date = {{d:Date}}"
    for table, once in (("score_org_day", 2), ("score_batch", 4), ("failure_change", 7)):
        assert (
            rt.ch.query(count.format(f"current_{table}"), parameters={"d": D}).result_rows[0][0]
            == once
        )
        assert rt.ch.query(count.format(table), parameters={"d": D}).result_rows[0][0] == 2 * once
    assert trend(rt.ch, "T2", D) == [
        {
            "business_date": D,
            "composite": 50.0,
            "rank": 1,
            "peer_size": 2,
            "completeness": 50.0,
            "timeliness": None,
            "correctness": None,
            "logic": None,
        }
    ]
    # a newer validation run of the date: until it is scored, readers show nothing stale
    write_results(rt.ch, completeness_only("T2", D, 1, 0, run="r2"))
    complete(rt.ch, D, "r2", minute=10)
    assert read_scores(rt.ch, D) == []
    [row] = score_date(rt.ch, orgs, D)
    assert (row["run_id"], row["org_code"], row["composite"]) == ("r2", "T2", 100.0)
    assert read_scores(rt.ch, D) == [row]


def test_score_date_needs_a_complete_run(rt):
    write_results(rt.ch, completeness_only("T1", D, 1, 0))
    complete(rt.ch, D, status="running")
    with pytest.raises(LookupError, match="no complete validation run for 2026-03-31"):
        score_date(rt.ch, registry(org("T1")), D)
    complete(rt.ch, D, minute=1)
    with pytest.raises(ValueError, match=r"not in the registry test registry: \['T1'\]"):
        score_date(rt.ch, registry(org("T2")), D)


def test_monthly_acceptance_with_evidence(rt):
    nov = [dt.date(2026, 11, d) for d in range(1, 11)]  # ten days with a current run
    low = nov[4]
    orgs = registry(
        org("PASS"),  # 9 of 10 days at 100, one at 85: 90% >= 90%
        org("SHARE"),  # 8 of 10 days: 80% < 90%
        org("BLOCK"),  # every day at 100, one blocking failure
        org("ROUND", "secondary"),  # 89.995 every day: rounds half up to 90.00, at the bar
        org("BAR", "secondary"),  # 89.994 every day: 89.99, below the bar
        org("LATE", "county", active_from=dt.date(2026, 11, 6)),  # expected from 6 Nov only
    )
    results = []
    for i, day in enumerate(nov):
        results += completeness_only("PASS", day, *((17, 3) if day == low else (1, 0)))
        results += completeness_only("SHARE", day, *((17, 3) if i < 2 else (1, 0)))
        results += completeness_only("BLOCK", day, 1, 0)
        results += completeness_only("ROUND", day, 17999, 2001)
        results += completeness_only("BAR", day, 44997, 5003)
        if dt.date(2026, 11, 6) <= day < nov[-1]:  # no results on 10 Nov: not scored
            results += completeness_only("LATE", day, 1, 0, ds="health_record")
        complete(rt.ch, day)
    # a blocking failure that does not pull the day below the bar (weight 0)
    results.append(
        res(
            "BLOCK",
            "outpatient_visit",
            nov[2],
            "file_readable",
            "correctness",
            0,
            "failed",
            severity="blocking",
            failed_pct=12.5,
            threshold=0.0,
        )
    )
    # days outside November must not count
    for day in (dt.date(2026, 10, 31), dt.date(2026, 12, 1)):
        results += completeness_only("PASS", day, 0, 1)
        complete(rt.ch, day)
    write_results(rt.ch, results)
    rows = acceptance(rt.ch, orgs, dt.date(2026, 11, 20))
    got = {r["org_code"]: r for r in rows}
    assert [r["org_code"] for r in rows] == ["BLOCK", "PASS", "SHARE", "BAR", "ROUND", "LATE"]
    summary = {
        code: (r["days_judged"], r["days_at_bar"], r["share"], r["passed"], r["blocking_failures"])
        for code, r in got.items()
    }
    assert summary == {
        "PASS": (10, 9, 90.0, 1, 0),
        "SHARE": (10, 8, 80.0, 0, 0),
        "BLOCK": (10, 10, 100.0, 0, 1),
        "ROUND": (10, 10, 100.0, 1, 0),
        "BAR": (10, 0, 0.0, 0, 0),
        "LATE": (4, 4, 100.0, 1, 0),
    }
    evidence = got["PASS"]["evidence"]
    assert evidence["days_below_bar"] == [
        {
            "business_date": "2026-11-05",
            "run_id": "r1",
            "composite": 85.0,
            "composite_rounded": "85.00",
            "at_bar": False,
        }
    ]
    assert evidence["reasons"] == [] and evidence["config"]["acceptance"] == {
        "bar": 90.0,
        "share_pct": 90.0,
    }
    assert got["SHARE"]["evidence"]["reasons"] == [
        "composite >= 90 on 8 of 10 judged days (80.00%), 90% needed"
    ]
    assert got["BLOCK"]["evidence"]["blocking_failures"] == [
        {
            "business_date": "2026-11-03",
            "dataset": "outpatient_visit",
            "rule_id": "outpatient_visit.file_readable",
            "failed_pct": 12.5,
            "threshold": 0.0,
            "run_id": "r1",
        }
    ]
    assert got["ROUND"]["evidence"]["days"][0]["composite_rounded"] == "90.00"
    assert got["BAR"]["evidence"]["days"][0]["composite_rounded"] == "89.99"
    late = got["LATE"]["evidence"]
    assert [d["business_date"] for d in late["days"]] == [f"2026-11-0{d}" for d in (6, 7, 8, 9)]
    assert late["days_not_scored"] == [{"business_date": "2026-11-10", "run_id": "r1"}]
    assert read_acceptance(rt.ch, dt.date(2026, 11, 1)) == rows
    again = acceptance(rt.ch, orgs, dt.date(2026, 11, 1))
    assert [{**r, "computed_at": None} for r in again] == [{**r, "computed_at": None} for r in rows]
    assert read_acceptance(rt.ch, dt.date(2026, 11, 1)) == again
